"""The storage contract, part 3: activity tasks, timers, termination, workers, wake-ups,
and several processes at once.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import pytest

from durable.store import (
    TOPIC_RUNS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    ClaimedRun,
    NewTask,
    NewTimer,
    Outgoing,
    StepCommit,
    Store,
    TaskOutcome,
    open_store,
    run_topic,
)

from .kit import (
    AFTER,
    LEASE,
    SIGNAL,
    claim,
    claim_tasks,
    entries,
    new_run,
    new_task,
    peek,
    start,
    worker,
)

__all__ = [
    "test_a_commit_by_another_process_before_the_wait_is_not_missed",
    "test_a_heartbeat_says_when_its_worker_was_dropped",
    "test_a_workflow_topic_wakes_on_another_process_closing_it",
    "test_an_attempt_declared_lost_is_fenced_out_by_its_retry",
    "test_claim_tasks_leaves_the_claimers_own_live_attempts_alone",
    "test_claim_tasks_visible_first_filtered_and_leased",
    "test_deregister_hands_back_leases_at_once",
    "test_expired_task_is_reclaimed_running_and_old_owner_is_fenced",
    "test_finish_task_done_delivers_the_item",
    "test_finish_task_of_a_closed_run_drops_the_item",
    "test_finish_task_release_requeues_same_attempt_silently",
    "test_finish_task_retry_requeues_later_with_next_attempt",
    "test_fire_timers_delivers_due_ones_and_reports_the_next",
    "test_fire_timers_exactly_once_across_racing_stores",
    "test_heartbeat_extends_leases_and_reports_lost_and_cancelled",
    "test_processes_racing_to_claim_never_share_a_run_or_task",
    "test_silent_workers_are_dropped_by_a_heartbeat",
    "test_terminate_closes_at_once_and_revokes_the_lease",
    "test_wait_sees_a_commit_by_another_process",
    "test_wait_since_catches_a_notification_before_the_wait",
    "test_wait_times_out_when_nothing_happens",
    "test_wait_wakes_on_another_store_of_the_same_database",
]

# ---- activity tasks -----------------------------------------------------------------------


async def _with_tasks(store: Store, *tasks: NewTask, wid: str = "w") -> str:
    run_id = await start(store, wid)
    kinds = ["activity_scheduled"] * len(tasks)
    fixed = [
        NewTask(f"{run_id}:{t.seq}", run_id, wid, t.seq, t.name, t.queue, t.data, t.visible_at)
        for t in tasks
    ]
    step = StepCommit(run_id, "w1", 1, entries(2, *kinds), new_tasks=fixed)
    assert await store.commit_steps([step], 4.0) == [True]
    return run_id


async def test_claim_tasks_visible_first_filtered_and_leased(store: Store) -> None:
    run_id = await _with_tasks(
        store,
        new_task("", "w", 2, visible_at=3.0),
        new_task("", "w", 3, visible_at=1.0),
        new_task("", "w", 4, visible_at=20.0),
        new_task("", "w", 5, visible_at=2.0, queue="other"),
        new_task("", "w", 6, visible_at=2.0, name="other"),
    )
    got = await claim_tasks(store, "tw", now=10.0, lease_until=40.0)
    assert [t.task_id for t in got] == [f"{run_id}:3", f"{run_id}:2"]
    assert all(t.status == "queued" for t in got)  # was queued: a fresh attempt
    assert all(t.lease_owner == "tw" and t.lease_expires_at == 40.0 for t in got)
    assert await claim_tasks(store, "tw2", now=10.0) == []  # leased now
    assert [t.task_id for t in await claim_tasks(store, "tw", now=20.0)] == [f"{run_id}:4"]
    assert [t.task_id for t in await claim_tasks(store, "x", queues=["other"])] == [f"{run_id}:5"]
    assert [t.task_id for t in await claim_tasks(store, "x", names=["other"])] == [f"{run_id}:6"]
    _, tasks, _ = await store.read_extras("w", run_id)
    assert {t.status for t in tasks} == {"running"}


async def test_finish_task_done_delivers_the_item(store: Store) -> None:
    run_id = await _with_tasks(store, new_task("", "w", 2))
    [t] = await claim_tasks(store, "tw")
    outcome = TaskOutcome("done", "activity_completed", b"result")
    assert not await store.finish_task(t.task_id, "intruder", 1, outcome, 11.0)
    assert await store.finish_task(t.task_id, "tw", 1, outcome, 11.0)
    assert (await store.read_extras("w", run_id))[1] == []
    run = await store.get_run("w")
    assert run is not None
    assert run.ready
    [claimed] = await claim(store, "w1", now=12.0)
    assert [(i.kind, i.data, i.time) for i in claimed.inbox] == [
        ("activity_completed", b"result", 11.0)
    ]
    assert not await store.finish_task(t.task_id, "tw", 1, outcome, 12.0)  # gone


async def test_finish_task_retry_requeues_later_with_next_attempt(store: Store) -> None:
    run_id = await _with_tasks(store, new_task("", "w", 2))
    [t] = await claim_tasks(store, "tw", now=10.0)
    outcome = TaskOutcome(
        "retry", "activity_retrying", b"err-1", visible_at=30.0, last_error=b"boom"
    )
    assert await store.finish_task(t.task_id, "tw", 1, outcome, 11.0)
    [requeued] = (await store.read_extras("w", run_id))[1]
    assert (requeued.status, requeued.attempt, requeued.visible_at) == ("queued", 2, 30.0)
    assert requeued.last_error == b"boom"
    assert requeued.lease_owner is None
    assert await peek(store, run_id) == [("activity_retrying", b"err-1")]
    assert await claim_tasks(store, "tw", now=29.0) == []
    assert await store.fire_timers(12.0, 100) == 30.0  # the delayed task is the next due
    [again] = await claim_tasks(store, "tw2", now=30.0)
    assert (again.task_id, again.attempt, again.status) == (t.task_id, 2, "queued")


async def test_finish_task_release_requeues_same_attempt_silently(store: Store) -> None:
    run_id = await _with_tasks(store, new_task("", "w", 2))
    [t] = await claim_tasks(store, "tw", now=10.0)
    assert await store.finish_task(t.task_id, "tw", 1, TaskOutcome("release"), 11.0)
    [released] = (await store.read_extras("w", run_id))[1]
    assert (released.status, released.attempt, released.lease_owner) == ("queued", 1, None)
    assert await peek(store, run_id) == []
    [again] = await claim_tasks(store, "tw2", now=12.0)
    assert again.attempt == 1


async def test_expired_task_is_reclaimed_running_and_old_owner_is_fenced(store: Store) -> None:
    run_id = await _with_tasks(store, new_task("", "w", 2))
    [t] = await claim_tasks(store, "dead", now=10.0, lease_until=20.0)
    assert await claim_tasks(store, "alive", now=19.0) == []
    [lost] = await claim_tasks(store, "alive", now=20.0, lease_until=50.0)
    assert (lost.task_id, lost.status, lost.lease_owner, lost.attempt) == (
        t.task_id,
        "running",
        "alive",
        1,
    )
    done = TaskOutcome("done", "activity_completed", b"late")
    assert not await store.finish_task(t.task_id, "dead", 1, done, 21.0)
    [row] = (await store.read_extras("w", run_id))[1]
    assert row.lease_owner == "alive"
    assert await peek(store, run_id) == []


async def test_an_attempt_declared_lost_is_fenced_out_by_its_retry(store: Store) -> None:
    """Attempt 1 outlives its lease, another worker declares it lost and retries, and the
    next attempt lands on attempt 1's worker again: the owner matches, the attempt does
    not, so attempt 1's late result, heartbeat and commit are all refused."""
    run_id = await _with_tasks(store, new_task("", "w", 2))
    await store.register_worker(worker("w1", at=10.0))
    [t] = await claim_tasks(store, "w1", now=10.0, lease_until=20.0)
    [lost] = await claim_tasks(store, "w2", now=20.0, lease_until=50.0)
    retry = TaskOutcome("retry", "activity_retrying", b"lost", visible_at=21.0)
    assert await store.finish_task(lost.task_id, "w2", 1, retry, 20.0)
    [again] = await claim_tasks(store, "w1", now=21.0, lease_until=60.0)
    assert (again.task_id, again.attempt, again.lease_owner) == (t.task_id, 2, "w1")

    late = TaskOutcome("done", "activity_completed", b"from attempt 1")
    assert not await store.finish_task(t.task_id, "w1", 1, late, 22.0)
    lost_ids, _ = await store.heartbeat(
        "w1", runs=[], tasks={t.task_id: (1, b"attempt 1")}, now=22.0, lease_until=99.0
    )
    assert lost_ids == {t.task_id}
    [row] = (await store.read_extras("w", run_id))[1]
    assert (row.attempt, row.lease_expires_at, row.heartbeat_details) == (2, 60.0, None)
    stale = StepCommit(
        run_id, "w1", 2, entries(3, "activity_completed"), finished_tasks={t.task_id: 1}
    )
    assert await store.commit_steps([stale], 22.0) == [False]
    assert len(await store.read_journal(run_id)) == 2

    lost_ids, _ = await store.heartbeat(
        "w1", runs=[], tasks={t.task_id: (2, b"attempt 2")}, now=23.0, lease_until=99.0
    )
    assert lost_ids == set()
    fresh = StepCommit(
        run_id, "w1", 2, entries(3, "activity_completed"), finished_tasks={t.task_id: 2}
    )
    assert await store.commit_steps([fresh], 24.0) == [True]
    assert (await store.read_extras("w", run_id))[1] == []


