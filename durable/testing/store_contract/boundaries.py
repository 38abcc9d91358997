"""The storage contract, part 4: the edges of the rules.

A lease is expired at ``now`` when ``lease_expires_at <= now``, everywhere: a step whose
lease expires exactly at ``now`` is rejected (``lease_expires_at > now`` is required),
and at that same instant another worker may claim the run or the task; one tick earlier
neither happens. A payload of exactly `durable.payload.MAX_PAYLOAD_BYTES` (the largest a
user may pass or return) is stored and read back intact wherever one goes. A batch that
breaks a constraint of the database with one step's data raises `StepDataError` and writes
nothing (the worker then commits its steps apart); one whose entries do not continue
gaplessly from their step's ``expected_length`` (a caller's bug) raises `ValueError` and
writes nothing either.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import math

import pytest

from durable.errors import StepDataError
from durable.payload import MAX_PAYLOAD_BYTES
from durable.store import JournalEntry, NewTask, StepCommit, Store, TaskOutcome

from .kit import SIGNAL, claim, claim_tasks, entries, new_run, new_task, start

__all__ = [
    "test_a_batch_whose_entries_skip_a_seq_is_refused_whole",
    "test_a_batch_whose_step_breaks_a_constraint_raises_step_data_error",
    "test_a_lease_is_expired_for_claims_at_exactly_its_expiry",
    "test_a_lease_is_expired_for_commits_at_exactly_its_expiry",
    "test_a_task_lease_is_expired_for_claims_at_exactly_its_expiry",
    "test_payloads_of_exactly_the_size_limit_are_stored_and_read_back",
]

EXPIRY = 50.0  # when the leases of these tests run out
BEFORE = math.nextafter(EXPIRY, -math.inf)  # the last instant the lease still holds


async def _leased(store: Store, workflow_id: str) -> str:
    """A started run, claimed again by ``w1`` with a lease until `EXPIRY`."""
    run_id = await start(store, workflow_id)
    await store.send(workflow_id, SIGNAL, b"wake", 4.0)
    [claimed] = await claim(store, "w1", now=5.0, lease_until=EXPIRY)
    assert claimed.run.run_id == run_id
    assert claimed.run.lease_expires_at == EXPIRY
    return run_id


async def test_a_lease_is_expired_for_commits_at_exactly_its_expiry(store: Store) -> None:
    run_id = await _leased(store, "w")
    step = StepCommit(run_id, "w1", 1, entries(2, "marker"))
    assert await store.commit_steps([step], EXPIRY) == [False]
    assert await store.commit_steps([step], BEFORE) == [True]
    assert [e.seq for e in await store.read_journal(run_id)] == [1, 2]


async def test_a_lease_is_expired_for_claims_at_exactly_its_expiry(store: Store) -> None:
    run_id = await _leased(store, "w")
    await store.send("w", SIGNAL, b"more", 6.0)  # ready again, still leased to w1
    assert await claim(store, "w2", now=BEFORE) == []
    [taken] = await claim(store, "w2", now=EXPIRY, lease_until=EXPIRY + 10)
    assert (taken.run.run_id, taken.run.lease_owner) == (run_id, "w2")
    # and the old holder's step at that instant is fenced out
    late = StepCommit(run_id, "w1", 1, entries(2, "marker"))
    assert await store.commit_steps([late], EXPIRY) == [False]


async def test_a_task_lease_is_expired_for_claims_at_exactly_its_expiry(store: Store) -> None:
    run_id = await start(store, "w")
    task = new_task(run_id, "w", 2, lease_owner="tw", lease_expires_at=EXPIRY)
    step = StepCommit(run_id, "w1", 1, entries(2, "activity_scheduled"), new_tasks=[task])
    assert await store.commit_steps([step], 4.0) == [True]
    assert await claim_tasks(store, "tw2", now=BEFORE) == []
    [taken] = await claim_tasks(store, "tw2", now=EXPIRY, lease_until=EXPIRY + 10)
    assert (taken.task_id, taken.status) == (task.task_id, "running")  # its attempt was lost


async def test_payloads_of_exactly_the_size_limit_are_stored_and_read_back(store: Store) -> None:
    def blob(tag: int) -> bytes:
        return bytes([tag]) * (MAX_PAYLOAD_BYTES - 1) + b"!"

    run, _ = await store.create_run(new_run("big", input=blob(1)), if_exists="error")
    fetched = await store.get_run("big")
    assert fetched is not None
    assert fetched.input == blob(1)
    assert await store.send("big", SIGNAL, blob(2), 2.0) == run.run_id
    [claimed] = await claim(store, "w1", now=3.0)
    assert [i.data for i in claimed.inbox] == [blob(2)]
    task = NewTask(f"{run.run_id}:2", run.run_id, "big", 2, "act", "default", blob(3), 0.0)
    step = StepCommit(
        run.run_id,
        "w1",
        0,
        [JournalEntry(1, "workflow_started", 4.0, blob(4)), *entries(2, "activity_scheduled")],
        consumed_inbox=[claimed.inbox[0].id],
        new_tasks=[task],
        published={"k": blob(5)},
    )
    assert await store.commit_steps([step], 4.0) == [True]
    assert (await store.read_journal(run.run_id))[0].data == blob(4)
    published, tasks, _ = await store.read_extras("big", run.run_id)
    assert published == {"k": blob(5)}
    assert [t.data for t in tasks] == [blob(3)]
    [leased] = await claim_tasks(store, "tw", now=5.0)
    done = TaskOutcome("done", "activity_completed", blob(6))
    assert await store.finish_task(leased.task_id, "tw", 1, done, 6.0)
    [again] = await claim(store, "w1", now=7.0)  # the lease holder, woken by the result
    assert [(i.kind, i.data) for i in again.inbox] == [("activity_completed", blob(6))]
    close = StepCommit(
        run.run_id,
        "w1",
        2,
        entries(3, "workflow_completed"),
        consumed_inbox=[again.inbox[0].id],
        status="completed",
        result=blob(7),
    )
    assert await store.commit_steps([close], 8.0) == [True]
    final = await store.get_run("big")
    assert final is not None
    assert final.result == blob(7)


async def test_a_batch_whose_step_breaks_a_constraint_raises_step_data_error(
    store: Store,
) -> None:
    good = await _leased(store, "good")
    bad = await _leased(store, "bad")
    steps = [
        StepCommit(good, "w1", 1, entries(2, "marker")),
        StepCommit(bad, "w1", 1, entries(2, "published"), published={None: b"v"}),  # type: ignore[dict-item]
    ]
    with pytest.raises(StepDataError, match="breaks the database's rules"):
        await store.commit_steps(steps, 6.0)
    for run_id in (good, bad):
        assert [e.seq for e in await store.read_journal(run_id)] == [1]  # nothing written
    assert await store.commit_steps(steps[:1], 6.0) == [True]


async def test_a_batch_whose_entries_skip_a_seq_is_refused_whole(store: Store) -> None:
    good = await _leased(store, "good")
    gap = await _leased(store, "gap")
    steps = [
        StepCommit(good, "w1", 1, entries(2, "marker")),
        StepCommit(gap, "w1", 1, entries(3, "marker")),  # seq 2 missing
    ]
    with pytest.raises(ValueError, match="expected 2"):
        await store.commit_steps(steps, 6.0)
    for run_id in (good, gap):
        assert [e.seq for e in await store.read_journal(run_id)] == [1]  # nothing written
    assert await store.commit_steps(steps[:1], 6.0) == [True]
