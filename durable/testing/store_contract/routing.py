"""The storage contract, part 2: continue-as-new, children whose id is taken, and where
items for other workflows go (`durable.store.Outgoing`).

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

from durable import journal
from durable.journal import Kind
from durable.store import Outgoing, StepCommit, Store

from .kit import SIGNAL, claim, entries, new_run, peek, start

__all__ = [
    "test_a_child_whose_id_has_closed_starts_as_a_new_current_run",
    "test_a_child_whose_id_is_running_is_refused_and_the_parent_told",
    "test_a_message_naming_a_run_follows_it_across_continue_as_new",
    "test_a_reply_to_a_closed_run_never_reaches_a_newer_run",
    "test_continue_as_new_moves_workflow_addressed_items_to_the_successor",
    "test_outgoing_delivery_rules",
    "test_two_children_of_one_id_in_one_batch_the_first_wins",
]


async def test_continue_as_new_moves_workflow_addressed_items_to_the_successor(
    store: Store,
) -> None:
    """Signals and cancellation are sent to a workflow id: those the old run did not consume
    follow it to its successor in their order, before anything sent afterwards; an item that
    answers the old run's own command (an activity result) stays with it."""
    run_id = await start(store, "w")
    await store.send("w", Kind.SIGNAL_RECEIVED, b"s1", 4.0)
    await store.send("w", Kind.CANCEL_REQUESTED, b"c", 4.5)
    await store.send("w", Kind.ACTIVITY_COMPLETED, b"own", 4.7, run_id=run_id)
    await store.send("w", Kind.SIGNAL_RECEIVED, b"consumed", 4.8)
    await store.send("w", Kind.SIGNAL_RECEIVED, b"s2", 5.0)
    [claimed] = await claim(store, "w1", now=5.5)
    consumed = [i.id for i in claimed.inbox if i.data == b"consumed"]
    successor = new_run("w", at=6.0, run_id="w-next")
    step = StepCommit(
        run_id,
        "w1",
        1,
        entries(2, SIGNAL, "continued_as_new"),
        consumed_inbox=consumed,
        status="continued_as_new",
        successor=successor,
    )
    assert await store.commit_steps([step], 6.0) == [True]
    old = await store.get_run("w", run_id)
    assert old is not None
    assert old.status == "continued_as_new"
    assert not old.is_current
    assert old.continued_to == "w-next"
    assert old.closed_at == 6.0
    assert old.lease_owner is None
    new = await store.get_run("w")
    assert new is not None
    assert new.run_id == "w-next"
    assert new.status == "pending"
    assert new.ready
    assert await store.send("w", Kind.SIGNAL_RECEIVED, b"s3", 7.0) == "w-next"
    [claimed] = await claim(store, "w2", now=8.0)
    assert claimed.run.run_id == "w-next"
    assert [(i.kind, i.data) for i in claimed.inbox] == [
        (Kind.SIGNAL_RECEIVED, b"s1"),
        (Kind.CANCEL_REQUESTED, b"c"),
        (Kind.SIGNAL_RECEIVED, b"s2"),
        (Kind.SIGNAL_RECEIVED, b"s3"),
    ]
    ids = [i.id for i in claimed.inbox]
    assert ids == sorted(ids)


async def test_outgoing_delivery_rules(store: Store) -> None:
    parent = await start(store, "parent", owner="p")
    child = await start(store, "child", owner="c", at=2.0)
    gone, _ = await store.create_run(new_run("gone"), if_exists="error")
    await store.terminate(gone.run_id, entry_data=b"", error=b"", now=3.0, parent_item=None)
    step = StepCommit(
        child,
        "c",
        1,
        entries(2, "workflow_completed"),
        status="completed",
        outgoing=[
            Outgoing("parent", Kind.CHILD_COMPLETED, b"to-run", run_id=parent),
            Outgoing("parent", Kind.SIGNAL_RECEIVED, b"to-current"),
            Outgoing("parent", Kind.CHILD_COMPLETED, b"wrong-run", run_id="no-such-run"),
            Outgoing("gone", Kind.SIGNAL_RECEIVED, b"dropped"),
            Outgoing("nobody", Kind.SIGNAL_RECEIVED, b"dropped"),
        ],
    )
    assert await store.commit_steps([step], 4.0) == [True]
    run = await store.get_run("parent")
    assert run is not None
    assert run.ready
    assert await peek(store, parent) == [
        (Kind.CHILD_COMPLETED, b"to-run"),
        (Kind.SIGNAL_RECEIVED, b"to-current"),
    ]


