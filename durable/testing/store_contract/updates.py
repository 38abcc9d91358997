"""The storage contract, part: update outcomes (`Store.read_update`) — written by the step
that settles an update (`StepCommit.updates`), fenced like the rest of the step, the first
outcome of an id kept, keyed by workflow id (so they outlive continue-as-new), and gone
with the workflow's current run when it is pruned.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

from durable.store import StepCommit, Store

from .kit import entries, new_run, start

__all__ = [
    "test_a_new_execution_of_an_id_starts_without_the_old_outcomes",
    "test_update_outcomes_are_written_by_accepted_steps_once_and_pruned",
]


async def test_update_outcomes_are_written_by_accepted_steps_once_and_pruned(
    store: Store,
) -> None:
    run_id = await start(store, "cart")
    assert await store.read_update("cart", "u1") is None
    # A step whose outcome rides without journal entries (a rejection) is accepted.
    rejected = StepCommit(run_id, "w1", 1, [], updates={"u0": b"rejected"})
    assert await store.commit_steps([rejected], 4.0) == [True]
    assert await store.read_update("cart", "u0") == b"rejected"
    step = StepCommit(
        run_id, "w1", 1, entries(2, "update_accepted", "update_completed"), updates={"u1": b"ok"}
    )
    assert await store.commit_steps([step], 4.0) == [True]
    assert await store.read_update("cart", "u1") == b"ok"
    assert await store.read_update("other", "u1") is None
    # The first outcome of an id stays.
    again = StepCommit(run_id, "w1", 3, [], updates={"u1": b"second"})
    assert await store.commit_steps([again], 5.0) == [True]
    assert await store.read_update("cart", "u1") == b"ok"
    # A fenced-off step writes no outcome.
    stale = StepCommit(run_id, "intruder", 3, [], updates={"u2": b"no"})
    assert await store.commit_steps([stale], 5.0) == [False]
    assert await store.read_update("cart", "u2") is None
    closing = StepCommit(
        run_id, "w1", 3, entries(4, "workflow_completed"), status="completed", result=b"r"
    )
    assert await store.commit_steps([closing], 6.0) == [True]
    assert await store.prune_runs(7.0, 10) == 1
    assert await store.read_update("cart", "u1") is None


async def test_a_new_execution_of_an_id_starts_without_the_old_outcomes(store: Store) -> None:
    run_id = await start(store, "again")
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, "workflow_completed"),
        status="completed",
        result=b"r",
        updates={"u1": b"old"},
    )
    assert await store.commit_steps([step], 4.0) == [True]
    assert await store.read_update("again", "u1") == b"old"
    _, created = await store.create_run(new_run("again", 5.0), if_exists="restart")
    assert created
    assert await store.read_update("again", "u1") is None
