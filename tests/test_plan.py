"""The commit plan (`durable.plan`): the group-commit rules, without a database.

The same rules run on every backend through the contract suite
(`durable.testing.store_contract`); here they are pinned down at their edges, fast.
"""

from __future__ import annotations

import math

import pytest

from durable import journal
from durable.journal import Kind
from durable.plan import Delivery, RunState, RunUpdate, Snapshot, lookups, plan, route
from durable.store import (
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TIMERS,
    JournalEntry,
    NewRun,
    NewTask,
    NewTimer,
    Outgoing,
    StepCommit,
    run_topic,
    steps_topic,
)
from durable.topics import end_topic, tasks_topic

NOW = 100.0


def running(run_id: str, workflow_id: str = "w", **kw: object) -> RunState:
    """An open current run leased to ``w1`` until NOW + 10, with one journal entry."""
    fields: dict[str, object] = {
        "status": "running",
        "is_current": True,
        "lease_owner": "w1",
        "lease_expires_at": NOW + 10,
        "history_length": 1,
    }
    fields.update(kw)
    return RunState(run_id, workflow_id, **fields)  # type: ignore[arg-type]


def step(run_id: str = "r", length: int = 1, *kinds: str, **kw: object) -> StepCommit:
    entries = [JournalEntry(length + 1 + i, k, NOW, b"") for i, k in enumerate(kinds or ["m"])]
    return StepCommit(run_id, str(kw.pop("owner", "w1")), length, entries, **kw)  # type: ignore[arg-type]


def snap(*runs: RunState, tasks: dict[str, tuple[str | None, int]] | None = None) -> Snapshot:
    return Snapshot({r.run_id: r for r in runs}, tasks or {})


def child(workflow_id: str, run_id: str, parent_run: str = "r") -> NewRun:
    return NewRun(workflow_id, run_id, "kid", "default", b"", NOW, "w", parent_run)


# ---- fences ------------------------------------------------------------------------------


def test_a_lease_expiring_exactly_now_has_expired() -> None:
    at_now = snap(running("r", lease_expires_at=NOW))
    assert plan([step()], at_now, NOW).accepted == [False]
    a_tick_later = snap(running("r", lease_expires_at=math.nextafter(NOW, math.inf)))
    assert plan([step()], a_tick_later, NOW).accepted == [True]


def test_fences_owner_length_status_and_existence() -> None:
    runs = snap(
        running("r"),
        running("other-owner", "w2", lease_owner="w2"),
        running("no-lease", "w3", lease_owner=None, lease_expires_at=None),
        running("closed", "w4", status="completed"),
    )
    steps = [
        step("r", 0),  # expected_length behind the run
        step("r", 2),  # ahead of it
        step("other-owner"),
        step("no-lease"),
        step("closed"),
        step("missing"),
        step("r", 1),
    ]
    p = plan(steps, runs, NOW)
    assert p.accepted == [False, False, False, False, False, False, True]
    assert [u.run_id for u in p.runs] == ["r"]
    assert [row[:2] for row in p.journal] == [("r", 2)]


def test_a_rejected_step_writes_nothing() -> None:
    s = step(
        "r",
        0,
        consumed_inbox=[7],
        new_tasks=[NewTask("r:2", "r", "w", 2, "act", "q", b"", NOW)],
        outgoing=[Outgoing("w", Kind.SIGNAL_RECEIVED, b"")],
        published={"k": b"v"},
        status="completed",
    )
    p = plan([s], snap(running("r")), NOW)
    assert p.accepted == [False]
    assert (p.runs, p.journal, p.consumed, p.tasks, p.deliveries, p.published) == (
        [],
        [],
        [],
        [],
        [],
        {},
    )
    assert p.topics == set()


def test_chained_steps_of_one_run_in_one_batch() -> None:
    steps = [step("r", 1, "a", "b"), step("r", 3, "c", status="completed", result=b"ok")]
    p = plan(steps, snap(running("r")), NOW)
    assert p.accepted == [True, True]
    assert [row[1] for row in p.journal] == [2, 3, 4]
    [update] = p.runs  # one merged update per run
    assert (update.history_length, update.status, update.result) == (4, "completed", b"ok")
    assert update.closed
    assert update.release
    # a third step after it closed is fenced out: the run is closed and its lease gone
    more = [*steps, step("r", 4)]
    assert plan(more, snap(running("r")), NOW).accepted == [True, True, False]


