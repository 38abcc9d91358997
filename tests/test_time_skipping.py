"""Time skipping in `WorkflowEnvironment` moves the clock only when nothing else can happen.

Each tick of `ticker` is a timer, then an activity, then a child workflow: steps that run at
one virtual instant, which the clock must wait for. A jump taken while one of them is still
on its way (a timer fired but not applied, a child created but not claimed, a commit in
flight) loses the tick or makes it late, which the exact counts and times below catch. The
loops repeat it a few hundred times, because a race shows only now and then.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

import durable
import durable.testing
from durable.testing import WorkflowEnvironment

TICK = 60.0  # virtual seconds between ticks
EXACT = timedelta(milliseconds=1)  # timestamps are floats: equal up to rounding


@durable.activity
async def tick_activity(i: int) -> int:
    return i + 1000


@durable.workflow
async def tick_child(i: int) -> int:
    return i * 2


@durable.workflow
async def ticker(ticks: int) -> list[list[float]]:
    """``ticks`` times: sleep a `TICK`, then call an activity and a child workflow."""
    seen: list[list[float]] = []
    durable.publish("ticks", 0)
    for i in range(ticks):
        await durable.sleep(TICK)
        fired = durable.now().timestamp()
        done = await tick_activity(i)
        child = await tick_child(i)
        seen.append([i, fired, done, child])
        durable.publish("ticks", len(seen))
    return seen


@durable.workflow
async def sleeper() -> None:
    """A timer far away: the next due time whenever a ticker's step is on its way."""
    await durable.sleep(timedelta(days=365))


WORKFLOWS = [ticker, tick_child, sleeper]


def assert_ticks(result: list[list[float]], start: datetime, rep: int) -> None:
    for i, (index, fired, done, child) in enumerate(result):
        assert (index, done, child) == (i, i + 1000, i * 2), f"repetition {rep}"
        late = (
            datetime.fromtimestamp(fired, start.tzinfo) - start - timedelta(seconds=TICK * (i + 1))
        )
        assert abs(late) < EXACT, f"repetition {rep}: tick {i} fired {late} late"


async def test_result_jumps_only_when_nothing_else_can_happen() -> None:
    # 40 x 5 ticks. Before the fix most repetitions jumped to the sleeper's timer once the
    # ticker had completed, and now and then while one of its steps was still on its way.
    ticks, reps = 5, 40
    async with WorkflowEnvironment(workflows=WORKFLOWS, activities=[tick_activity]) as env:
        await env.client.start(sleeper, id="sleeper")
        for rep in range(reps):
            handle = await env.client.start(ticker, ticks, id=f"ticker-{rep}")
            start = env.now()
            result = await handle.result(timeout=30)
            assert len(result) == ticks, f"repetition {rep}"
            assert_ticks(result, start, rep)
            # Not a second further: the run completed, so nothing more had to happen.
            overshoot = env.now() - start - timedelta(seconds=TICK * ticks)
            assert abs(overshoot) < EXACT, f"repetition {rep}: the clock moved {overshoot} too far"


async def test_results_awaited_together() -> None:
    # Each result() takes its own looks and jumps; together they must still stop exactly
    # when the longest ticker completes, with every tick of every ticker on time.
    lengths = [2, 5, 3]
    async with WorkflowEnvironment(workflows=WORKFLOWS, activities=[tick_activity]) as env:
        await env.client.start(sleeper, id="sleeper")
        for rep in range(10):
            handles = [
                await env.client.start(ticker, n, id=f"ticker-{rep}-{k}")
                for k, n in enumerate(lengths)
            ]
            start = env.now()
            results = await asyncio.gather(*(handle.result(timeout=30) for handle in handles))
            for n, result in zip(lengths, results, strict=True):
                assert len(result) == n, f"repetition {rep}"
                assert_ticks(result, start, rep)
            overshoot = env.now() - start - timedelta(seconds=TICK * max(lengths))
            assert abs(overshoot) < EXACT, f"repetition {rep}: the clock moved {overshoot} too far"


@pytest.mark.parametrize("per_sleep", [1, 5])
async def test_env_sleep_runs_every_tick_due_on_the_way(per_sleep: int) -> None:
    # Two tickers at once, 20 ticks each, checked after every env.sleep(). Before the fix
    # env.sleep() over 5 ticks lost ticks in about half the runs of this test (10 x 40
    # ticks), over 1 tick less often.
    ticks, reps, width = 20, 5 if per_sleep == 1 else 10, 2
    async with WorkflowEnvironment(workflows=WORKFLOWS, activities=[tick_activity]) as env:
        await env.client.start(sleeper, id="sleeper")
        for rep in range(reps):
            handles = [
                await env.client.start(ticker, ticks, id=f"ticker-{rep}-{k}") for k in range(width)
            ]
            start = env.now()
            for done in range(per_sleep, ticks + 1, per_sleep):
                await env.sleep(timedelta(seconds=TICK * per_sleep))
                elapsed = env.now() - start
                assert abs(elapsed - timedelta(seconds=TICK * done)) < EXACT, f"repetition {rep}"
                counts = [await handle.read("ticks") for handle in handles]
                assert counts == [done] * width, f"repetition {rep}, after {done} ticks"
            for handle in handles:
                assert (await handle.describe()).status == "completed", f"repetition {rep}"
                assert_ticks(await handle.result(timeout=30), start, rep)


async def test_env_sleep_rejects_a_negative_duration() -> None:
    async with WorkflowEnvironment(workflows=WORKFLOWS) as env:
        with pytest.raises(ValueError, match="duration >= 0"):
            await env.sleep(-1)


@durable.workflow
async def go_then_tick() -> float:
    await durable.wait_signal("go")
    await durable.sleep(TICK)
    return durable.now().timestamp()


async def test_result_waits_for_a_signal_when_no_timer_is_due() -> None:
    # Nothing due: result() waits (in real time) for the signal another task sends, and
    # only then jumps to the workflow's timer.
    async with WorkflowEnvironment(workflows=[go_then_tick]) as env:
        handle = await env.client.start(go_then_tick)
        start = env.now()

        async def go_later() -> None:
            await asyncio.sleep(0.2)
            assert env.now() == start
            await handle.signal("go")

        async with asyncio.TaskGroup() as tg:
            tg.create_task(go_later())
            fired = await handle.result(timeout=30)
        late = datetime.fromtimestamp(fired, start.tzinfo) - start - timedelta(seconds=TICK)
        assert abs(late) < EXACT
        assert abs(env.now() - start - timedelta(seconds=TICK)) < EXACT


gates: dict[str, asyncio.Event] = {}  # made by each test, on its own event loop


@durable.activity
async def blocked() -> str:
    await gates["release"].wait()
    return "released"


@durable.workflow
async def waits_for_blocked() -> str:
    return await blocked()


async def test_the_clock_stands_still_while_an_activity_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(durable.testing, "SETTLE_LIMIT", 0.3)
    gates["release"] = release = asyncio.Event()
    async with WorkflowEnvironment(
        workflows=[waits_for_blocked, sleeper], activities=[blocked]
    ) as env:
        await env.client.start(sleeper, id="sleeper")
        handle = await env.client.start(waits_for_blocked)
        start = env.now()
        with pytest.raises(TimeoutError, match="still busy"):
            await env.sleep(timedelta(days=400))
        with pytest.raises(TimeoutError):
            await handle.result(timeout=0.3)
        assert env.now() == start
        release.set()
        assert await handle.result(timeout=30) == "released"
        assert env.now() == start
