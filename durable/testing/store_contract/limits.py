"""The storage contract, part 7: queue limits and priorities (`durable.limits`) — limits
kept and cleared, global and per-key concurrency never exceeded (also by claimers racing
on their own connections), priority order with FIFO within a priority, a rate limit over a
simulated minute, and queues without limits untouched.

Times are explicit (``now``), so "a minute" is a minute of the claims' clock, not a real
one. See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from durable.limits import QueueLimits
from durable.store import NewTask, StepCommit, Store, TaskOutcome, open_store

from .kit import entries, start

__all__ = [
    "test_concurrency_holds_across_concurrent_claimers",
    "test_key_concurrency_holds_each_key_apart",
    "test_limits_are_kept_replaced_and_cleared",
    "test_priority_first_then_fifo_on_queues_with_and_without_limits",
    "test_rate_limit_over_a_simulated_minute",
    "test_running_tasks_count_until_they_end_and_expired_leases_are_taken_over",
]

_DONE = TaskOutcome("done", "activity_completed", b"\xc0")


async def _queue(
    store: Store,
    wid: str,
    n: int,
    *,
    queue: str = "media",
    keys: list[str | None] | None = None,
    priorities: list[int] | None = None,
    owner: str = "w1",
) -> list[str]:
    """A run with ``n`` queued tasks on ``queue`` (task i due at i ms, key and priority
    from the lists); their task ids in creation order."""
    run_id = await start(store, wid, owner=owner)
    tasks = [
        NewTask(
            f"{run_id}:{i + 2}", run_id, wid, i + 2, "act", queue, b"spec", i / 1000,
            key=keys[i] if keys else None, priority=priorities[i] if priorities else 0,
        )
        for i in range(n)
    ]  # fmt: skip
    step = StepCommit(run_id, owner, 1, entries(2, *["activity_scheduled"] * n), new_tasks=tasks)
    assert await store.commit_steps([step], 4.0) == [True]
    return [t.task_id for t in tasks]


async def _claim(store: Store, owner: str, now: float, limit: int = 100, **kw: object) -> list[str]:
    got = await store.claim_tasks(
        owner,
        queues=kw.get("queues", ["media"]),  # type: ignore[arg-type]
        names=None,
        now=now,
        lease_until=kw.get("lease_until", now + 10_000),  # type: ignore[arg-type]
        limit=limit,
    )
    return [t.task_id for t in got]


async def test_limits_are_kept_replaced_and_cleared(store: Store) -> None:
    assert await store.queue_limits() == []
    first = QueueLimits(
        "media", concurrency=10, key_concurrency=2, rate=100, per=timedelta(seconds=60)
    )
    await store.set_queue_limits(first, 1.0)
    await store.set_queue_limits(QueueLimits("cpu", concurrency=4), 1.0)
    assert first.per == timedelta(minutes=1)
    assert await store.queue_limits() == [QueueLimits("cpu", concurrency=4), first]
    assert await store.queue_limits(["media", "nothing"]) == [first]
    # Setting replaces every limit: those not given are gone.
    await store.set_queue_limits(QueueLimits("media", rate=5, per=timedelta(seconds=1)), 2.0)
    assert await store.queue_limits(["media"]) == [
        QueueLimits("media", rate=5, per=timedelta(seconds=1))
    ]
    await store.set_queue_limits(QueueLimits("media"), 3.0)  # no limit left: the queue is free
    assert await store.queue_limits() == [QueueLimits("cpu", concurrency=4)]


async def test_concurrency_holds_across_concurrent_claimers(store: Store, store_url: str) -> None:
    ids = await _queue(store, "w", 40)
    await store.set_queue_limits(QueueLimits("media", concurrency=3), 5.0)
    running: set[str] = set()  # claimed, and not yet being finished
    peak = 0
    started: list[str] = []

    async def claimer(name: str) -> None:
        nonlocal peak
        mine: list[str] = []
        async with open_store(store_url) as own:  # a connection of its own, as a worker has
            for step in range(150):
                now = 10.0 + step
                for task_id in await _claim(own, name, now, limit=2):
                    assert task_id not in running
                    running.add(task_id)
                    mine.append(task_id)
                    started.append(task_id)
                peak = max(peak, len(running))
                assert len(running) <= 3, f"{len(running)} running on a queue limited to 3"
                if mine and step % 2:  # each task is held a while: the queue fills up
                    # Out of the count before its end commits (a claim may count it till then).
                    running.discard(task_id := mine.pop(0))
                    assert await own.finish_task(task_id, name, 1, _DONE, now)
                if len(started) == len(ids) and not mine:
                    return

    await asyncio.gather(*(claimer(f"c{i}") for i in range(3)))
    assert peak == 3  # the limit was reached, and never passed
    assert sorted(started) == sorted(ids)  # each task started exactly once


async def test_key_concurrency_holds_each_key_apart(store: Store) -> None:
    keys: list[str | None] = ["a", "a", "a", "b", "a", "b", "b", None, None, None]
    ids = await _queue(store, "w", len(keys), keys=keys)
    await store.set_queue_limits(QueueLimits("media", key_concurrency=2), 5.0)
    got = await _claim(store, "x", 10.0)
    # Two of "a" (the first two by due time), two of "b", and every task without a key.
    assert got == [ids[0], ids[1], ids[3], ids[5], ids[7], ids[8], ids[9]]
    assert await _claim(store, "x", 11.0) == []
    assert await store.finish_task(ids[0], "x", 1, _DONE, 12.0)
    assert await _claim(store, "y", 13.0) == [ids[2]]  # room for one more "a", the oldest
    # With a global limit too: both hold.
    await store.set_queue_limits(QueueLimits("media", concurrency=7, key_concurrency=3), 14.0)
    assert await _claim(store, "y", 15.0) == []  # 7 running already
    assert await store.finish_task(ids[1], "x", 1, _DONE, 16.0)
    assert await _claim(store, "y", 17.0) == [ids[4]]


async def test_priority_first_then_fifo_on_queues_with_and_without_limits(store: Store) -> None:
    priorities = [0, 5, 0, 5, -1, 9, 0]
    for queue, limited in (("free", False), ("media", True)):
        ids = await _queue(store, f"w-{queue}", len(priorities), queue=queue, priorities=priorities)
        if limited:
            await store.set_queue_limits(QueueLimits("media", concurrency=100), 5.0)
        order = [await _claim(store, "x", 10.0, 1, queues=[queue]) for _ in priorities]
        expected = [5, 1, 3, 0, 2, 6, 4]  # 9, then the 5s by due time, the 0s, then -1
        assert order == [[ids[i]] for i in expected], queue


async def test_rate_limit_over_a_simulated_minute(store: Store) -> None:
    ids = await _queue(store, "w", 400)
    await store.set_queue_limits(QueueLimits("media", rate=100, per=timedelta(minutes=1)), 5.0)
    starts: list[float] = []
    now = 10.0
    while now < 190.0:  # three minutes, a claim every 0.7 s, each finishing at once
        for task_id in await _claim(store, "x", now, limit=7):
            starts.append(now)
            assert await store.finish_task(task_id, "x", 1, _DONE, now)
        now = round(now + 0.7, 6)
    first_minute = [t for t in starts if 10.0 <= t < 70.0]
    assert abs(len(first_minute) - 100) <= 5, len(first_minute)
    assert abs(len(starts) - 300) <= 15, len(starts)
    # The window slides: no 60 s span anywhere holds more than 100 starts.
    for i, t in enumerate(starts):
        assert sum(1 for s in starts[i:] if s < t + 60.0) <= 100
    assert len(starts) < len(ids)


async def test_running_tasks_count_until_they_end_and_expired_leases_are_taken_over(
    store: Store,
) -> None:
    ids = await _queue(store, "w", 4)
    await store.set_queue_limits(QueueLimits("media", concurrency=1), 5.0)
    [first] = await _claim(store, "gone", 10.0, lease_until=20.0)
    assert first == ids[0]
    # The lease lapsed, but the attempt may still run somewhere: it counts. A claimer takes
    # it over (to count it lost) without starting anything new.
    taken = await store.claim_tasks(
        "x", queues=["media"], names=None, now=30.0, lease_until=100.0, limit=5
    )
    assert [(t.task_id, t.status) for t in taken] == [(ids[0], "running")]
    retry = TaskOutcome("retry", "activity_retrying", b"\xc0", visible_at=30.0)
    assert await store.finish_task(ids[0], "x", 1, retry, 30.0)
    # Requeued behind the older tasks of its priority; one at a time again.
    assert await _claim(store, "x", 31.0) == [ids[1]]
    assert await _claim(store, "x", 32.0) == []
    # Removing the limits frees the queue at once.
    await store.set_queue_limits(QueueLimits("media"), 33.0)
    assert await _claim(store, "x", 34.0) == [ids[2], ids[3], ids[0]]
