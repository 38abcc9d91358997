"""The storage contract, part: retention (`Store.prune_runs`) — closed runs deleted with
everything of theirs, in batches, oldest closed first; open runs, children of open parents
and what a continued workflow's current run still uses are kept.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

from durable.journal import Kind
from durable.store import NewStepLog, NewTimer, StepCommit, Store, TaskOutcome

from .kit import SIGNAL, entries, new_run, new_task, start

__all__ = [
    "test_prune_goes_in_batches_oldest_closed_first",
    "test_prune_keeps_open_runs_children_of_open_parents_and_a_successors_values",
    "test_prune_removes_a_closed_run_and_everything_of_its",
]


async def _close(store: Store, run_id: str, at: float) -> None:
    assert await store.terminate(run_id, entry_data=b"", error=b"", now=at, parent_item=None)


async def test_prune_removes_a_closed_run_and_everything_of_its(store: Store) -> None:
    """Its row, journal, inbox, tasks (a running attempt's too), timers, step logs, tags (no
    search finds it) and its workflow id's published values; only runs closed before the
    cutoff."""
    run_id = await start(store, "gone")
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "activity_scheduled", "timer_started", "tags_set", "published"),
        new_tasks=[new_task(run_id, "gone", 2, lease_owner="w1")],
        new_timers=[NewTimer(run_id, 3, 50.0, b"fire")],
        tags={"customer": "acme"},
        published={"progress": b"half"},
    )
    assert await store.commit_steps([step], 4.0) == [True]
    assert await store.send("gone", SIGNAL, b"late", 5.0) == run_id  # stays in the inbox
    done = StepCommit(run_id, "w1", 5, entries(6, "workflow_completed"), status="completed")
    assert await store.commit_steps([done], 6.0) == [True]
    await store.append_logs([NewStepLog(run_id, 2, 1, 4.5, 20, "shop", "charging")])
    assert await store.read_task(f"{run_id}:2") is not None  # running: flagged, not deleted
    await store.create_run(new_run("open", at=7.0, tags={"customer": "acme"}), if_exists="error")

    assert await store.prune_runs(6.0, 10) == 0  # closed at 6.0: not before 6.0
    assert await store.prune_runs(7.0, 10) == 1
    assert await store.get_run("gone") is None
    assert await store.get_run("gone", run_id) is None
    assert await store.read_journal(run_id) == []
    assert await store.read_inbox(run_id) == []
    assert await store.read_logs(run_id) == []
    assert await store.read_task(f"{run_id}:2") is None
    extras = await store.read_extras("gone", run_id)
    assert (extras.published, extras.tasks, extras.timers) == ({}, [], {})
    assert [r.workflow_id for r in await store.list_runs(tags={"customer": "acme"})] == ["open"]
    assert await store.count_runs() == {"pending": 1}
    assert await store.prune_runs(1000.0, 10) == 0  # the open run is never pruned
    # the deleted attempt's late end is refused; its timer never fires
    done_item = TaskOutcome("done", Kind.ACTIVITY_COMPLETED, b"late")
    assert not await store.finish_task(f"{run_id}:2", "w1", 1, done_item, 8.0)
    assert await store.fire_timers(100.0, 10) is None


async def test_prune_goes_in_batches_oldest_closed_first(store: Store) -> None:
    ids = []
    for i in range(5):
        run, _ = await store.create_run(new_run(f"r{i}", at=1.0), if_exists="error")
        ids.append(run.run_id)
    for i, run_id in enumerate(ids):
        await _close(store, run_id, at=10.0 - i)  # r4 closed first, r0 last
    assert await store.prune_runs(20.0, 2) == 2
    assert sorted(r.workflow_id for r in await store.list_runs()) == ["r0", "r1", "r2"]
    assert await store.prune_runs(20.0, 2) == 2
    assert [r.workflow_id for r in await store.list_runs()] == ["r0"]
    assert await store.prune_runs(20.0, 2) == 1
    assert await store.prune_runs(20.0, 2) == 0


async def test_prune_keeps_open_runs_children_of_open_parents_and_a_successors_values(
    store: Store,
) -> None:
    """A closed child of an open parent stays until the parent closes. A run that continued
    as new goes while its successor runs on, and the successor keeps the workflow's
    published values, its tags and the signals that moved to it."""
    parent = await start(store, "parent", owner="p")
    child = new_run("child", at=4.0, parent_id="parent", parent_run_id=parent)
    step = StepCommit(parent, "p", 1, entries(2, "child_started"), new_runs=[child])
    assert await store.commit_steps([step], 4.0) == [True]
    await _close(store, child.run_id, at=5.0)
    assert await store.prune_runs(100.0, 10) == 0
    await _close(store, parent, at=6.0)
    assert await store.prune_runs(100.0, 10) == 2
    assert await store.get_run("child") is None

    old = await start(store, "looping", owner="x", at=10.0)
    successor = new_run("looping", at=11.0, tags={"job": "nightly"})
    assert await store.send("looping", SIGNAL, b"for-the-workflow", 11.0) == old
    step = StepCommit(
        old,
        "x",
        1,
        entries(2, "published", "continued_as_new"),
        status="continued_as_new",
        successor=successor,
        published={"progress": b"kept"},
    )
    assert await store.commit_steps([step], 12.0) == [True]
    assert await store.prune_runs(100.0, 10) == 1
    assert await store.get_run("looping", old) is None
    current = await store.get_run("looping")
    assert current is not None
    assert current.run_id == successor.run_id
    assert (await store.read_extras("looping", successor.run_id)).published == {"progress": b"kept"}
    assert [r.run_id for r in await store.list_runs(tags={"job": "nightly"})] == [successor.run_id]
    assert [i.kind for i in await store.read_inbox(successor.run_id)] == [Kind.SIGNAL_RECEIVED]