def test_a_finished_task_leased_at_another_attempt_is_fenced_out() -> None:
    runs = snap(running("r"), tasks={"r:2": ("w1", 2), "r:3": ("w2", 1)})
    assert plan([step(finished_tasks={"r:2": 1})], runs, NOW).accepted == [False]
    assert plan([step(finished_tasks={"r:3": 1})], runs, NOW).accepted == [False]
    assert plan([step(finished_tasks={"r:9": 1})], runs, NOW).accepted == [False]
    p = plan([step(finished_tasks={"r:2": 2})], runs, NOW)
    assert p.accepted == [True]
    assert p.finished == ["r:2"]


def test_a_task_created_leased_can_be_finished_by_the_next_step_only_once() -> None:
    task = NewTask("r:2", "r", "w", 2, "act", "q", b"", NOW, lease_owner="w1")
    steps = [
        step("r", 1, "activity_scheduled", new_tasks=[task]),
        step("r", 2, "activity_completed", finished_tasks={"r:2": 1}),
        step("r", 3, "activity_completed", finished_tasks={"r:2": 1}),
    ]
    assert plan(steps, snap(running("r")), NOW).accepted == [True, True, False]


def test_entries_must_continue_gaplessly() -> None:
    bad = StepCommit("r", "w1", 1, [JournalEntry(3, "m", NOW, b"")])
    with pytest.raises(ValueError, match="entry 0 has seq 3, expected 2"):
        plan([bad], snap(running("r")), NOW)


# ---- what accepted steps write -----------------------------------------------------------


def test_topics_of_tasks_timers_status_and_publishing() -> None:
    s = step(
        new_tasks=[
            NewTask("r:2", "r", "w", 2, "act", "q", b"", NOW),
            NewTask("r:3", "r", "w", 3, "act", "q", b"", NOW + 5),
        ],
        status="running",
    )
    assert plan([s], snap(running("r", status="pending")), NOW).topics == {
        tasks_topic("q"),  # its queue's pollers look; those of other queues sleep on
        TOPIC_TIMERS,
        TOPIC_STATUS,  # its status changed: live views hear of it
        run_topic("w"),
        steps_topic("w"),
    }
    # A step that changes nothing a waiter waits for still tells live views of its steps
    # (steps_topic), and nothing else; nor does a step with no entries.
    assert plan([step()], snap(running("r")), NOW).topics == {steps_topic("w")}
    empty = StepCommit("r", "w1", 1, [])
    assert plan([empty], snap(running("r")), NOW).topics == set()
    assert plan([step(published={"k": b"v"})], snap(running("r")), NOW).published == {
        ("w", "k"): b"v"
    }


def test_releasing_a_run_that_became_ready_during_the_step_wakes_claimers() -> None:
    p = plan([step(release_lease=True)], snap(running("r", ready=True)), NOW)
    assert p.released == ["r"]
    assert TOPIC_RUNS in p.topics
    [update] = p.runs
    assert update.release
    assert not update.closed


def test_continue_as_new_moves_items_and_inserts_the_successor() -> None:
    successor = NewRun("w", "r2", "wf", "default", b"", NOW)
    s = step(status="continued_as_new", successor=successor, consumed_inbox=[5])
    p = plan([s], snap(running("r")), NOW)
    assert p.moves == [("r", "r2")]
    assert p.consumed == [5]
    assert p.new_runs == [successor]
    [update] = p.runs
    assert update.continued_to == "r2"
    assert p.closed == ["r"]


# ---- children ----------------------------------------------------------------------------