async def test_claim_tasks_leaves_the_claimers_own_live_attempts_alone(store: Store) -> None:
    """A worker late to renew its leases does not take back tasks it is still running
    (``exclude``), only those it lost track of, nor a retry of one; other workers take
    any lapsed lease."""
    await _with_tasks(store, new_task("", "w", 2), new_task("", "w", 3), new_task("", "w", 4))
    a, b = await claim_tasks(store, "w1", now=10.0, lease_until=20.0, limit=2)
    [c] = await claim_tasks(store, "w1", now=10.0, lease_until=15.0)
    [lost] = await claim_tasks(store, "w2", now=15.0, lease_until=45.0)  # c, presumed dead
    retry = TaskOutcome("retry", "activity_retrying", b"", visible_at=15.0)
    assert await store.finish_task(lost.task_id, "w2", 1, retry, 15.0)
    running = [a.task_id, c.task_id]  # w1 still runs c's attempt 1, and a
    [mine] = await claim_tasks(store, "w1", now=25.0, lease_until=55.0, exclude=running)
    assert (mine.task_id, mine.status) == (b.task_id, "running")
    theirs = await claim_tasks(store, "w2", now=26.0, lease_until=56.0)
    assert [(t.task_id, t.status, t.lease_owner) for t in theirs] == [
        (a.task_id, "running", "w2"),
        (c.task_id, "queued", "w2"),
    ]