async def test_a_reply_to_a_closed_run_never_reaches_a_newer_run(store: Store) -> None:
    """A child's result names the parent run that started it: once that run has closed, it
    is dropped, never delivered to a newer run of the same workflow id (which did not start
    that child). A signal or cancellation naming a run follows it only across
    continue-as-new: a run that ended (here terminated, then the id restarted) hands
    nothing to the newer run, which is another workflow's business."""
    parent = await start(store, "parent", owner="p")
    await store.terminate(parent, entry_data=b"", error=b"", now=5.0, parent_item=None)
    successor, _ = await store.create_run(new_run("parent", at=5.0), if_exists="restart")
    late = await start(store, "late-child", owner="c", at=6.0)
    step = StepCommit(
        late,
        "c",
        1,
        entries(2, "workflow_completed"),
        status="completed",
        outgoing=[
            Outgoing("parent", Kind.CHILD_COMPLETED, b"late", run_id=parent),
            Outgoing("parent", Kind.CHILD_FAILED, b"late", run_id=parent),
            Outgoing("parent", Kind.SIGNAL_RECEIVED, b"late", run_id=parent),
            Outgoing("parent", Kind.CANCEL_REQUESTED, b"late", run_id=parent),
            Outgoing("parent", Kind.CANCEL_REQUESTED, b"nobody", run_id="never-created"),
        ],
    )
    assert await store.commit_steps([step], 7.0) == [True]
    assert await peek(store, successor.run_id) == []
    # terminate's item to a parent follows the same rule
    orphan = await start(store, "orphan", owner="c", at=8.0)
    item = Outgoing("parent", Kind.CHILD_FAILED, b"terminated", run_id=parent)
    assert await store.terminate(orphan, entry_data=b"", error=b"", now=9.0, parent_item=item)
    assert await peek(store, successor.run_id) == []


async def test_a_message_naming_a_run_follows_it_across_continue_as_new(store: Store) -> None:
    first = await start(store, "looping", owner="p")
    step = StepCommit(
        first,
        "p",
        1,
        entries(2, "continued_as_new"),
        status="continued_as_new",
        successor=new_run("looping", at=4.0, run_id="looping-2"),
    )
    assert await store.commit_steps([step], 4.0) == [True]
    sender = await start(store, "sender", owner="c", at=5.0)
    step = StepCommit(
        sender,
        "c",
        1,
        entries(2, "marker"),
        outgoing=[
            Outgoing("looping", Kind.CHILD_COMPLETED, b"reply", run_id=first),
            Outgoing("looping", Kind.SIGNAL_RECEIVED, b"follows", run_id=first),
            Outgoing("looping", Kind.CANCEL_REQUESTED, b"follows", run_id=first),
        ],
    )
    assert await store.commit_steps([step], 6.0) == [True]
    assert await peek(store, "looping-2") == [
        (Kind.SIGNAL_RECEIVED, b"follows"),
        (Kind.CANCEL_REQUESTED, b"follows"),
    ]


async def test_a_child_whose_id_is_running_is_refused_and_the_parent_told(
    store: Store,
) -> None:
    parent = await start(store, "parent", owner="p")
    running = await start(store, "taken", owner="x", at=2.0)
    child = new_run("taken", at=4.0, name="charge", parent_id="parent", parent_run_id=parent)
    step = StepCommit(parent, "p", 1, entries(2, "child_started"), new_runs=[child])
    assert await store.commit_steps([step], 4.0) == [True]
    current = await store.get_run("taken")
    assert current is not None
    assert current.run_id == running  # left alone
    assert await store.get_run("taken", child.run_id) is None  # not created
    run = await store.get_run("parent")
    assert run is not None
    assert run.ready
    [(kind, data)] = await peek(store, parent)
    assert kind == Kind.CHILD_FAILED
    record = journal.decode(kind, data)
    assert isinstance(record, journal.ChildFailed)
    assert record.workflow_id == "taken"
    assert record.status == "already_exists"
    assert record.run_id == child.run_id
    assert record.error.type == "WorkflowAlreadyExists"
    assert "'charge'" in record.error.message
    assert "'taken'" in record.error.message
    assert repr(running) in record.error.message
    assert "unique id" in record.error.message


async def test_a_child_whose_id_has_closed_starts_as_a_new_current_run(store: Store) -> None:
    parent = await start(store, "parent", owner="p")
    old = await start(store, "reused", owner="x", at=2.0)
    done = StepCommit(
        old, "x", 1, entries(2, "workflow_completed"), status="completed", published={"k": b"v"}
    )
    assert await store.commit_steps([done], 3.0) == [True]
    child = new_run("reused", at=4.0, parent_id="parent", parent_run_id=parent)
    step = StepCommit(parent, "p", 1, entries(2, "child_started"), new_runs=[child])
    assert await store.commit_steps([step], 4.0) == [True]
    current = await store.get_run("reused")
    assert current is not None
    assert current.run_id == child.run_id
    assert current.status == "pending"
    assert current.ready
    assert (current.parent_id, current.parent_run_id) == ("parent", parent)
    kept = await store.get_run("reused", old)
    assert kept is not None
    assert kept.status == "completed"
    assert not kept.is_current
    assert (await store.read_extras("reused", child.run_id)).published == {}
    assert await peek(store, parent) == []


async def test_two_children_of_one_id_in_one_batch_the_first_wins(store: Store) -> None:
    one = await start(store, "p1", owner="p")
    two = await start(store, "p2", owner="p", at=2.0)
    first = new_run("shared", at=4.0, run_id="shared-1", parent_id="p1", parent_run_id=one)
    second = new_run("shared", at=4.0, run_id="shared-2", parent_id="p2", parent_run_id=two)
    steps = [
        StepCommit(one, "p", 1, entries(2, "child_started"), new_runs=[first]),
        StepCommit(two, "p", 1, entries(2, "child_started"), new_runs=[second]),
    ]
    assert await store.commit_steps(steps, 4.0) == [True, True]
    current = await store.get_run("shared")
    assert current is not None
    assert current.run_id == "shared-1"
    assert await peek(store, one) == []
    [(kind, data)] = await peek(store, two)
    record = journal.decode(kind, data)
    assert isinstance(record, journal.ChildFailed)
    assert record.run_id == "shared-2"