def test_a_child_of_an_id_running_is_refused_with_a_child_failed_item() -> None:
    kid = child("taken", "kid-new")
    p = plan([step(new_runs=[kid])], snap(running("r"), running("old", "taken")), NOW)
    assert p.accepted == [True]
    assert p.new_runs == []
    [delivery] = p.deliveries
    assert (delivery.run_id, delivery.kind, delivery.time) == ("r", Kind.CHILD_FAILED, NOW)
    record = journal.decode(delivery.kind, delivery.data)
    assert isinstance(record, journal.ChildFailed)
    assert (record.workflow_id, record.status, record.run_id) == (
        "taken",
        "already_exists",
        "kid-new",
    )
    assert record.error.type == "WorkflowAlreadyExists"
    assert "'old'" in record.error.message
    assert "id=" in record.error.message


def test_a_refused_child_of_a_closing_parent_tells_nobody() -> None:
    kid = child("taken", "kid-new")
    s = step(new_runs=[kid], status="completed")
    p = plan([s], snap(running("r"), running("old", "taken")), NOW)
    assert p.deliveries == []


def test_a_child_of_a_closed_id_restarts_it() -> None:
    kid = child("reused", "kid-new")
    old = running("old", "reused", status="failed", lease_owner=None)
    p = plan([step(new_runs=[kid])], snap(running("r"), old), NOW)
    assert p.new_runs == [kid]
    assert p.demoted == ["old"]
    assert p.cleared == ["reused"]
    assert p.deliveries == []
    assert {TOPIC_RUNS, run_topic("reused")} <= p.topics
    # a stale step of the demoted run later in the batch is judged (and fenced out) as usual
    stale = plan([step(new_runs=[kid]), step("old")], snap(running("r"), old), NOW)
    assert stale.accepted == [True, False]


def test_a_child_of_a_new_id_starts_and_a_second_of_it_is_refused() -> None:
    first, second = child("kid", "kid-1"), child("kid", "kid-2")
    p = plan([step(new_runs=[first, second])], snap(running("r")), NOW)
    assert p.new_runs == [first]
    [delivery] = p.deliveries
    record = journal.decode(delivery.kind, delivery.data)
    assert isinstance(record, journal.ChildFailed)
    assert record.run_id == "kid-2"
    assert "'kid-1'" in record.error.message


def test_lookups_name_every_row_the_plan_reads() -> None:
    s = step(
        new_runs=[child("kid", "k1")],
        outgoing=[Outgoing("parent", Kind.CHILD_COMPLETED, b"", run_id="p1")],
        finished_tasks={"r:2": 1},
        cancelled_tasks=["r:3"],
        status="completed",
    )
    needs = lookups([s, step("other")])
    assert needs.run_ids == {"r", "other", "p1"}
    assert needs.workflow_ids == {"kid", "parent"}
    assert needs.task_ids == {"r:2", "r:3"}
    assert needs.closing == {"r"}


# ---- routing -----------------------------------------------------------------------------


def test_route_to_the_named_run_only_unless_workflow_addressed() -> None:
    closed = running("p1", "parent", status="completed", is_current=False)
    newer = running("p2", "parent")
    for kind in (Kind.CHILD_COMPLETED, Kind.CHILD_FAILED, Kind.ACTIVITY_COMPLETED):
        assert route(Outgoing("parent", kind, b"", run_id="p1"), closed, newer) is None
        assert route(Outgoing("parent", kind, b"", run_id="p2"), newer, newer) == "p2"
        assert route(Outgoing("parent", kind, b"", run_id="gone"), None, newer) is None
    continued = running("p1", "parent", status="continued_as_new", is_current=False)
    for kind in journal.WORKFLOW_ADDRESSED:
        # Meant for the workflow: it follows a run that continued as new...
        assert route(Outgoing("parent", kind, b"", run_id="p1"), continued, newer) == "p2"
        # ...but not one that ended (a newer run of the id is someone else's), nor a run
        # that never existed (a child refused because its id was taken).
        assert route(Outgoing("parent", kind, b"", run_id="p1"), closed, newer) is None
        assert route(Outgoing("parent", kind, b"", run_id="gone"), None, newer) is None
    assert route(Outgoing("parent", Kind.SIGNAL_RECEIVED, b""), None, newer) == "p2"
    assert route(Outgoing("parent", Kind.SIGNAL_RECEIVED, b""), None, closed) is None
    assert route(Outgoing("parent", Kind.SIGNAL_RECEIVED, b""), None, None) is None
    # a run of another workflow with that run id is not the named run
    stranger = running("p1", "stranger")
    assert route(Outgoing("parent", Kind.CHILD_COMPLETED, b"", run_id="p1"), stranger, None) is None


