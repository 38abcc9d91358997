"""The storage contract, part: repair — `Store.reopen_run` (retry) and `Store.fork_run`
(fork), as `durable.repair` plans them.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import pytest

from durable.errors import WorkflowAlreadyExists
from durable.repair import Fork, Reopen
from durable.store import NewTimer, StepCommit, Store, TaskOutcome

from .kit import claim_tasks, entries, journal_kinds, new_run, new_task, peek, start

__all__ = [
    "test_fork_run_creates_a_new_workflow_with_a_copied_journal_once",
    "test_reopen_run_cuts_the_journal_brings_rows_back_and_is_fenced",
    "test_reopen_run_is_fenced_on_the_children_it_read",
    "test_reopen_run_unparks_a_parked_run_keeping_its_journal",
]


async def test_reopen_run_cuts_the_journal_brings_rows_back_and_is_fenced(store: Store) -> None:
    """A re-open deletes the entries past ``keep`` and appends its note (``run_retried``),
    replaces the run's tasks, timers and inbox by the planned ones (a task whose attempt
    was still running gets a higher attempt, so that attempt's late finish is refused),
    and makes the run open and ready again; it writes nothing unless the run is as the
    plan read it."""
    run_id = await start(store, "r1")
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "activity_scheduled", "timer_started", "workflow_failed"),
        status="failed",
        error=b"boom",
        new_tasks=[new_task(run_id, "r1", 2, lease_owner="w1")],
        new_timers=[NewTimer(run_id, 3, 40.0, b"fired")],
    )
    assert await store.commit_steps([step], 4.0) == [True]
    plan = Reopen(
        run_id,
        "r1",
        "failed",
        4,
        parked=False,
        keep=3,
        status="running",
        note=b"note",
        tasks=[new_task(run_id, "r1", 2)],
        timers=[NewTimer(run_id, 3, 50.0, b"fired again")],
        inbox=[("activity_retrying", b"why")],
    )
    stale = Reopen(run_id, "r1", "completed", 4, False, 3, "running", b"stale")
    assert await store.reopen_run(stale, 20.0) is False  # not as read: nothing written
    assert await journal_kinds(store, run_id) == [
        "workflow_started",
        "activity_scheduled",
        "timer_started",
        "workflow_failed",
    ]
    assert await store.reopen_run(plan, 20.0) is True
    journal = await store.read_journal(run_id)
    assert [(e.seq, e.kind) for e in journal] == [
        (1, "workflow_started"),
        (2, "activity_scheduled"),
        (3, "timer_started"),
        (4, "run_retried"),
    ]
    assert (journal[3].time, journal[3].data) == (20.0, b"note")
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.history_length, run.ready) == ("running", 4, True)
    assert (run.closed_at, run.error, run.lease_owner) == (None, None, None)
    extras = await store.read_extras("r1", run_id)
    [task] = extras.tasks
    assert (task.seq, task.status, task.attempt, task.cancel_requested) == (2, "queued", 2, False)
    assert extras.timers == {3: 50.0}
    # the attempt that was running when the run failed can no longer finish it
    done = TaskOutcome("done", "activity_completed", b"late")
    assert await store.finish_task(f"{run_id}:2", "w1", 1, done, 21.0) is False
    [claimed] = await claim_tasks(store, "w2", now=21.0)
    assert (claimed.task_id, claimed.attempt) == (f"{run_id}:2", 2)
    assert await peek(store, run_id) == [("activity_retrying", b"why")]
    assert await store.reopen_run(plan, 22.0) is False  # once: it is open now


async def test_reopen_run_unparks_a_parked_run_keeping_its_journal(store: Store) -> None:
    """Re-opening a parked run clears ``parked`` and ``problem``, makes it ready and
    appends its note to the journal; its rows and waiting inbox items stay. A plan for a
    parked run does nothing to one that is not parked."""
    run_id = await start(store, "p1")
    await store.park(run_id, "w1", "NonDeterminismError: changed code")
    assert await store.send("p1", "signal_received", b"go", 9.0) == run_id
    plan = Reopen(
        run_id,
        "p1",
        "running",
        1,
        parked=True,
        keep=1,
        status="running",
        note=b"unpark",
    )
    assert await store.reopen_run(plan, 10.0) is True
    run = await store.get_run("p1")
    assert run is not None
    assert (run.parked, run.problem, run.ready, run.status) == (False, None, True, "running")
    assert await journal_kinds(store, run_id) == ["workflow_started", "run_retried"]
    assert run.history_length == 2
    assert await peek(store, run_id) == [("signal_received", b"go")]  # still waiting
    assert await store.reopen_run(plan, 11.0) is False  # no longer parked


async def test_fork_run_creates_a_new_workflow_with_a_copied_journal_once(store: Store) -> None:
    """A fork is a new current run, open and ready, with the given journal, tasks, timers,
    published values and inbox; a workflow id that has any run (open or closed) is
    refused with `WorkflowAlreadyExists`, writing nothing."""
    source = await start(store, "src")
    copied = entries(1, "workflow_started", "activity_scheduled")
    run = new_run("src-fork")
    plan = Fork(
        run,
        "running",
        copied,
        tasks=[new_task(run.run_id, "src-fork", 2)],
        timers=[NewTimer(run.run_id, 7, 60.0, b"fired")],
        published={"progress": b"half"},
        inbox=[("run_forked", b"from src")],
    )
    await store.fork_run(plan, 30.0)
    forked = await store.get_run("src-fork")
    assert forked is not None
    assert (forked.run_id, forked.status, forked.history_length) == (run.run_id, "running", 2)
    assert (forked.ready, forked.is_current, forked.input) == (True, True, run.input)
    assert [(e.seq, e.kind, e.data) for e in await store.read_journal(run.run_id)] == [
        (e.seq, e.kind, e.data) for e in copied
    ]
    extras = await store.read_extras("src-fork", run.run_id)
    assert extras.published == {"progress": b"half"}
    assert [(t.seq, t.status, t.attempt) for t in extras.tasks] == [(2, "queued", 1)]
    assert extras.timers == {7: 60.0}
    assert await peek(store, run.run_id) == [("run_forked", b"from src")]
    assert await journal_kinds(store, source) == ["workflow_started"]  # the source unchanged
    again = Fork(new_run("src-fork"), "running", copied)
    with pytest.raises(WorkflowAlreadyExists, match="src-fork"):
        await store.fork_run(again, 31.0)
    with pytest.raises(WorkflowAlreadyExists, match="'src'"):
        await store.fork_run(Fork(new_run("src"), "pending", []), 31.0)
    assert len(await store.list_runs(name="wf")) == 2


async def test_reopen_run_is_fenced_on_the_children_it_read(store: Store) -> None:
    """A re-open writes nothing when a child it read as open has closed since (its answer
    went to the closed run): the caller plans again from what the child has now."""
    parent = await start(store, "parent")
    child = await start(store, "kid", owner="w2")
    step = StepCommit(parent, "w1", 1, entries(2, "workflow_failed"), status="failed")
    assert await store.commit_steps([step], 4.0) == [True]
    plan = Reopen(
        parent,
        "parent",
        "failed",
        2,
        parked=False,
        keep=1,
        status="running",
        note=b"note",
        children={child: "completed"},
    )
    assert await store.reopen_run(plan, 10.0) is False  # the child is still running
    assert await journal_kinds(store, parent) == ["workflow_started", "workflow_failed"]
    fenced = Reopen(
        parent, "parent", "failed", 2, parked=False, keep=1, status="running", note=b"note",
        children={child: "running"},
    )  # fmt: skip
    assert await store.reopen_run(fenced, 10.0) is True
