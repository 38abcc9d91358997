"""durable.map at scale: tolerated failures (a count or a fraction) returned in place,
MapFailed past the tolerance, and batch_size splitting the items into child workflows
whose results come back in order, decoded against the activity's type hints."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

import durable
from durable import ApplicationError, RetryPolicy
from durable.mapping import BATCH_WORKFLOW
from durable.testing import WorkflowEnvironment

ran: Counter[int] = Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


@dataclass
class Square:
    """A result with a type the payload rebuilds from the activity's return hint."""

    of: int
    value: int


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def square(x: int) -> Square:
    ran[x] += 1
    if x % 10 == 7:
        raise ApplicationError(f"no square for {x}", type="Unlucky")
    return Square(x, x * x)


@durable.workflow
async def squares(n: int, tolerated: float, batch_size: int | None = None) -> list[Any]:
    tolerated_failures = int(tolerated) if tolerated >= 1 or tolerated == 0 else tolerated
    try:
        results = await durable.map(
            square,
            range(n),
            max_concurrency=8,
            tolerated_failures=tolerated_failures,
            batch_size=batch_size,
        )
    except durable.MapFailed as err:
        return ["MapFailed", err.failed, err.total, [i for i, _ in err.errors], str(err)]
    out: list[Any] = []
    for r in results:
        if isinstance(r, durable.ActivityError):
            out.append(f"failed: {r.cause.type}")
        else:
            assert isinstance(r, Square)  # rebuilt from the hint, batches too
            out.append(r.value)
    return out


async def _squares(n: int, tolerated: float, batch_size: int | None = None) -> list[Any]:
    async with WorkflowEnvironment(workflows=[squares], activities=[square]) as env:
        return await env.client.execute(squares, n, tolerated, batch_size, timeout=60)


def _expected(n: int) -> list[Any]:
    return ["failed: Unlucky" if x % 10 == 7 else x * x for x in range(n)]


async def test_failures_within_a_count_come_back_in_place() -> None:
    assert await _squares(20, 2) == _expected(20)


async def test_failures_within_a_fraction_come_back_in_place() -> None:
    assert await _squares(30, 0.1) == _expected(30)  # 3 of 30 failed: 0.1 allows 3


async def test_past_the_tolerance_map_failed_says_how_many_of_how_many() -> None:
    name, failed, total, first, message = await _squares(30, 0.05)  # allows 1
    assert (name, failed, total) == ("MapFailed", 2, 30)
    assert first == [7, 17]
    assert "2 of 30 items failed, more than the 1 tolerated (0.05 of the items)" in message
    assert "item 7:" in message
    assert "no square for 7" in message


async def test_a_fraction_that_rounds_down_to_no_item_still_means_map_failed() -> None:
    name, failed, total, first, message = await _squares(30, 0.01)  # 0.3 items: none
    assert (name, failed, total, first) == ("MapFailed", 1, 30, [7])
    assert "1 of 30 items failed, more than the 0 tolerated (0.01 of the items)" in message


async def test_the_default_still_raises_the_first_failure_as_it_is() -> None:
    async with WorkflowEnvironment(workflows=[squares], activities=[square]) as env:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await env.client.execute(squares, 10, 0, timeout=30)
    assert failed.value.cause.type == "ActivityError"
    assert "no square for 7" in failed.value.cause.message


async def test_batches_are_child_workflows_and_results_come_back_in_order(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[squares], activities=[square]):
        handle = await client.start(squares, 45, 5, 10, id="batched")
        assert await handle.result(timeout=60) == _expected(45)
        events = await handle.history()
        children = [e.data for e in events if e.kind == "child_started"]
        assert [c["name"] for c in children] == [BATCH_WORKFLOW] * 5  # 10+10+10+10+5
        # No journal holds them all: the parent none of the items' activities, each batch
        # its own.
        assert not [e for e in events if e.kind == "activity_scheduled"]
        sizes = []
        for child in children:
            steps = await client.get_handle(child["id"]).steps()
            sizes.append(len([s for s in steps if s.kind == "activity"]))
            assert (await client.get_handle(child["id"]).describe()).status == "completed"
    assert sizes == [10, 10, 10, 10, 5]
    assert ran == Counter(range(45))  # every item once


async def test_batches_count_failures_over_all_batches() -> None:
    # 7, 17, 27: three failures in three batches; 2 tolerated.
    name, failed, total, first, message = await _squares(30, 2, 10)
    assert (name, failed, total) == ("MapFailed", 3, 30)
    assert first == [7, 17, 27]
    assert "3 of 30 items failed, more than the 2 tolerated" in message
    assert await _squares(30, 3, 10) == _expected(30)


async def plain_square(x: int) -> int:
    return x * x