def test_items_are_routed_after_the_batch_in_their_order() -> None:
    """Items go out in batch order, after every step is judged: an item for a run that
    closes later in the same batch is dropped, as it would be one transaction later."""
    runs = snap(running("r"), running("r2", "w2"), running("r3", "w3"))
    items = [Outgoing("w3", Kind.SIGNAL_RECEIVED, str(i).encode()) for i in range(3)]
    steps = [
        step("r", outgoing=[Outgoing("w2", Kind.SIGNAL_RECEIVED, b"x"), items[0]]),
        step("r2", outgoing=items[1:]),
    ]
    p = plan(steps, runs, NOW)
    assert [(d.run_id, d.data) for d in p.deliveries] == [
        ("r2", b"x"),
        ("r3", b"0"),
        ("r3", b"1"),
        ("r3", b"2"),
    ]
    closing = plan([*steps, step("r2", 2, status="completed")], runs, NOW)
    assert closing.accepted == [True, True, True]
    assert [d.data for d in closing.deliveries] == [b"0", b"1", b"2"]


# ---- exactly what an accepted step writes, and what later steps of the batch see ---------


def test_an_accepted_step_writes_all_it_carries_and_one_exact_run_update() -> None:
    task = NewTask("r:2", "r", "w", 2, "act", "q", b"t", NOW)
    s = step(
        "r",
        1,
        "a",
        "b",
        consumed_inbox=[3, 4],
        status="running",
        result=b"res",
        error=b"err",
        new_tasks=[task],
        finished_tasks={"r:1": 1},
        cancelled_tasks=["r:0"],
        new_timers=[NewTimer("r", 3, NOW + 60, b"tm")],
        cancelled_timers=[1],
        problem="stuck",
    )
    runs = snap(running("r", status="pending"), tasks={"r:1": ("w1", 1)})
    p = plan([s], runs, NOW)
    assert p.runs == [RunUpdate("r", "w", 3, "running", b"res", b"err", "stuck")]
    assert p.journal == [("r", 2, "a", NOW, b""), ("r", 3, "b", NOW, b"")]
    assert (p.consumed, p.tasks, p.finished, p.cancelled_tasks) == (
        [3, 4],
        [task],
        ["r:1"],
        ["r:0"],
    )
    assert (p.timers, p.cancelled_timers) == ([("r", 3, NOW + 60, b"tm")], [("r", 1)])
    # a task due now, a timer, new steps (a status change: live views hear of it)
    assert p.topics == {
        run_topic("w"),
        tasks_topic("q"),
        TOPIC_TIMERS,
        TOPIC_STATUS,
        steps_topic("w"),
    }
    assert (p.closed, p.released, p.new_runs, p.deliveries) == ([], [], [], [])


def test_each_kind_of_change_tells_the_runs_topic() -> None:
    """A change of status, of problem, or a published value notifies ``run:<id>``; a step
    that changes none of them notifies only ``steps:<id>`` (for live views). A status
    change also notifies `TOPIC_STATUS`."""
    steps = steps_topic("w")
    assert plan([step(problem="stuck")], snap(running("r")), NOW).topics == {run_topic("w"), steps}
    healed = plan([step()], snap(running("r", problem="stuck")), NOW)
    assert healed.topics == {run_topic("w"), steps}
    published = plan([step(published={"k": b"v"})], snap(running("r")), NOW)
    assert published.topics == {run_topic("w"), steps}
    closing = plan([step(status="completed")], snap(running("r", status="completed")), NOW)
    assert closing.accepted == [False]  # closed runs are fenced out
    finishing = plan([step(status="completed")], snap(running("r")), NOW)
    # ... and a close notifies ``end:<id>`` too: what result() waits on.
    assert finishing.topics == {run_topic("w"), steps, TOPIC_STATUS, end_topic("w")}
    timer = plan([step(new_timers=[NewTimer("r", 2, NOW + 1, b"")])], snap(running("r")), NOW)
    assert timer.topics == {TOPIC_TIMERS, steps}
    quiet = plan(
        [step(problem="stuck"), step("r", 2, problem="stuck")],
        snap(running("r", problem="stuck")),
        NOW,
    )
    assert quiet.topics == {steps}  # the second step sees the problem the first one left