async def test_finish_task_of_a_closed_run_drops_the_item(store: Store) -> None:
    run_id = await _with_tasks(store, new_task("", "w", 2))
    [t] = await claim_tasks(store, "tw")
    await store.terminate(run_id, entry_data=b"", error=b"", now=11.0, parent_item=None)
    assert await store.finish_task(
        t.task_id, "tw", 1, TaskOutcome("done", "activity_completed", b"r"), 12.0
    )
    assert (await store.read_extras("w", run_id))[1] == []
    assert await peek(store, run_id) == []


# ---- timers -------------------------------------------------------------------------------


async def test_fire_timers_delivers_due_ones_and_reports_the_next(store: Store) -> None:
    assert await store.fire_timers(0.0, 100) is None
    run_id = await start(store, "w")
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "timer_started", "timer_started", "timer_started"),
        new_timers=[
            NewTimer(run_id, 2, 50.0, b"t2"),
            NewTimer(run_id, 3, 100.0, b"t3"),
            NewTimer(run_id, 4, 40.0, b"t4"),
        ],
    )
    assert await store.commit_steps([step], 4.0) == [True]
    assert await store.fire_timers(10.0, 100) == 40.0
    assert await store.fire_timers(60.0, 1) == 50.0  # limit 1: the earliest (40) fires
    assert await store.fire_timers(60.0, 100) == 100.0
    run = await store.get_run("w")
    assert run is not None
    assert run.ready
    [claimed] = await claim(store, "w1", now=61.0)
    assert [(i.kind, i.data, i.time) for i in claimed.inbox] == [
        ("timer_fired", b"t4", 60.0),
        ("timer_fired", b"t2", 60.0),
    ]
    assert await store.fire_timers(100.0, 100) is None


