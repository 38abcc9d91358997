"""The storage contract, part 1: runs, the inbox, claims, commits, children and routing.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from durable.errors import StoreError, WorkflowAlreadyExists, WorkflowNotFound
from durable.store import (
    NewTimer,
    Outgoing,
    StepCommit,
    Store,
    open_store,
)

from .kit import (
    AFTER,
    LEASE,
    SIGNAL,
    claim,
    claim_tasks,
    entries,
    journal_kinds,
    new_run,
    new_task,
    peek,
    start,
    worker,
)

__all__ = [
    "test_a_restart_does_not_inherit_published_values",
    "test_cancelled_timers_and_tasks",
    "test_claim_filters_by_queue_name_and_takes_oldest_first",
    "test_claim_returns_inbox_in_order_and_clears_ready",
    "test_closing_cleans_up_timers_tasks_and_lease",
    "test_commit_step_writes_everything",
    "test_concurrent_creates_are_written_together_each_with_its_own_answer",
    "test_concurrent_creates_of_one_id_one_wins",
    "test_concurrent_opens_of_an_empty_database_migrate_once",
    "test_create_run_if_exists",
    "test_create_run_is_pending_ready_and_current",
    "test_fencing_rejects_bad_steps_and_accepts_the_rest",
    "test_lease_blocks_other_owners_until_it_expires",
    "test_park_and_unpark_by_a_registering_worker",
    "test_published_values_are_upserted",
    "test_release_lease_lets_another_worker_claim",
    "test_send_targets_current_or_given_run",
    "test_two_steps_of_one_run_chain_in_one_batch",
    "test_use_before_open_and_after_close_raises",
]

# ---- lifecycle ---------------------------------------------------------------------------


async def test_use_before_open_and_after_close_raises(store_url: str) -> None:
    s = open_store(store_url)
    with pytest.raises(StoreError, match="not open"):
        await s.get_run("x")
    await s.open()
    assert await s.get_run("x") is None
    await s.aclose()
    await s.aclose()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await s.get_run("x")
    with pytest.raises(StoreError, match="closed"):
        await s.commit_steps([StepCommit("r", "w", 0, [])], 1.0)


async def test_concurrent_opens_of_an_empty_database_migrate_once(store_url: str) -> None:
    """Four stores opened at once on an empty database all open, share one database (each
    sees what every other wrote), and a second round of concurrent opens of the migrated
    database leaves what is in it alone (no migration runs again over it)."""
    stores = [open_store(store_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        specs = [new_run(f"w{i}") for i in range(len(stores))]
        for s, spec in zip(stores, specs, strict=True):
            await s.create_run(spec, if_exists="error")
        for s in stores:
            seen = {r.workflow_id: r.run_id for r in await s.list_runs()}
            assert seen == {spec.workflow_id: spec.run_id for spec in specs}
    finally:
        for s in stores:
            await s.aclose()
    again = [open_store(store_url) for _ in range(4)]
    await asyncio.gather(*(s.open() for s in again))
    try:
        for s, spec in zip(again, specs, strict=True):
            run = await s.get_run(spec.workflow_id)
            assert run is not None
            assert (run.run_id, run.status) == (spec.run_id, "pending")
            existing, created = await s.create_run(new_run(spec.workflow_id), if_exists="return")
            assert (existing.run_id, created) == (spec.run_id, False)
    finally:
        for s in again:
            await s.aclose()


# ---- creating runs -----------------------------------------------------------------------


async def test_create_run_is_pending_ready_and_current(store: Store) -> None:
    spec = new_run("w", at=7.5, timeout=30.0, parent_id="p", parent_run_id="p-1")
    run, created = await store.create_run(spec, if_exists="return")
    assert created
    stored = await store.get_run("w")
    assert stored == run
    assert (run.run_id, run.status, run.ready, run.is_current) == (
        spec.run_id,
        "pending",
        True,
        True,
    )
    assert (run.input, run.created_at, run.timeout) == (spec.input, 7.5, 30.0)
    assert (run.parent_id, run.parent_run_id, run.history_length) == ("p", "p-1", 0)
    assert run.lease_owner is None
    assert run.closed_at is None
    assert not run.parked
    assert await store.get_run("w", spec.run_id) == run
    assert await store.get_run("w", "other-run") is None
    assert await store.get_run("nobody") is None


async def test_create_run_if_exists(store: Store) -> None:
    first, _ = await store.create_run(new_run("w"), if_exists="error")
    again, created = await store.create_run(new_run("w"), if_exists="return")
    assert (again.run_id, created) == (first.run_id, False)
    with pytest.raises(WorkflowAlreadyExists, match="'w'"):
        await store.create_run(new_run("w"), if_exists="error")
    # restart while open: the open run is returned
    again, created = await store.create_run(new_run("w"), if_exists="restart")
    assert (again.run_id, created) == (first.run_id, False)
    # close it, then restart makes a new current run and keeps the old one
    await store.terminate(first.run_id, entry_data=b"", error=b"e", now=5.0, parent_item=None)
    restarted, created = await store.create_run(new_run("w", at=6.0), if_exists="restart")
    assert created
    assert restarted.run_id != first.run_id
    current = await store.get_run("w")
    assert current is not None
    assert current.run_id == restarted.run_id
    assert current.is_current
    old = await store.get_run("w", first.run_id)
    assert old is not None
    assert not old.is_current
    assert old.status == "terminated"
    # "return" on a closed current run hands it back rather than restarting
    await store.terminate(restarted.run_id, entry_data=b"", error=b"e", now=7.0, parent_item=None)
    back, created = await store.create_run(new_run("w"), if_exists="return")
    assert (back.run_id, created) == (restarted.run_id, False)


async def test_concurrent_creates_are_written_together_each_with_its_own_answer(
    store: Store,
) -> None:
    """create_run calls that overlap go into one create_runs transaction (a client
    starting many workflows pays one durable write per batch), each caller still getting
    its own result or its own WorkflowAlreadyExists."""
    batches: list[int] = []
    real = store.create_runs

    async def counted(runs: Any) -> Any:
        batches.append(len(runs))
        return await real(runs)

    store.create_runs = counted  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(store.create_run(new_run(f"many-{i}"), if_exists="error") for i in range(50)),
        store.create_run(new_run("dup", run_id="dup-1"), if_exists="error"),
        store.create_run(new_run("dup", run_id="dup-2"), if_exists="error"),
        store.create_run(new_run("dup", run_id="dup-3"), if_exists="return"),
        return_exceptions=True,
    )
    created = results[:50]
    assert all(isinstance(r, tuple) and r[1] for r in created)
    assert sorted(r[0].workflow_id for r in created) == sorted(f"many-{i}" for i in range(50))  # type: ignore[index]
    first, second, third = results[50:]
    assert isinstance(first, tuple)
    assert first[0].run_id == "dup-1"
    assert isinstance(second, WorkflowAlreadyExists)
    assert "'dup'" in str(second)
    assert isinstance(third, tuple)
    assert (third[0].run_id, third[1]) == ("dup-1", False)
    assert sum(batches) == 53
    assert len(batches) < 10, f"{len(batches)} transactions for 53 concurrent creates"
    listed = {r.workflow_id for r in await store.list_runs(limit=100)}
    assert listed == {f"many-{i}" for i in range(50)} | {"dup"}
    with pytest.raises(ValueError, match="if_exists must be"):
        await store.create_run(new_run("x"), if_exists="sometimes")  # type: ignore[arg-type]


async def test_a_restart_does_not_inherit_published_values(store: Store) -> None:
    run_id = await start(store, "w")
    close = StepCommit(
        run_id, "w1", 1, entries(2, "published", "workflow_completed"),
        published={"progress": b"100%"}, status="completed", result=b"r",
    )  # fmt: skip
    assert await store.commit_steps([close], 4.0) == [True]
    assert (await store.read_extras("w", run_id)).published == {"progress": b"100%"}
    again, created = await store.create_run(new_run("w", at=6.0), if_exists="restart")
    assert created
    assert (await store.read_extras("w", again.run_id)).published == {}


@pytest.mark.parametrize("mode", ["return", "error", "restart"])
async def test_concurrent_creates_of_one_id_one_wins(store_url: str, mode: str) -> None:
    async with open_store(store_url) as a, open_store(store_url) as b:
        for i in range(10):
            specs = [new_run(f"race-{i}"), new_run(f"race-{i}")]
            results = await asyncio.gather(
                a.create_run(specs[0], if_exists=mode),  # type: ignore[arg-type]
                b.create_run(specs[1], if_exists=mode),  # type: ignore[arg-type]
                return_exceptions=True,
            )
            wins = [r for r in results if isinstance(r, tuple) and r[1]]
            assert len(wins) == 1, results
            winner = wins[0][0].run_id
            for r in results:
                if isinstance(r, tuple):
                    assert r[0].run_id == winner
                else:
                    assert mode == "error"
                    assert isinstance(r, WorkflowAlreadyExists)
            current = await a.get_run(f"race-{i}")
            assert current is not None
            assert current.run_id == winner


async def test_send_targets_current_or_given_run(store: Store) -> None:
    with pytest.raises(WorkflowNotFound):
        await store.send("nobody", SIGNAL, b"x", 1.0)
    run, _ = await store.create_run(new_run("w"), if_exists="error")
    with pytest.raises(WorkflowNotFound):
        await store.send("w", SIGNAL, b"x", 1.0, run_id="no-such-run")
    assert await store.send("w", SIGNAL, b"x", 1.0) == run.run_id
    assert await store.send("w", SIGNAL, b"y", 1.0, run_id=run.run_id) == run.run_id
    await store.terminate(run.run_id, entry_data=b"", error=b"", now=2.0, parent_item=None)
    assert await store.send("w", SIGNAL, b"z", 3.0) is None
    assert await store.send("w", SIGNAL, b"z", 3.0, run_id=run.run_id) is None


async def test_claim_returns_inbox_in_order_and_clears_ready(store: Store) -> None:
    run_id = await start(store, "w")
    assert await claim(store, "w1") == []  # nothing new: not ready
    for i in range(3):
        await store.send("w", SIGNAL, f"s{i}".encode(), 4.0 + i)
    run = await store.get_run("w")
    assert run is not None
    assert run.ready
    [claimed] = await claim(store, "w1")
    assert claimed.run.run_id == run_id
    assert not claimed.run.ready
    assert claimed.run.lease_owner == "w1"
    assert claimed.run.lease_expires_at == LEASE
    assert [i.data for i in claimed.inbox] == [b"s0", b"s1", b"s2"]
    assert [i.time for i in claimed.inbox] == [4.0, 5.0, 6.0]
    ids = [i.id for i in claimed.inbox]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3
    run = await store.get_run("w")
    assert run is not None
    assert not run.ready
    assert await claim(store, "w1") == []


async def test_claim_filters_by_queue_name_and_takes_oldest_first(store: Store) -> None:
    await store.create_run(new_run("late", at=3.0), if_exists="error")
    await store.create_run(new_run("early", at=1.0), if_exists="error")
    await store.create_run(new_run("middle", at=2.0), if_exists="error")
    await store.create_run(new_run("q2", at=0.5, queue="other"), if_exists="error")
    await store.create_run(new_run("n2", at=0.5, name="other"), if_exists="error")
    first = await claim(store, "w1", limit=2)
    assert [c.run.workflow_id for c in first] == ["early", "middle"]
    assert [c.run.workflow_id for c in await claim(store, "w1")] == ["late"]
    assert [c.run.workflow_id for c in await claim(store, "w2", queues=["other"])] == ["q2"]
    assert [c.run.workflow_id for c in await claim(store, "w2", names=["other"])] == ["n2"]


async def test_lease_blocks_other_owners_until_it_expires(store: Store) -> None:
    run_id = await start(store, "w", owner="a")
    await store.send("w", SIGNAL, b"x", 4.0)
    assert await claim(store, "b", now=50.0) == []  # ready, but leased to a
    [mine] = await claim(store, "a", now=50.0, lease_until=60.0)  # a's own: claimable
    assert [i.data for i in mine.inbox] == [b"x"]
    assert await claim(store, "b", now=59.9) == []
    # a dies: its lease expires; b claims though nothing new arrived (run not ready)
    [taken] = await claim(store, "b", now=60.0, lease_until=200.0)
    assert taken.run.run_id == run_id
    assert taken.run.lease_owner == "b"
    assert [i.data for i in taken.inbox] == [b"x"]  # still unconsumed
    assert await claim(store, "a", now=61.0) == []
    late = StepCommit(run_id, "a", 1, entries(2, "marker"))
    assert await store.commit_steps([late], 61.0) == [False]


async def test_park_and_unpark_by_a_registering_worker(store: Store) -> None:
    run_id = await start(store, "w", owner="a")
    await store.park(run_id, "someone-else", "not mine")  # no-op
    run = await store.get_run("w")
    assert run is not None
    assert not run.parked
    assert run.lease_owner == "a"
    await store.park(run_id, "a", "NonDeterminismError: boom")
    run = await store.get_run("w")
    assert run is not None
    assert run.parked
    assert run.problem == "NonDeterminismError: boom"
    assert run.lease_owner is None
    assert run.status == "running"
    assert run.history_length == 1
    await store.send("w", SIGNAL, b"x", 5.0)
    assert await claim(store, "b", now=AFTER) == []  # parked: not claimable
    await store.register_worker(worker("c", workflows=("unrelated",)))
    assert await claim(store, "b", now=AFTER) == []
    await store.register_worker(worker("d", queues=("other",)))
    assert await claim(store, "b", now=AFTER) == []
    await store.register_worker(worker("e"), unpark=False)  # re-registering after a stall
    assert await claim(store, "b", now=AFTER) == []
    assert "e" in {w.worker_id for w in await store.list_workers()}
    await store.register_worker(worker("e"))
    run = await store.get_run("w")
    assert run is not None
    assert not run.parked
    assert run.problem is None
    assert run.ready
    [claimed] = await claim(store, "b", now=AFTER)
    assert claimed.run.run_id == run_id


# ---- commit_steps -------------------------------------------------------------------------


async def test_commit_step_writes_everything(store: Store) -> None:
    run_id = await start(store, "w")
    other, _ = await store.create_run(new_run("other", name="x"), if_exists="error")
    await store.send("w", SIGNAL, b"a", 4.0)
    await store.send("w", SIGNAL, b"b", 4.0)
    [claimed] = await claim(store, "w1")
    first = claimed.inbox[0]
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, SIGNAL, "activity_scheduled", "activity_scheduled", "timer_started"),
        consumed_inbox=[first.id],
        new_tasks=[new_task(run_id, "w", 3), new_task(run_id, "w", 4, lease_owner="w1")],
        new_timers=[NewTimer(run_id, 5, 50.0, b"timer-5")],
        new_runs=[new_run("child", at=6.0, parent_id="w", parent_run_id=run_id)],
        outgoing=[Outgoing("other", SIGNAL, b"hello")],
        published={"progress": b"1"},
        problem="history is long",
    )
    assert await store.commit_steps([step], 6.0) == [True]
    journal = await store.read_journal(run_id)
    assert [e.seq for e in journal] == [1, 2, 3, 4, 5]
    assert journal[1] == step.entries[0]
    assert [e.seq for e in await store.read_journal(run_id, after_seq=3)] == [4, 5]
    # The same entries as plain rows (what durable.steps.build_rows walks).
    rows = [(e.seq, e.kind, e.time, e.data) for e in journal]
    assert await store.read_journal_rows(run_id) == rows
    assert await store.read_journal_rows(run_id, after_seq=3) == rows[3:]
    assert await store.read_journal_rows(run_id, after_seq=1, limit=2) == rows[1:3]
    assert await store.read_journal_rows(run_id, limit=0) == []
    run = await store.get_run("w")
    assert run is not None
    assert (run.history_length, run.updated_at, run.status) == (5, 6.0, "running")
    assert run.problem == "history is long"
    assert run.lease_owner == "w1"
    published, tasks, _ = await store.read_extras("w", run_id)
    assert published == {"progress": b"1"}
    by_id = {t.task_id: t for t in tasks}
    assert by_id[f"{run_id}:3"].status == "queued"
    assert by_id[f"{run_id}:3"].lease_owner is None
    assert by_id[f"{run_id}:3"].attempt == 1
    assert by_id[f"{run_id}:3"].data == b"spec"
    assert by_id[f"{run_id}:4"].status == "running"
    assert by_id[f"{run_id}:4"].lease_owner == "w1"
    child = await store.get_run("child")
    assert child is not None
    assert child.status == "pending"
    assert child.ready
    assert (child.parent_id, child.parent_run_id) == ("w", run_id)
    assert await peek(store, other.run_id) == [(SIGNAL, b"hello")]
    # the consumed item is gone, the other one stays
    assert await peek(store, run_id) == [(SIGNAL, b"b")]
    # the timer exists: it fires at 50
    assert await store.fire_timers(49.0, 100) == 50.0


async def test_published_values_are_upserted(store: Store) -> None:
    run_id = await start(store, "w")
    steps = [
        StepCommit(run_id, "w1", 1, entries(2, "published"), published={"k": b"1", "j": b"j"}),
        StepCommit(run_id, "w1", 2, entries(3, "published"), published={"k": b"2"}),
    ]
    assert await store.commit_steps(steps, 4.0) == [True, True]
    published, _, _ = await store.read_extras("w", run_id)
    assert published == {"k": b"2", "j": b"j"}


async def test_fencing_rejects_bad_steps_and_accepts_the_rest(store: Store) -> None:
    good = await start(store, "good", owner="w1", at=1.0)
    wrong_owner = await start(store, "wrong-owner", owner="w1", at=1.1)
    expired = await start(store, "expired", owner="w1", at=1.2)
    stale = await start(store, "stale", owner="w1", at=1.3)
    closed = await start(store, "closed", owner="w1", at=1.4)
    stolen = await start(store, "stolen", owner="w1", at=1.5)
    # "expired": re-claimed by w1 with a short lease that has run out by commit time
    await store.send("expired", SIGNAL, b"x", 4.0)
    [c] = await claim(store, "w1", now=5.0, lease_until=8.0)
    assert c.run.run_id == expired
    await store.terminate(closed, entry_data=b"", error=b"", now=5.0, parent_item=None)
    # "stolen": a task created leased to w1, then its lease expired and w2 took it
    step = StepCommit(
        stolen,
        "w1",
        1,
        entries(2, "activity_scheduled"),
        new_tasks=[new_task(stolen, "stolen", 2, lease_owner="w1", lease_expires_at=6.0)],
    )
    assert await store.commit_steps([step], 5.0) == [True]
    [t] = await claim_tasks(store, "w2", now=7.0)
    assert t.task_id == f"{stolen}:2"
    assert t.lease_owner == "w2"

    def step_for(run_id: str, owner: str = "w1", expected: int = 1, **kw: Any) -> StepCommit:
        return StepCommit(
            run_id,
            owner,
            expected,
            entries(expected + 1, "timer_started"),
            new_timers=[NewTimer(run_id, expected + 1, 500.0, b"t")],
            new_tasks=[new_task(run_id, "x", 90)],
            published={"p": b"v"},
            status="completed",
            result=b"r",
            **kw,
        )

    batch = [
        step_for(wrong_owner, owner="w9"),
        step_for(expired),
        step_for(stale, expected=0),
        step_for(closed, expected=2),
        step_for(stolen, expected=2, finished_tasks={f"{stolen}:2": 1}),
        step_for(good),
    ]
    assert await store.commit_steps(batch, 9.0) == [False, False, False, False, False, True]
    for wid, run_id, length, status in [
        ("wrong-owner", wrong_owner, 1, "running"),
        ("expired", expired, 1, "running"),
        ("stale", stale, 1, "running"),
        ("closed", closed, 2, "terminated"),
        ("stolen", stolen, 2, "running"),
    ]:
        run = await store.get_run(wid)
        assert run is not None
        assert (run.history_length, run.status, run.result) == (length, status, None), wid
        assert len(await store.read_journal(run_id)) == length
        published, tasks, _ = await store.read_extras(wid, run_id)
        assert published == {}, wid
        assert all(t.seq != 90 for t in tasks), wid
    _, tasks, _ = await store.read_extras("stolen", stolen)
    assert [(t.task_id, t.lease_owner) for t in tasks] == [(f"{stolen}:2", "w2")]
    run = await store.get_run("good")
    assert run is not None
    assert (run.status, run.result, run.history_length) == (
        "completed",
        b"r",
        2,
    )
    assert (await store.read_extras("good", good))[0] == {"p": b"v"}
    # only the good step's timer was created, and closing it deleted it again
    assert await store.fire_timers(AFTER, 100) is None


async def test_two_steps_of_one_run_chain_in_one_batch(store: Store) -> None:
    run_id = await start(store, "w")
    create = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "activity_scheduled"),
        new_tasks=[new_task(run_id, "w", 2, lease_owner="w1")],
    )
    finish = StepCommit(
        run_id, "w1", 2, entries(3, "activity_completed"), finished_tasks={f"{run_id}:2": 1}
    )
    duplicate = StepCommit(run_id, "w1", 2, entries(3, "marker"))
    assert await store.commit_steps([create, finish, duplicate], 4.0) == [True, True, False]
    assert await journal_kinds(store, run_id) == [
        "workflow_started",
        "activity_scheduled",
        "activity_completed",
    ]
    assert (await store.read_extras("w", run_id))[1] == []


async def test_release_lease_lets_another_worker_claim(store: Store) -> None:
    run_id = await start(store, "w", owner="a")
    step = StepCommit(run_id, "a", 1, entries(2, "marker"), release_lease=True)
    assert await store.commit_steps([step], 4.0) == [True]
    run = await store.get_run("w")
    assert run is not None
    assert run.lease_owner is None
    assert run.history_length == 2
    await store.send("w", SIGNAL, b"x", 5.0)
    [claimed] = await claim(store, "b", now=6.0)
    assert claimed.run.run_id == run_id
    assert claimed.run.lease_owner == "b"


async def test_closing_cleans_up_timers_tasks_and_lease(store: Store) -> None:
    run_id = await start(store, "w")
    setup = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "activity_scheduled", "activity_scheduled", "timer_started"),
        new_tasks=[new_task(run_id, "w", 2), new_task(run_id, "w", 3, visible_at=50.0)],
        new_timers=[NewTimer(run_id, 4, 60.0, b"t")],
    )
    assert await store.commit_steps([setup], 4.0) == [True]
    [running] = await claim_tasks(store, "tw", now=5.0)
    assert running.task_id == f"{run_id}:2"
    close = StepCommit(
        run_id, "w1", 4, entries(5, "workflow_completed"), status="completed", result=b"done"
    )
    assert await store.commit_steps([close], 7.0) == [True]
    run = await store.get_run("w")
    assert run is not None
    assert (run.status, run.result, run.closed_at, run.lease_owner) == (
        "completed",
        b"done",
        7.0,
        None,
    )
    _, tasks, _ = await store.read_extras("w", run_id)
    assert [(t.task_id, t.cancel_requested) for t in tasks] == [(f"{run_id}:2", True)]
    assert await store.fire_timers(AFTER, 100) is None  # timer and delayed task are gone
    lost, cancelled = await store.heartbeat(
        "tw", runs=[], tasks={running.task_id: (1, None)}, now=8.0, lease_until=LEASE
    )
    assert (lost, cancelled) == ({"tw"}, {running.task_id})  # "tw" never registered
    assert await claim(store, "other", now=AFTER) == []
    later = StepCommit(run_id, "w1", 5, entries(6, "marker"))
    assert await store.commit_steps([later], 8.0) == [False]


async def test_cancelled_timers_and_tasks(store: Store) -> None:
    run_id = await start(store, "w")
    setup = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "timer_started", "activity_scheduled"),
        new_timers=[NewTimer(run_id, 2, 50.0, b"t")],
        new_tasks=[new_task(run_id, "w", 3)],
    )
    assert await store.commit_steps([setup], 4.0) == [True]
    cancel = StepCommit(
        run_id, "w1", 3, entries(4, "marker"), cancelled_timers=[2], cancelled_tasks=[f"{run_id}:3"]
    )
    assert await store.commit_steps([cancel], 5.0) == [True]
    assert await store.fire_timers(AFTER, 100) is None
    [t] = (await store.read_extras("w", run_id))[1]
    assert t.cancel_requested