def test_a_released_lease_fences_out_the_runs_next_step_in_the_batch() -> None:
    steps = [step(release_lease=True), step("r", 2)]
    p = plan(steps, snap(running("r")), NOW)
    assert p.accepted == [True, False]
    assert p.released == ["r"]
    assert p.topics == {steps_topic("w")}  # not ready: no claimer to wake


def test_a_release_after_an_earlier_step_of_the_batch_sees_whether_the_run_is_ready() -> None:
    steps = [step(), step("r", 2, release_lease=True)]
    assert TOPIC_RUNS in plan(steps, snap(running("r", ready=True)), NOW).topics
    assert plan(steps, snap(running("r", ready=False)), NOW).topics == {steps_topic("w")}


def test_a_refused_child_of_a_run_continuing_as_new_is_not_sent_to_the_successor() -> None:
    """The ``child_failed`` reply names the parent run that asked: when that run continues
    as new in the same step, the reply is dropped, not handed to its successor."""
    successor = NewRun("w", "r2", "wf", "default", b"", NOW)
    kid = child("taken", "kid-new")
    s = step(new_runs=[kid], status="continued_as_new", successor=successor)
    p = plan([s], snap(running("r"), running("old", "taken")), NOW)
    assert p.accepted == [True]
    assert p.deliveries == []
    assert p.new_runs == [successor]
    [update] = p.runs
    assert (update.status, update.closed, update.release) == ("continued_as_new", True, True)


def test_a_started_child_is_recorded_with_its_parent_and_can_receive_items_at_once() -> None:
    kid = child("kid", "k1")
    s = step(new_runs=[kid], outgoing=[Outgoing("kid", Kind.SIGNAL_RECEIVED, b"hi")])
    p = plan([s], snap(running("r")), NOW)
    assert p.parents == {"k1": ("w", "r")}
    assert [(d.run_id, d.kind, d.data) for d in p.deliveries] == [
        ("k1", Kind.SIGNAL_RECEIVED, b"hi")
    ]


def test_a_delivery_wakes_claimers_and_nothing_else() -> None:
    runs = snap(running("r"), running("r2", "w2"))
    p = plan([step(outgoing=[Outgoing("w2", Kind.SIGNAL_RECEIVED, b"x")])], runs, NOW)
    assert p.topics == {TOPIC_RUNS, steps_topic("w")}
    assert p.deliveries == [Delivery("r2", Kind.SIGNAL_RECEIVED, NOW, b"x")]


def test_a_gap_names_the_entry_and_the_seq_it_should_have() -> None:
    bad = StepCommit("r", "w1", 4, [JournalEntry(5, "m", NOW, b""), JournalEntry(7, "m", NOW, b"")])
    with pytest.raises(
        ValueError,
        match=r"Step of run 'r': entry 1 has seq 7, expected 6 \(seqs continue from "
        r"expected_length 4, gapless\)\.",
    ):
        plan([bad], snap(running("r")), NOW)


def test_a_refused_child_says_how_to_give_it_a_unique_id() -> None:
    kid = child("taken", "kid-new")
    p = plan([step(new_runs=[kid])], snap(running("r"), running("old", "taken")), NOW)
    [delivery] = p.deliveries
    record = journal.decode(delivery.kind, delivery.data)
    assert isinstance(record, journal.ChildFailed)
    assert record.error.message == (
        "child workflow 'kid' could not start: id 'taken' is already running (run 'old'); "
        "give each child a unique id, e.g. durable.call(fn, ..., id=...)"
    )