@durable.workflow
async def bad_map(how: str) -> None:
    options: dict[str, Any] = {
        "negative": {"tolerated_failures": -1},
        "fraction-one": {"tolerated_failures": 1.0},
        "zero-batch": {"batch_size": 0},
        "function-batch": {"batch_size": 10},
    }[how]
    fn: Any = plain_square if how == "function-batch" else square
    await durable.map(fn, [1, 2], **options)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("negative", "tolerated_failures must be >= 0 (a count of items), got -1"),
        ("fraction-one", "must be in (0, 1), got 1.0; to tolerate a number of items"),
        ("zero-batch", "batch_size must be an int >= 1 (items per child workflow)"),
        ("function-batch", "batch_size=...) runs an @activity or a @workflow per item"),
    ],
)
async def test_bad_options_are_refused_saying_what_fits(how: str, message: str) -> None:
    async with WorkflowEnvironment(workflows=[bad_map], activities=[square]) as env:
        with pytest.raises(durable.WorkflowFailed) as failed:
            await env.client.execute(bad_map, how, id=how, timeout=30)
    assert message in failed.value.cause.message
    assert not ran  # refused before anything ran


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def first_five_fail(x: int) -> int:
    if x < 5:
        raise ApplicationError(f"item {x} is bad", type="Bad")
    ran[x] += 1
    while True:  # the others run until cancelled (delivered at a heartbeat)
        durable.heartbeat()
        await asyncio.sleep(0.01)


@durable.workflow
async def fails_early(batch_size: int | None) -> list[Any]:
    try:
        await durable.map(first_five_fail, range(20), tolerated_failures=4, batch_size=batch_size)
    except durable.MapFailed as err:
        return [err.failed, err.total]
    return []


@pytest.mark.parametrize("batch_size", [None, 5])
async def test_past_the_tolerance_what_still_runs_is_cancelled(batch_size: int | None) -> None:
    async with WorkflowEnvironment(
        workflows=[fails_early], activities=[first_five_fail], time_skipping=False
    ) as env:
        handle = await env.client.start(fails_early, batch_size, id="early")
        assert await handle.result(timeout=30) == [5, 20]
        steps = await handle.steps()
        if batch_size is None:
            items = steps
        else:  # the first batch (its five items failed) ended; the three others were cancelled
            assert [s.status for s in steps] == ["completed", "cancelled", "cancelled", "cancelled"]
            items = []
            for child in steps:
                assert child.child_id is not None
                child_handle = env.client.get_handle(child.child_id)
                for _ in range(200):
                    if (await child_handle.describe()).status != "running":
                        break
                    await asyncio.sleep(0.02)
                items += await child_handle.steps()
        assert Counter(s.status for s in items) == {"failed": 5, "cancelled": 15}


@durable.workflow
async def child_square(x: int) -> int:
    if x == 1:
        raise ApplicationError("one is not allowed", type="One")
    return x * x


@durable.workflow
async def maps_children() -> list[str]:
    results = await durable.map(child_square, [0, 1, 2], tolerated_failures=1)
    return [type(r).__name__ if isinstance(r, durable.DurableError) else str(r) for r in results]


async def test_a_failed_child_workflow_comes_back_in_place_too() -> None:
    async with WorkflowEnvironment(workflows=[maps_children, child_square]) as env:
        assert await env.client.execute(maps_children, timeout=30) == [
            "0",
            "ChildWorkflowError",
            "4",
        ]


hold: dict[str, bool] = {"blocking": True}


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def waits_on_item(x: int) -> int:
    while x < 3 and hold["blocking"]:  # the first batch runs until its run is terminated
        durable.heartbeat()
        await asyncio.sleep(0.01)
    return x


@durable.workflow
async def one_batch_dies() -> list[str]:
    results = await durable.map(waits_on_item, range(6), tolerated_failures=3, batch_size=3)
    return [type(r).__name__ if isinstance(r, durable.DurableError) else str(r) for r in results]


async def test_a_batch_that_ends_as_a_whole_counts_each_of_its_items() -> None:
    hold["blocking"] = True
    async with WorkflowEnvironment(
        workflows=[one_batch_dies], activities=[waits_on_item], time_skipping=False
    ) as env:
        handle = await env.client.start(one_batch_dies, id="dies")
        for _ in range(500):
            children = [s for s in await handle.steps() if s.kind == "child"]
            if children:
                break
            await asyncio.sleep(0.02)
        first = children[0].child_id
        assert first is not None
        await env.client.get_handle(first).terminate(reason="operator")
        hold["blocking"] = False
        # Its three items failed with it (3 tolerated); the other batch's came back.
        assert await handle.result(timeout=30) == ["ChildWorkflowError"] * 3 + ["3", "4", "5"]


@durable.workflow
async def square_child(x: int) -> Square:
    if x % 10 == 7:
        raise ApplicationError(f"no square for {x}", type="Unlucky")
    return Square(x, x * x)


@durable.workflow
async def maps_child_batches(n: int) -> list[Any]:
    results = await durable.map(square_child, range(n), tolerated_failures=2, batch_size=5)
    return [
        type(r).__name__ if isinstance(r, durable.DurableError) else (r.of, r.value)
        for r in results  # a Square: rebuilt from the workflow's return hint
    ]


async def test_batches_of_child_workflows_start_each_item_as_a_child_of_its_batch(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[maps_child_batches, square_child]):
        handle = await client.start(maps_child_batches, 12, id="child-batches")
        assert await handle.result(timeout=60) == [
            "ChildWorkflowError" if x == 7 else (x, x * x) for x in range(12)
        ]
        batches = [s for s in await handle.steps() if s.kind == "child"]
        assert [s.name for s in batches] == [BATCH_WORKFLOW] * 3
        assert batches[0].child_id is not None
        items = await client.get_handle(batches[0].child_id).steps()
    assert [(s.kind, s.name) for s in items] == [("child", "square_child")] * 5
