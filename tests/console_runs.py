"""Real runs for the console's drawing tests: one workflow with every shape a run can take
(a sequence, gathered futures, a map over 50 items with failures, a child workflow, a
timer, a signal wait, retries, a hostile name), run through `WorkflowEnvironment`, and
synthetic steps for the size bounds."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import durable
from durable import RetryPolicy
from durable.errors import ActivityError, RemoteError
from durable.steps import Attempt, Step
from durable.testing import WorkflowEnvironment

HOSTILE = "<script>alert('x')</script>"
ITEMS = 50
FAILING = {7, 17, 27, 37, 47}  # items of the map that fail for good

tries: Counter[str] = Counter()


@durable.activity
async def prepare(order: str) -> str:
    return order.upper()


@durable.activity
async def fetch(source: str) -> int:
    return len(source)


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def process(item: int) -> int:
    if item in FAILING:
        raise ValueError(f"item {item} is malformed")
    return item * 2


@durable.activity(retry=RetryPolicy(max_attempts=4, initial_interval=timedelta(seconds=2)))
async def flaky(key: str) -> str:
    tries[key] += 1
    if tries[key] < 3:
        raise ConnectionError(f"attempt {tries[key]} lost the connection")
    return key


@durable.activity(name=HOSTILE)
async def hostile() -> str:
    return HOSTILE


@durable.workflow
async def invoice(order: str) -> str:
    return await prepare(order)


async def _safe(item: int) -> int | None:
    try:
        return await process(item)
    except ActivityError:
        return None


@durable.workflow
async def everything(order: str) -> str:
    """The tour: every kind of step and both kinds of fan-out."""
    first = await prepare(order)
    a, b = await asyncio.gather(fetch("left"), fetch("right"))
    done = await durable.map(_safe, range(ITEMS))
    billed = await invoice(order)
    await durable.sleep(timedelta(minutes=5))
    await flaky(order)
    await hostile()
    approved = await durable.wait_signal("approve")
    ok = sum(x is not None for x in done)
    return f"{first} {a + b} {ok} {billed} {approved}"


async def tour_steps() -> list[Step]:
    """The steps of one finished `everything` run."""
    tries.clear()
    async with WorkflowEnvironment(
        workflows=[everything, invoice], activities=[prepare, fetch, process, flaky, hostile]
    ) as env:
        handle = await env.client.start(everything, "o-1", id="tour")
        for _ in range(2000):
            steps = await handle.steps()
            if any(s.kind == "signal" and s.status == "waiting" for s in steps):
                break
            await env.sleep(0.5)
        await handle.signal("approve", "yes")
        assert await handle.result(timeout=30) == f"O-1 9 {ITEMS - len(FAILING)} O-1 yes"
        return await handle.steps()


T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def synthetic(n: int, *, fan_out: int = 0, failed_every: int = 0) -> list[Step]:
    """``n`` steps: ``fan_out`` of them one map (branches 0.k, one group), the rest in
    sequence on the main branch; one second apart, each with one attempt."""
    out = []
    group = 1 if fan_out else None
    for seq in range(1, n + 1):
        at = T0 + timedelta(seconds=seq)
        fanned = seq <= fan_out
        status = "failed" if failed_every and seq % failed_every == 0 else "completed"
        error = RemoteError("ValueError", f"step {seq} failed") if status == "failed" else None
        began = at + timedelta(milliseconds=200)
        attempt = Attempt(1, began, at + timedelta(seconds=1), "w", error)
        out.append(
            Step(
                seq=seq,
                kind="activity",
                name="process" if fanned else "step",
                branch=f"0.{seq - 1}" if fanned else "0",
                group=group if fanned else None,
                status=status,
                attempts=[attempt],
                scheduled_at=at,
                closed_at=at + timedelta(seconds=1),
                error=error,
            )
        )
    return out


async def _item(k: int) -> int:
    """One item of `nested`'s map: a step, then three gathered."""
    a = await prepare(f"i{k}")
    parts = await durable.map(fetch, [f"{k}-{j}" for j in range(3)])
    return len(a) + sum(parts)


@durable.workflow
async def nested() -> int:
    """A lone task spawned with a map whose items each run a sequence."""

    async def lone() -> str:
        return await prepare("side")

    side = asyncio.create_task(lone())
    done = await durable.map(_item, range(4))
    await side
    return sum(done)


async def nested_steps() -> list[Step]:
    """The steps of one finished `nested` run."""
    async with WorkflowEnvironment(workflows=[nested], activities=[prepare, fetch]) as env:
        handle = await env.client.start(nested, id="nested")
        await handle.result(timeout=30)
        return await handle.steps()