async def test_fire_timers_exactly_once_across_racing_stores(store_url: str) -> None:
    async with open_store(store_url) as a, open_store(store_url) as b:
        run_ids = [await start(a, f"w{i}", at=float(i)) for i in range(5)]
        timers = {
            r: [NewTimer(r, 2 + k, 10.0 + k, f"{r}/{k}".encode()) for k in range(20)]
            for r in run_ids
        }
        steps = [
            StepCommit(r, "w1", 1, entries(2, *["timer_started"] * 20), new_timers=t)
            for r, t in timers.items()
        ]
        assert await a.commit_steps(steps, 5.0) == [True] * 5
        for _ in range(10):
            await asyncio.gather(*(s.fire_timers(50.0, 7) for s in (a, b, a, b)))
        claimed = await claim(a, "w1", now=60.0)
        assert {c.run.run_id for c in claimed} == set(run_ids)
        for c in claimed:  # each timer exactly once (concurrent firings may interleave)
            assert sorted(i.data for i in c.inbox) == sorted(t.data for t in timers[c.run.run_id])
            assert {i.kind for i in c.inbox} == {"timer_fired"}


# ---- terminate, heartbeats, workers ------------------------------------------------------


async def test_terminate_closes_at_once_and_revokes_the_lease(store: Store) -> None:
    parent = await start(store, "parent", owner="p")
    run, _ = await store.create_run(
        new_run("w", at=2.0, parent_id="parent", parent_run_id=parent), if_exists="error"
    )
    [c] = await claim(store, "w1", now=3.0)
    assert c.run.run_id == run.run_id
    step = StepCommit(
        run.run_id,
        "w1",
        0,
        entries(1, "workflow_started", "activity_scheduled", "timer_started", "activity_scheduled"),
        status="running",
        new_tasks=[new_task(run.run_id, "w", 2), new_task(run.run_id, "w", 4)],
        new_timers=[NewTimer(run.run_id, 3, 50.0, b"t")],
    )
    assert await store.commit_steps([step], 4.0) == [True]
    [running] = await claim_tasks(store, "tw", now=5.0, limit=1)
    parent_item = Outgoing("parent", "child_failed", b"terminated", run_id=parent)
    assert await store.terminate(
        run.run_id, entry_data=b"why", error=b"err", now=6.0, parent_item=parent_item
    )
    closed = await store.get_run("w")
    assert closed is not None
    assert (closed.status, closed.error, closed.closed_at) == ("terminated", b"err", 6.0)
    assert closed.lease_owner is None
    assert closed.history_length == 5
    last = (await store.read_journal(run.run_id))[-1]
    assert (last.seq, last.kind, last.data, last.time) == (5, "workflow_terminated", b"why", 6.0)
    next_step = StepCommit(run.run_id, "w1", 4, entries(5, "marker"))
    assert await store.commit_steps([next_step], 7.0) == [False]
    _, tasks, _ = await store.read_extras("w", run.run_id)
    assert [(t.task_id, t.cancel_requested) for t in tasks] == [(running.task_id, True)]
    assert await store.fire_timers(AFTER, 100) is None
    assert await peek(store, parent) == [("child_failed", b"terminated")]
    assert not await store.terminate(
        run.run_id, entry_data=b"", error=b"", now=8.0, parent_item=parent_item
    )
    assert len(await store.read_journal(run.run_id)) == 5


