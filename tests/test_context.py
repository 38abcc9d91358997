"""What user code calls inside workflows and activities, end to end on a real database."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest

import durable
from durable import RetryPolicy, stepping
from durable.store import Store

seen: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _reset_seen() -> None:
    seen.clear()


@durable.activity
async def inspect_me(tag: str) -> dict[str, Any]:
    info = durable.activity_info()
    return {"tag": tag, "attempt": info.attempt, "workflow_id": info.workflow_id, "name": info.name}


@durable.workflow(name="introspective")
async def introspective() -> dict[str, Any]:
    info = durable.info()
    key = "replayed" if info.is_replaying else "live"
    seen[key] = seen.get(key, 0) + 1
    durable.logger.info("before the activity (live once)")
    activity = await inspect_me("t")
    await durable.wait_signal("go")  # a new worker picks up here: replay up to this point
    later = durable.info()
    durable.logger.info("after the signal")
    return {
        "id": info.id,
        "name": info.name,
        "queue": info.queue,
        "activity": activity,
        "parent": later.parent_id,
        "replaying at the end": later.is_replaying,
        "same start": later.started_at == info.started_at,
        "history grew": later.history_length > info.history_length,
    }


async def test_info_activity_info_and_replay_silent_logger(
    client: durable.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The first worker runs the workflow up to its signal wait and stops; a second, fresh
    one replays that part before going on. ``durable.logger`` says each line once."""
    caplog.set_level(logging.INFO, logger="durable.workflow")
    workflows, activities = [introspective], [inspect_me]
    async with durable.Worker(client, workflows=workflows, activities=activities):
        handle = await client.start(introspective, id="intro")
        for _ in range(500):  # until it waits for the signal
            if "activity_completed" in [e.kind for e in await handle.history()]:
                break
            await asyncio.sleep(0.02)
    async with durable.Worker(client, workflows=workflows, activities=activities):
        await handle.signal("go")
        result = await handle.result(timeout=20)
    assert result == {
        "id": "intro",
        "name": "introspective",
        "queue": "default",
        "activity": {"tag": "t", "attempt": 1, "workflow_id": "intro", "name": "inspect_me"},
        "parent": None,
        "replaying at the end": False,
        "same start": True,
        "history grew": True,
    }
    assert "replayed" in seen, "the second worker should have replayed the first part"
    messages = [r.getMessage() for r in caplog.records if r.name == "durable.workflow"]
    assert sum("before the activity" in m for m in messages) == 1
    assert sum("after the signal" in m for m in messages) == 1
    assert all("[intro #" in m for m in messages)


@durable.activity
async def flaky_once(key: str) -> str:
    seen[key] = seen.get(key, 0) + 1
    if seen[key] == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@durable.workflow
async def per_call_options(key: str) -> str:
    try:
        return await durable.call(flaky_once, key, retry=RetryPolicy(max_attempts=1))
    except durable.ActivityError as err:
        return f"failed after {err.attempts}: {err.cause.message}"


async def test_call_options_override_the_decorator(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[per_call_options], activities=[flaky_once]):
        assert await client.execute(per_call_options, "c1", timeout=20) == (
            "failed after 1: first attempt fails"
        )


@durable.activity(queue="nowhere")
async def where_am_i() -> str:
    return durable.activity_info().queue


@durable.activity
async def dawdles() -> str:
    await asyncio.sleep(5)
    return "late"


@durable.workflow
async def naps(seconds: float) -> str:
    await durable.sleep(seconds)
    return "woke"


@durable.workflow(queue="nowhere")
async def naps_nowhere(seconds: float) -> str:
    await durable.sleep(seconds)
    return "woke elsewhere"


@durable.workflow
async def every_call_option() -> list[str]:
    out = [await durable.call(where_am_i, queue="default")]  # served only thanks to queue=
    try:
        await durable.call(dawdles, timeout=0.2, retry=RetryPolicy(max_attempts=1))
    except durable.ActivityError as err:
        out.append(f"activity: {err.cause.type}")
    out.append(await durable.call(naps, 0.01, id="kid-named"))
    out.append(await durable.call(naps_nowhere, 0.01, queue="default"))
    try:
        await durable.call(naps, 60, id="kid-slow", timeout=timedelta(seconds=0.3))
    except durable.ChildWorkflowError as err:
        out.append(f"child: {err.workflow_id}")
    out.append(await durable.call(naps, 0.01, id="kid-free", timeout=None))
    out.append(await durable.call(naps, 0.01, id="kid-retry", retry=RetryPolicy()))  # ignored
    return out


