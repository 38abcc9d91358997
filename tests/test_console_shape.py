"""The workflow page's shape (`durable.console.shape`): the steps of recent runs merged in
order, with per-step figures, from real runs of a workflow whose path depends on its input."""

from __future__ import annotations

from datetime import timedelta

import durable
from durable.console import shape
from durable.testing import WorkflowEnvironment


@durable.activity(retry=durable.RetryPolicy(max_attempts=2, initial_interval=timedelta(0)))
async def check(n: int) -> int:
    if n == 13:
        raise ValueError("13 is unlucky")
    return n


@durable.activity
async def extra(n: int) -> int:
    return n


@durable.workflow
async def path(n: int) -> int:
    durable.publish("stage", "checking")
    await check(n)
    if n % 2:
        await extra(n)  # only odd runs take this step
    items = await durable.map(check, list(range(n % 3 + 2)))  # 2 to 4 items: a group
    durable.publish("stage", "done")
    return sum(items)


async def _steps_of(env: WorkflowEnvironment, inputs: list[int]) -> list[list[durable.Step]]:
    runs = []
    for n in inputs:
        handle = await env.client.start(path, n, id=f"path-{n}")
        try:
            await handle.result()
        except durable.WorkflowFailed:
            pass
        runs.append(await handle.steps())
    return runs


async def test_runs_merge_into_one_ordered_shape_with_figures() -> None:
    async with WorkflowEnvironment(workflows=[path], activities=[check, extra]) as env:
        runs = await _steps_of(env, [2, 3, 13, 4])
    merged = shape.merge("path", runs)
    assert merged.runs == 4
    assert [(k[1], k[2], k[3], k[4]) for k in merged.keys] == [
        ("publish", "stage", False, 1),
        ("activity", "check", False, 1),
        ("activity", "extra", False, 1),  # placed where odd runs take it
        ("activity", "check", True, 1),  # the fan-out, one key however many items
        ("publish", "stage", False, 2),  # the second publish is its own step
    ]
    figures = [merged.figures[k] for k in merged.keys]
    first_check, extra_step, fan_out = figures[1], figures[2], figures[3]
    assert (first_check.runs, first_check.statuses) == (4, {"completed": 3, "failed": 1})
    assert first_check.success == 0.75
    assert first_check.retries == 1  # 13 failed twice: one retry
    # odd runs take it, but 13 failed before it: only run 3 did
    assert (extra_step.runs, extra_step.statuses) == (1, {"completed": 1})
    assert fan_out.runs == 3  # 13 failed before its fan-out
    assert fan_out.most_items == 4  # n=2
    assert fan_out.items == 4 + 2 + 3
    assert fan_out.percentile(0.5) is not None
    assert figures[4].runs == 3


async def test_synthetic_steps_group_a_fan_out_and_colour_by_worst_outcome() -> None:
    async with WorkflowEnvironment(workflows=[path], activities=[check, extra]) as env:
        runs = await _steps_of(env, [3, 13])
    steps = shape.synthetic_steps(shape.merge("path", runs))
    kinds = [(s.kind, s.name, s.group is not None, s.status) for s in steps]
    assert kinds[:3] == [
        ("publish", "stage", False, "completed"),
        ("activity", "check", False, "failed"),  # failed in one of the runs
        ("activity", "extra", False, "completed"),
    ]
    fan = [s for s in steps if s.group is not None]
    assert len(fan) == 2  # the largest fan-out seen (n=3: 2 items; 13 failed before it)
    assert len({s.group for s in fan}) == 1
    assert [s.seq for s in steps] == sorted(s.seq for s in steps)
