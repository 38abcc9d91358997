"""durable.testing.WorkflowEnvironment: time skipping, and parking on non-determinism."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

import durable
from durable.testing import WorkflowEnvironment


@durable.activity
async def remind(who: str) -> str:
    return f"reminded {who}"


@durable.workflow
async def quarterly(who: str) -> list[str]:
    sent = []
    for _ in range(3):
        await durable.sleep(timedelta(days=90))
        sent.append(await remind(who))
    return sent


async def test_a_year_of_sleeping_takes_milliseconds() -> None:
    async with WorkflowEnvironment(workflows=[quarterly], activities=[remind]) as env:
        start_virtual = env.now()
        started = time.monotonic()
        result = await env.client.execute(quarterly, "ada", timeout=20)
        assert result == ["reminded ada"] * 3
        assert time.monotonic() - started < 5
        assert env.now() - start_virtual >= timedelta(days=270)


@durable.workflow
async def approval(deadline_days: int) -> str:
    try:
        decision = await durable.wait_signal("decision", timeout=timedelta(days=deadline_days))
    except TimeoutError:
        return "expired"
    return "approved" if decision else "rejected"


async def test_clock_stands_still_while_a_signal_can_still_arrive() -> None:
    async with WorkflowEnvironment(workflows=[approval]) as env:
        handle = await env.client.start(approval, 7)
        before = env.now()
        await asyncio.sleep(0.2)  # the test is not awaiting a result: no skipping
        assert env.now() == before
        await handle.signal("decision", True)
        assert await handle.result(timeout=10) == "approved"
        assert env.now() - before < timedelta(days=1)


async def test_timeout_fires_when_nothing_else_can_happen() -> None:
    async with WorkflowEnvironment(workflows=[approval]) as env:
        before = env.now()
        assert await env.client.execute(approval, 7, timeout=10) == "expired"
        assert env.now() - before >= timedelta(days=7)


async def test_env_sleep_fires_timers_due_on_the_way_in_order() -> None:
    async with WorkflowEnvironment(workflows=[approval]) as env:
        short = await env.client.start(approval, 2)
        long = await env.client.start(approval, 10)
        await env.sleep(timedelta(days=3))
        assert (await short.describe()).status == "completed"
        assert (await long.describe()).status == "running"
        await long.signal("decision", False)
        assert await long.result(timeout=10) == "rejected"
        assert await short.result(timeout=10) == "expired"


HOURLY = durable.RetryPolicy(
    max_attempts=3, initial_interval=timedelta(hours=1), max_interval=timedelta(hours=2)
)


@durable.activity(retry=HOURLY)
async def fails_twice(key: str) -> str:
    calls[key] = calls.get(key, 0) + 1
    if calls[key] < 3:
        raise ConnectionError("down")
    return "up"


calls: dict[str, int] = {}


@durable.workflow
async def retries_slowly(key: str) -> str:
    return await fails_twice(key)


async def test_retry_backoff_is_skipped_too() -> None:
    async with WorkflowEnvironment(workflows=[retries_slowly], activities=[fails_twice]) as env:
        before = env.now()
        assert await env.client.execute(retries_slowly, "k", timeout=10) == "up"
        assert env.now() - before >= timedelta(hours=3)  # 1 h + 2 h of backoff


@durable.workflow
async def nap(seconds: float) -> float:
    before = durable.now()
    await durable.sleep(seconds)
    return (durable.now() - before).total_seconds()


async def test_without_time_skipping_the_clock_is_real() -> None:
    async with WorkflowEnvironment(workflows=[nap], time_skipping=False) as env:
        started = time.monotonic()
        handle = await env.client.start(nap, 0.5)
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.1)  # no jump to the timer 0.5 s away
        # The worker fires the timer once 0.5 s have really passed, no sooner.
        slept = await handle.result(timeout=20)
        assert slept >= 0.499  # timestamps are rounded to microseconds
        assert time.monotonic() - started >= 0.5
        before = time.monotonic()
        await env.sleep(timedelta(seconds=0.2))
        assert time.monotonic() - before >= 0.2


# -- non-determinism: parked, not failed; resumes with compatible code ---------------------


@durable.activity
async def step(x: int) -> int:
    return x + 1


@durable.workflow(name="versioned")
async def versioned_v1() -> int:
    await durable.wait_signal("go")
    return await step(1)


@durable.workflow(name="versioned")
async def versioned_incompatible() -> int:
    await step(0)  # a new step before the wait: old journals cannot replay this
    await durable.wait_signal("go")
    return await step(1)


async def test_incompatible_code_parks_the_run_and_compatible_code_resumes_it(
    store_url: str,
) -> None:
    async with durable.connect(store_url) as client:
        async with durable.Worker(client, workflows=[versioned_v1], activities=[step]):
            handle = await client.start(versioned_v1, id="v")
            for _ in range(200):
                if (await handle.describe()).history_length >= 1:
                    break
                await asyncio.sleep(0.02)
        # Deploy incompatible code; a signal makes the run replay on it.
        async with durable.Worker(client, workflows=[versioned_incompatible], activities=[step]):
            length = (await handle.describe()).history_length
            await handle.signal("go")
            for _ in range(200):
                desc = await handle.describe()
                if desc.problem:
                    break
                await asyncio.sleep(0.02)
            assert desc.status == "running"
            assert desc.problem is not None
            assert "no longer replays" in desc.problem
            assert "'step'" in desc.problem
            assert desc.history_length == length  # nothing written
        # Compatible code again: the worker retries parked runs at start.
        async with durable.Worker(client, workflows=[versioned_v1], activities=[step]):
            assert await handle.result(timeout=20) == 2
        desc = await handle.describe()
        assert desc.problem is None