async def test_every_call_option_overrides_the_decorator(client: durable.Client) -> None:
    """DESIGN: per-call ``retry``, ``timeout``, ``queue``, and for children ``id``."""
    workflows = [every_call_option, naps, naps_nowhere]
    activities = [where_am_i, dawdles]
    async with durable.Worker(client, workflows, activities, queues=["default"]):
        assert await client.execute(every_call_option, timeout=20) == [
            "default",
            "activity: TimeoutError",
            "woke",
            "woke elsewhere",
            "child: kid-slow",
            "woke",
            "woke",
        ]
        named = await client.get_handle("kid-named").describe()
        assert (named.status, named.name) == ("completed", "naps")
        slow = await client.get_handle("kid-slow").describe()
        assert slow.status == "failed"
        assert slow.error is not None
        assert "exceeded its timeout" in slow.error.message


@durable.workflow(timeout=timedelta(seconds=0.3))
async def too_slow() -> str:
    await durable.sleep(60)
    return "never"


async def test_workflow_timeout_fails_the_run(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[too_slow]):
        handle = await client.start(too_slow)
        with pytest.raises(durable.WorkflowFailed, match="exceeded its timeout"):
            await handle.result(timeout=20)


@durable.workflow
async def uses_asyncio_timeout() -> str:
    try:
        async with asyncio.timeout(0.2):
            await durable.wait_signal("never")
    except TimeoutError:
        return "asyncio.timeout fired"
    return "signalled"


async def test_asyncio_timeout_is_a_durable_timer(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[uses_asyncio_timeout]):
        handle = await client.start(uses_asyncio_timeout)
        assert await handle.result(timeout=20) == "asyncio.timeout fired"
    kinds = [e.kind for e in await handle.history()]
    assert "timer_started" in kinds
    assert "timer_fired" in kinds


@durable.activity
async def nop(i: int) -> int:
    return i


@durable.workflow
async def chatty(n: int) -> int:
    for i in range(n):
        await nop(i)
    return n


async def test_history_limit_fails_the_run_with_advice(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stepping, "HISTORY_LIMIT", 12)
    async with durable.Worker(client, workflows=[chatty], activities=[nop]):
        handle = await client.start(chatty, 50)
        with pytest.raises(durable.WorkflowFailed, match="continue_as_new"):
            await handle.result(timeout=20)
    assert (await handle.describe()).history_length < 20


async def test_concurrent_workflows_share_commits(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    async with durable.Worker(client, workflows=[chatty], activities=[nop]) as worker:
        # Wrap (not replace) the backend's commit, to count transactions.
        cls = type(worker.store)
        real = cls.commit_steps

        async def counting(self: Store, steps: Any, now: float) -> list[bool]:
            batches.append(len(steps))
            return await real(self, steps, now)

        monkeypatch.setattr(cls, "commit_steps", counting)
        handles = [await client.start(chatty, 5) for _ in range(40)]
        assert [await h.result(timeout=30) for h in handles] == [5] * 40
    steps = sum(batches)
    assert steps >= 40 * 6
    assert len(batches) < steps / 2, f"{len(batches)} transactions for {steps} steps"


@durable.activity(retry=RetryPolicy(max_attempts=0, initial_interval=timedelta(seconds=30)))
async def always_down(x: int) -> int:
    raise ConnectionError(f"service down for {x}")


@durable.workflow
async def waits_then_calls() -> int:
    try:
        await durable.wait_signal("go", timeout=timedelta(hours=1))
    except TimeoutError:
        return -1
    return await always_down(5)


async def test_describe_lists_pending_steps_with_attempts_and_errors(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[waits_then_calls], activities=[always_down]):
        handle = await client.start(waits_then_calls)
        for _ in range(200):
            desc = await handle.describe()
            if desc.pending:
                break
            await asyncio.sleep(0.02)
        # A signal wait with a timeout is one step: the timer is its deadline.
        [(kind, name, attempt)] = [(p.kind, p.name, p.attempt) for p in desc.pending]
        assert (kind, attempt) == ("signal", 1)
        assert name.startswith("go until ")
        await handle.signal("go")
        for _ in range(200):
            desc = await handle.describe()
            if any(p.kind == "activity" and p.last_error for p in desc.pending):
                break
            await asyncio.sleep(0.02)
        # The timer lost the race to the signal and is gone; the activity waits to retry.
        [step] = desc.pending
        assert step.kind == "activity"
        assert step.name == "always_down"
        assert step.attempt == 2
        assert step.last_error is not None
        assert "service down for 5" in step.last_error.message
        await handle.terminate("test over")


@durable.workflow(timeout=timedelta(seconds=0.2))
async def naps_briefly_at_most(seconds: float) -> str:
    await durable.sleep(seconds)
    return "woke"


@durable.workflow
async def frees_its_child() -> str:
    return await durable.call(naps_briefly_at_most, 0.5, timeout=None)


async def test_a_child_called_with_timeout_none_has_no_timeout(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[frees_its_child, naps_briefly_at_most]):
        assert await client.execute(frees_its_child, timeout=20) == "woke"