async def test_heartbeat_extends_leases_and_reports_lost_and_cancelled(store: Store) -> None:
    await store.register_worker(worker("w1", at=1.0))
    mine = await start(store, "mine", owner="w1")
    theirs = await start(store, "theirs", owner="w2", at=1.5)
    run_id = await _with_tasks(store, new_task("", "t", 2), new_task("", "t", 3), wid="t")
    a, b = await claim_tasks(store, "w1", now=10.0, lease_until=20.0)
    cancel = StepCommit(run_id, "w1", 3, [], cancelled_tasks=[b.task_id])
    assert await store.commit_steps([cancel], 11.0) == [True]
    lost, cancelled = await store.heartbeat(
        "w1",
        runs=[mine, theirs, "no-such-run"],
        tasks={a.task_id: (1, b"progress"), b.task_id: (1, None), "no-such-task": (1, None)},
        now=12.0,
        lease_until=300.0,
    )
    assert lost == {theirs, "no-such-run", "no-such-task"}
    assert cancelled == {b.task_id}
    run = await store.get_run("mine")
    assert run is not None
    assert run.lease_expires_at == 300.0
    other = await store.get_run("theirs")
    assert other is not None
    assert other.lease_owner == "w2"
    assert other.lease_expires_at == LEASE
    tasks = {t.task_id: t for t in (await store.read_extras("t", run_id))[1]}
    assert tasks[a.task_id].lease_expires_at == 300.0
    assert tasks[a.task_id].heartbeat_details == b"progress"
    await store.heartbeat("w1", runs=[], tasks={a.task_id: (1, None)}, now=13.0, lease_until=300.0)
    tasks = {t.task_id: t for t in (await store.read_extras("t", run_id))[1]}
    assert tasks[a.task_id].heartbeat_details == b"progress"  # None keeps the old details
    assert await claim_tasks(store, "w3", now=250.0) == []  # extended beyond 20


async def test_a_heartbeat_says_when_its_worker_was_dropped(store: Store) -> None:
    """A worker that stalled past `WORKER_GONE_SECONDS` was dropped from ``workers`` by
    someone else's heartbeat; its own next heartbeat says so (its id in ``lost``), so it
    registers again rather than stay unlisted for good."""
    await store.register_worker(worker("stalled", at=0.0))
    lost, _ = await store.heartbeat("stalled", runs=[], tasks={}, now=5.0, lease_until=LEASE)
    assert lost == set()
    await store.heartbeat("other", runs=[], tasks={}, now=3600.0, lease_until=LEASE)
    assert await store.list_workers() == []
    lost, _ = await store.heartbeat("stalled", runs=[], tasks={}, now=3601.0, lease_until=LEASE)
    assert lost == {"stalled"}


async def test_silent_workers_are_dropped_by_a_heartbeat(store: Store) -> None:
    await store.register_worker(worker("quiet", at=0.0))
    described = {"wf": '{"text": "(a: int)", "params": [["a", "POSITIONAL_OR_KEYWORD", 0]]}'}
    await store.register_worker(
        worker("busy", at=0.0, queues=("default", "q2"), signatures=described)
    )
    workers = {w.worker_id: w for w in await store.list_workers()}
    assert set(workers) == {"quiet", "busy"}
    assert workers["busy"].signatures == described  # kept as given, for starts by name
    assert workers["quiet"].signatures == {}
    assert workers["busy"].queues == ("default", "q2")
    assert workers["busy"].pid == 4242
    assert workers["busy"].workflows == ("wf",)
    assert workers["busy"].activities == ("act",)
    await store.heartbeat("busy", runs=[], tasks={}, now=5.0, lease_until=LEASE)
    assert {w.worker_id for w in await store.list_workers()} == {"quiet", "busy"}
    await store.heartbeat("busy", runs=[], tasks={}, now=3600.0, lease_until=LEASE)
    [busy] = await store.list_workers()
    assert busy.worker_id == "busy"
    assert busy.heartbeat_at == 3600.0


async def test_deregister_hands_back_leases_at_once(store: Store) -> None:
    await store.register_worker(worker("w1"))
    run_id = await start(store, "w", owner="w1")
    other = await start(store, "other", owner="w2", at=1.5)
    task_run = await _with_tasks(store, new_task("", "t", 2), wid="t")
    [t] = await claim_tasks(store, "w1", now=10.0)
    await store.deregister_worker("w1", 11.0)
    assert [w.worker_id for w in await store.list_workers()] == []
    run = await store.get_run("w")
    assert run is not None
    assert run.lease_owner is None
    assert run.ready
    claimed = await claim(store, "w3", now=12.0)  # long before the old lease would expire
    assert run_id in {c.run.run_id for c in claimed}
    assert other not in {c.run.run_id for c in claimed}  # w2's lease untouched
    [again] = await claim_tasks(store, "w3", now=12.0)
    assert (again.task_id, again.attempt, again.status) == (t.task_id, 1, "queued")
    assert again.run_id == task_run


