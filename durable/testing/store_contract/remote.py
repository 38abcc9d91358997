"""The storage contract, part 5: what tasks served outside Python workers need — claims
without a name or queue filter, the sweep of expired leases, reading one task and a run's
inbox, and the rows of external waits (leased to `EXTERNAL_OWNER` for ever, gone when their
run closes).

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from durable.store import (
    EXTERNAL_OWNER,
    NEVER,
    NewTask,
    StepCommit,
    Store,
    TaskOutcome,
)

from .kit import AFTER, claim_tasks, entries, new_task, start

__all__ = [
    "test_claim_tasks_expired_only_leaves_queued_tasks",
    "test_claim_tasks_of_any_name_or_queue",
    "test_concurrent_ends_of_one_task_accept_its_owners_first",
    "test_concurrent_finish_task_calls_each_get_their_own_answer",
    "test_external_rows_never_expire_finish_once_and_go_with_their_run",
    "test_read_task_and_read_inbox",
]


async def _tasks(store: Store, wid: str, *tasks: NewTask) -> str:
    run_id = await start(store, wid)
    rows = [
        NewTask(
            f"{run_id}:{t.seq}", run_id, wid, t.seq, t.name, t.queue, t.data, t.visible_at,
            lease_owner=t.lease_owner, lease_expires_at=t.lease_expires_at,
        )
        for t in tasks
    ]  # fmt: skip
    kinds = ["activity_scheduled"] * len(rows)
    step = StepCommit(run_id, "w1", 1, entries(2, *kinds), new_tasks=rows)
    assert await store.commit_steps([step], 4.0) == [True]
    return run_id


async def test_claim_tasks_of_any_name_or_queue(store: Store) -> None:
    run_id = await _tasks(
        store,
        "w",
        new_task("", "w", 2, name="resize", visible_at=2.0),
        new_task("", "w", 3, name="probe", visible_at=1.0),
        new_task("", "w", 4, name="probe", queue="other", visible_at=1.5),
    )
    got = await store.claim_tasks(
        "remote", queues=["default"], names=None, now=10.0, lease_until=70.0, limit=10
    )
    assert [t.task_id for t in got] == [f"{run_id}:3", f"{run_id}:2"]
    assert all((t.lease_owner, t.status) == ("remote", "queued") for t in got)
    [other] = await store.claim_tasks(
        "remote", queues=None, names=None, now=10.0, lease_until=70.0, limit=10
    )
    assert other.task_id == f"{run_id}:4"


async def test_claim_tasks_expired_only_leaves_queued_tasks(store: Store) -> None:
    run_id = await _tasks(
        store,
        "w",
        new_task("", "w", 2, queue="far", name="x"),
        new_task("", "w", 3, queue="far", name="y"),
    )
    [held] = await store.claim_tasks(
        "gone", queues=["far"], names=["x"], now=10.0, lease_until=20.0, limit=1
    )
    sweep: dict[str, Any] = {"queues": None, "names": None, "limit": 10, "expired_only": True}
    assert await store.claim_tasks("sweeper", now=19.0, lease_until=50.0, **sweep) == []
    [lost] = await store.claim_tasks("sweeper", now=20.0, lease_until=50.0, **sweep)
    assert (lost.task_id, lost.status, lost.attempt) == (held.task_id, "running", 1)
    assert lost.lease_owner == "sweeper"
    queued = await store.read_task(f"{run_id}:3")
    assert queued is not None
    assert queued.status == "queued"  # not taken by the sweep
    assert await store.claim_tasks("sweeper", now=30.0, lease_until=60.0, **sweep) == []
    mine = await store.claim_tasks(
        "sweeper", now=AFTER, lease_until=AFTER + 1, exclude=[held.task_id], **sweep
    )
    assert mine == []  # lapsed, but excluded: the caller's own attempt


async def test_read_task_and_read_inbox(store: Store) -> None:
    run_id = await _tasks(store, "w", new_task("", "w", 2))
    task = await store.read_task(f"{run_id}:2")
    assert task is not None
    assert (task.run_id, task.seq, task.status, task.attempt) == (run_id, 2, "queued", 1)
    assert await store.read_task(f"{run_id}:99") is None
    assert await store.read_inbox(run_id) == []
    [t] = await claim_tasks(store, "tw")
    retry = TaskOutcome("retry", "activity_retrying", b"first", visible_at=11.0)
    assert await store.finish_task(t.task_id, "tw", 1, retry, 11.0)
    [t] = await claim_tasks(store, "tw", now=12.0)
    done = TaskOutcome("done", "activity_completed", b"second")
    assert await store.finish_task(t.task_id, "tw", 2, done, 12.0)
    assert await store.read_task(t.task_id) is None
    inbox = await store.read_inbox(run_id)
    assert [(i.kind, i.data) for i in inbox] == [
        ("activity_retrying", b"first"),
        ("activity_completed", b"second"),
    ]
    assert inbox[0].id < inbox[1].id
    assert all(i.run_id == run_id for i in inbox)


async def test_external_rows_never_expire_finish_once_and_go_with_their_run(
    store: Store,
) -> None:
    external = {"lease_owner": EXTERNAL_OWNER, "lease_expires_at": NEVER}
    run_id = await _tasks(
        store,
        "w",
        new_task("", "w", 2, name="callback", **external),
        new_task("", "w", 3, name="other", **external),
        new_task("", "w", 4, name="act"),
    )
    every: dict[str, Any] = {"queues": None, "names": None, "limit": 10}
    assert (
        await store.claim_tasks("s", now=1e12, lease_until=2e12, expired_only=True, **every) == []
    )
    [plain] = await store.claim_tasks("s", now=AFTER, lease_until=AFTER + 1e6, **every)
    assert plain.task_id == f"{run_id}:4"
    row = await store.read_task(f"{run_id}:2")
    assert row is not None
    assert (row.lease_owner, row.lease_expires_at) == (EXTERNAL_OWNER, NEVER)
    done = TaskOutcome("done", "external_completed", b"value")
    assert await store.finish_task(f"{run_id}:2", EXTERNAL_OWNER, 1, done, 11.0)
    assert not await store.finish_task(f"{run_id}:2", EXTERNAL_OWNER, 1, done, 11.5)
    assert [(i.kind, i.data) for i in await store.read_inbox(run_id)] == [
        ("external_completed", b"value")
    ]
    # Closing the run deletes the open external wait; a running task is asked to cancel.
    assert await store.terminate(run_id, entry_data=b"", error=b"", now=12.0, parent_item=None)
    assert await store.read_task(f"{run_id}:3") is None
    left = await store.read_task(f"{run_id}:4")
    assert left is not None
    assert left.cancel_requested


async def test_concurrent_finish_task_calls_each_get_their_own_answer(store: Store) -> None:
    run_id = await _tasks(store, "w", *(new_task("", "w", seq) for seq in range(2, 22)))
    claimed = await claim_tasks(store, "tw", limit=100)
    assert len(claimed) == 20
    done = TaskOutcome("done", "activity_completed", b"r")
    # Every other call names the wrong owner: refused, without spoiling its neighbours.
    answers = await asyncio.gather(
        *(
            store.finish_task(t.task_id, "tw" if i % 2 == 0 else "intruder", 1, done, 11.0)
            for i, t in enumerate(claimed)
        )
    )
    assert answers == [i % 2 == 0 for i in range(20)]
    assert len(await store.read_inbox(run_id)) == 10
    left = (await store.read_extras("w", run_id)).tasks
    assert sorted(t.task_id for t in left) == sorted(t.task_id for t in claimed[1::2])


async def test_concurrent_ends_of_one_task_accept_its_owners_first(store: Store) -> None:
    run_id = await _tasks(store, "w", new_task("", "w", 2), new_task("", "w", 3))
    first, second = await claim_tasks(store, "tw", limit=2)
    done = TaskOutcome("done", "activity_completed", b"r")
    retry = TaskOutcome("retry", visible_at=11.0, last_error=b"e", item_data=b"x")
    # Written together (as a backend may group them) or in any order: an intruder's end is
    # refused without taking the owner's turn, and of the owner's ends one counts.
    answers = await asyncio.gather(
        store.finish_task(first.task_id, "intruder", 1, done, 11.0),
        store.finish_task(first.task_id, "tw", 1, done, 11.0),
        store.finish_task(first.task_id, "tw", 1, done, 11.0),
        store.finish_task(second.task_id, "tw", 1, retry, 11.0),
        store.finish_task(second.task_id, "tw", 1, done, 11.0),
    )
    assert not answers[0]
    assert answers[1] != answers[2]
    assert answers[3] != answers[4]
    kinds = sorted(i.kind for i in await store.read_inbox(run_id))
    retried = await store.read_task(second.task_id)
    assert await store.read_task(first.task_id) is None
    if answers[3]:
        assert kinds == ["activity_completed", "activity_retrying"]
        assert retried is not None
        assert (retried.attempt, retried.status, retried.lease_owner) == (2, "queued", None)
    else:
        assert kinds == ["activity_completed", "activity_completed"]
        assert retried is None