# ---- wake-ups -----------------------------------------------------------------------------


async def _wakes(
    store: Store, topics: list[str], action: Any, timeout: float = 5.0, since: int | None = None
) -> float:
    """Seconds ``store.wait`` took to return while ``action`` runs concurrently."""
    started = time.monotonic()

    async def act() -> None:
        await asyncio.sleep(0.05)
        await action()

    async with asyncio.TaskGroup() as tg:
        tg.create_task(act())
        await store.wait(topics, timeout, since)
    return time.monotonic() - started


async def test_wait_times_out_when_nothing_happens(store: Store) -> None:
    started = time.monotonic()
    await store.wait([TOPIC_RUNS, TOPIC_TASKS, TOPIC_TIMERS], 0.3)
    await store.wait([run_topic("w")], 0.2)
    assert 0.45 <= time.monotonic() - started < 2.0


async def test_wait_wakes_on_another_store_of_the_same_database(store_url: str) -> None:
    async with open_store(store_url) as waiter, open_store(store_url) as other:
        await claim(waiter, "w1")
        run, _ = await other.create_run(new_run("w"), if_exists="error")
        took = await _wakes(waiter, [TOPIC_RUNS], lambda: other.send("w", SIGNAL, b"", 1.0))
        assert took < 2.0
        await claim(waiter, "w1")  # run is now leased to w1

        async def close() -> None:
            await other.terminate(run.run_id, entry_data=b"", error=b"", now=2.0, parent_item=None)

        took = await _wakes(waiter, [run_topic("w")], close)
        assert took < 2.0


async def test_wait_since_catches_a_notification_before_the_wait(store_url: str) -> None:
    async with open_store(store_url) as waiter, open_store(store_url) as other:
        await other.create_run(new_run("w"), if_exists="error")
        assert await claim(waiter, "w1") != []
        mark = waiter.watermark()
        assert await claim(waiter, "w1") == []
        await other.send("w", SIGNAL, b"", 1.0)  # lands between query and wait
        started = time.monotonic()
        await waiter.wait([TOPIC_RUNS], 5.0, since=mark)
        assert time.monotonic() - started < 1.0


_SEND_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from durable.store import open_store

async def main() -> None:
    async with open_store(sys.argv[1]) as store:
        await store.send("w", "signal_received", b"from afar", 2.0)

asyncio.run(main())
"""


async def test_wait_sees_a_commit_by_another_process(store_url: str) -> None:
    async with open_store(store_url) as waiter:
        await waiter.create_run(new_run("w"), if_exists="error")
        assert await claim(waiter, "w1") != []
        assert await claim(waiter, "w1") == []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SEND_FROM_ANOTHER_PROCESS, store_url
        )
        started = time.monotonic()
        claimed: list[ClaimedRun] = []
        while not claimed and time.monotonic() - started < 20.0:
            mark = waiter.watermark()
            claimed = await claim(waiter, "w1")
            if not claimed:
                # No in-process notification comes: only the cross-process path wakes this
                # before its 30 s timeout.
                await waiter.wait([TOPIC_RUNS], 30.0, since=mark)
        assert await proc.wait() == 0
        assert time.monotonic() - started < 20.0
        assert [i.data for i in claimed[0].inbox] == [b"from afar"]


async def test_a_commit_by_another_process_before_the_wait_is_not_missed(store_url: str) -> None:
    async with open_store(store_url) as waiter:
        await waiter.create_run(new_run("w"), if_exists="error")
        assert await claim(waiter, "w1") != []
        mark = waiter.watermark()
        assert await claim(waiter, "w1") == []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SEND_FROM_ANOTHER_PROCESS, store_url
        )
        assert await proc.wait() == 0  # committed between our query and our wait
        started = time.monotonic()
        await waiter.wait([TOPIC_RUNS], 30.0, since=mark)
        assert time.monotonic() - started < 10.0
        [claimed] = await claim(waiter, "w1")
        assert [i.data for i in claimed.inbox] == [b"from afar"]


_STEP_FROM_ANOTHER_PROCESS = """
import asyncio, sys
from durable.store import JournalEntry, StepCommit, open_store

async def main() -> None:
    url, run_id, status = sys.argv[1], sys.argv[2], sys.argv[3]
    async with open_store(url) as store:
        entry = JournalEntry(2, "workflow_" + status, 4.0, b"")
        step = StepCommit(run_id, "w1", 1, [entry], status=status, result=b"r",
                          published={"k": b"v"})
        assert await store.commit_steps([step], 4.0) == [True]

asyncio.run(main())
"""


@pytest.mark.parametrize("when", ["during", "before"])
async def test_a_workflow_topic_wakes_on_another_process_closing_it(
    store_url: str, when: str
) -> None:
    """``result()`` and ``read()`` wait on a workflow's topic: a step committed by another
    process (the worker) wakes them, whether it lands while they wait or between their
    query and their wait. Only that path can wake this wait before its 30 s timeout."""
    async with open_store(store_url) as waiter:
        run_id = await start(waiter, "w")
        mark = waiter.watermark()
        run = await waiter.get_run("w")
        assert run is not None
        assert run.status == "running"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _STEP_FROM_ANOTHER_PROCESS, store_url, run_id, "completed"
        )
        if when == "before":
            assert await proc.wait() == 0
        started = time.monotonic()
        while time.monotonic() - started < 20.0:
            await waiter.wait([run_topic("w")], 30.0, since=mark)
            mark = waiter.watermark()
            run = await waiter.get_run("w")
            assert run is not None
            if run.status == "completed":
                break
        assert time.monotonic() - started < 20.0, "the other process's commit went unseen"
        assert await proc.wait() == 0
        assert (await waiter.read_extras("w", run_id)).published == {"k": b"v"}


_CLAIM_IN_A_LOOP = """
import asyncio, json, sys
from durable.store import open_store

async def main() -> None:
    url, owner = sys.argv[1], sys.argv[2]
    runs, tasks = [], []
    async with open_store(url) as store:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go", once every process is ready
        while True:
            kw = dict(now=10.0, lease_until=100.0, limit=1)
            got = await store.claim_runs(owner, queues=["default"], names=["wf"], **kw)
            got_tasks = await store.claim_tasks(owner, queues=["default"], names=["act"], **kw)
            if not got and not got_tasks:
                break
            runs += [c.run.run_id for c in got]
            tasks += [t.task_id for t in got_tasks]
            await asyncio.sleep(0.001)  # let the others in: SQLite's lock is not fair
    print(json.dumps([runs, tasks]))

asyncio.run(main())
"""


async def test_processes_racing_to_claim_never_share_a_run_or_task(store_url: str) -> None:
    async with open_store(store_url) as store:
        holder, _ = await store.create_run(new_run("holder", name="x"), if_exists="error")
        await claim(store, "setup", names=["x"])
        tasks = [new_task(holder.run_id, "holder", seq) for seq in range(2, 62)]
        kinds = ["workflow_started"] + ["activity_scheduled"] * 60
        step = StepCommit(holder.run_id, "setup", 0, entries(1, *kinds), new_tasks=tasks)
        assert await store.commit_steps([step], 3.0) == [True]
        runs = [
            (await store.create_run(new_run(f"r{i}", at=float(i)), if_exists="error"))[0]
            for i in range(60)
        ]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CLAIM_IN_A_LOOP,
            store_url,
            f"p{i}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(3)
    ]
    # All start claiming at once, once each has imported and opened the store (a time
    # agreed in advance let one process take everything when the machine was slow).
    for p in procs:
        assert p.stdout is not None
        assert await asyncio.wait_for(p.stdout.readline(), 60) == b"ready\n"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(b"go\n")
    await asyncio.gather(*(p.stdin.drain() for p in procs if p.stdin is not None))
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0]
    results = [json.loads(out) for out, _ in outputs]
    claimed_runs = [r for runs_, _ in results for r in runs_]
    claimed_tasks = [t for _, tasks_ in results for t in tasks_]
    assert sorted(claimed_runs) == sorted(r.run_id for r in runs)  # each exactly once
    assert sorted(claimed_tasks) == sorted(t.task_id for t in tasks)
    assert sum(1 for runs_, tasks_ in results if runs_ or tasks_) >= 2  # they did race
