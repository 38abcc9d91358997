"""The repair rules offline (`durable.repair.retry_plan`, `fork_plan`, `fork_points`):
journals in, what a backend writes out, with no store. The end-to-end tests
(tests/test_repair.py) see them through a worker; these pin the cases a worker run does
not reach quickly (a parked run, a timeout, a child in flight, an external wait)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from durable import journal, payload
from durable.cuts import children_needed, fork_points
from durable.errors import RemoteError, RepairError
from durable.journal import Kind
from durable.repair import fork_plan, retry_plan
from durable.store import EXTERNAL_OWNER, JournalEntry, RunRecord

BOOM = RemoteError("ValueError", "boom")
ARGS = payload.encode({"args": [], "kwargs": {}})


def _run(status: str, length: int, **kw: Any) -> RunRecord:
    base: dict[str, Any] = {
        "workflow_id": "wf-1",
        "run_id": "run-1",
        "name": "wf",
        "queue": "default",
        "status": status,
        "input": ARGS,
        "result": None,
        "error": payload.envelope(BOOM.to_dict()),
        "created_at": 1.0,
        "updated_at": 1.0,
        "closed_at": None,
        "parent_id": None,
        "parent_run_id": None,
        "history_length": length,
        "ready": False,
        "lease_owner": None,
        "lease_expires_at": None,
        "parked": False,
        "problem": None,
        "continued_to": None,
        "timeout": None,
        "is_current": True,
    }
    return RunRecord(**{**base, **kw})


def _journal(*records: journal.Record) -> list[JournalEntry]:
    return [JournalEntry(i, r.KIND, float(i), journal.encode(r)) for i, r in enumerate(records, 1)]


def _act(name: str = "a") -> journal.ActivityScheduled:
    return journal.ActivityScheduled(name, "default", ARGS, {})


def test_a_failed_activity_is_redriven_with_its_attempts_going_on() -> None:
    entries = _journal(
        journal.WorkflowStarted(ARGS),
        _act("a"),
        journal.ActivityCompleted(2, None),
        _act("b"),
        journal.TimerStarted(99.0),
        journal.ActivityRetrying(4, 1, BOOM),
        journal.ActivityFailed(4, BOOM, attempts=2),
        journal.WorkflowFailed(BOOM),
    )
    plan = retry_plan(_run("failed", 8), entries, 50.0)
    assert (plan.keep, plan.status, plan.expected_length) == (6, "running", 8)
    assert [(t.task_id, t.attempt, t.name) for t in plan.tasks] == [("run-1:4", 3, "b")]
    assert [(t.seq, t.due_at) for t in plan.timers] == [(5, 99.0)]
    assert [kind for kind, _ in plan.inbox] == [Kind.ACTIVITY_RETRYING]
    note = journal.decode(Kind.RUN_RETRIED, plan.note)  # journaled as entry keep + 1
    assert isinstance(note, journal.RunRetried)
    assert (note.step, note.dropped) == (4, [[7, "activity_failed"], [8, "workflow_failed"]])
    again = journal.decode(*plan.inbox[0])
    assert again == journal.ActivityRetrying(4, 2, BOOM)


def test_code_that_raised_gets_its_last_input_again_and_its_results_are_not_rerun() -> None:
    entries = _journal(
        journal.WorkflowStarted(ARGS),
        _act("a"),
        journal.ActivityCompleted(2, b"\xc0"),
        journal.WorkflowFailed(BOOM),
    )
    plan = retry_plan(_run("failed", 4), entries, 50.0)
    assert plan.keep == 2
    assert plan.tasks == []  # activity a's result is delivered again, not run again
    assert [kind for kind, _ in plan.inbox] == [Kind.ACTIVITY_COMPLETED]
    started = _journal(journal.WorkflowStarted(ARGS), journal.WorkflowFailed(BOOM))
    fresh = retry_plan(_run("failed", 2), started, 50.0)
    assert fresh.keep == 0  # the note becomes entry 1, and the start input follows it
    assert fresh.inbox == [(Kind.WORKFLOW_STARTED, journal.encode(journal.WorkflowStarted(ARGS)))]


def test_a_terminated_run_keeps_its_waits_and_an_external_wait_its_token() -> None:
    entries = _journal(
        journal.WorkflowStarted(ARGS),
        journal.ExternalStarted("callback"),
        journal.WorkflowTerminated("oops"),
    )
    plan = retry_plan(_run("terminated", 3), entries, 50.0)
    assert plan.keep == 2
    [task] = plan.tasks
    assert (task.task_id, task.lease_owner) == ("run-1:2", EXTERNAL_OWNER)


def test_a_parked_run_is_unparked_without_cutting_anything() -> None:
    run = _run("running", 5, parked=True, problem="NonDeterminismError: ...", error=None)
    plan = retry_plan(run, [], 50.0)
    assert (plan.parked, plan.keep, plan.status, plan.tasks) == (True, 5, "running", [])
    assert plan.inbox == []
    note = journal.decode(Kind.RUN_RETRIED, plan.note)
    assert isinstance(note, journal.RunRetried)
    assert note.cause == "NonDeterminismError: ..."
    early = retry_plan(replace(run, status="pending", history_length=0), [], 50.0)
    assert [kind for kind, _ in early.inbox] == [Kind.WORKFLOW_STARTED]  # after its note


@pytest.mark.parametrize(
    ("run", "records", "message"),
    [
        (_run("running", 1), [], "still running .* nothing to retry"),
        (_run("cancelled", 1), [], "cancelled on purpose"),
        (_run("failed", 3, is_current=False), [], "not the current run"),
        (
            _run("terminated", 3),
            [
                journal.WorkflowStarted(ARGS),
                journal.ChildStarted("kid", "kid-1", "kr-1", "default", ARGS),
                journal.WorkflowTerminated(""),
            ],
            r"The run of child workflow 'kid' \(kid-1\), started at step 2 .* is gone",
        ),
    ],
)
def test_retry_refuses_what_it_cannot_repair(
    run: RunRecord, records: list[journal.Record], message: str
) -> None:
    with pytest.raises(RepairError, match=message):
        retry_plan(run, _journal(*records), 50.0)


def test_fork_points_end_where_inputs_commands_end() -> None:
    entries = _journal(
        journal.WorkflowStarted(ARGS),
        _act("a"),
        _act("b"),
        journal.ActivityCompleted(2, None),
        journal.ActivityCompleted(3, None),
        journal.Published("k", b"\xc0"),
        journal.WorkflowCompleted(None),
    )
    assert fork_points(entries) == [0, 3, 4]
    plan = fork_plan(_run("completed", 7), entries, 4, "wf-2", "run-2", 60.0)
    assert [(t.task_id, t.attempt) for t in plan.tasks] == [("run-2:3", 1)]  # b runs again
    assert plan.published == {}
    started = journal.decode(plan.entries[0].kind, plan.entries[0].data)
    assert started == journal.WorkflowStarted(ARGS, seed="run-1")  # the source's random
    assert plan.entries[1:4] == entries[1:4]
    [(seq, kind, note)] = [(e.seq, e.kind, e.data) for e in plan.entries[4:]]
    assert (seq, kind) == (5, Kind.RUN_FORKED)
    assert journal.decode(kind, note) == journal.RunForked("wf-1", "run-1", 4)
    assert plan.inbox == []
    scratch = fork_plan(_run("completed", 7), entries, 0, "wf-4", "run-4", 60.0)
    assert [e.kind for e in scratch.entries] == [Kind.RUN_FORKED]  # then its start input:
    assert scratch.inbox == [
        (Kind.WORKFLOW_STARTED, journal.encode(journal.WorkflowStarted(ARGS, "run-1")))
    ]
    with pytest.raises(RepairError, match=r"cuts entries 1-3 .* fork at 0 .* or 3"):
        fork_plan(_run("completed", 7), entries, 2, "wf-2", "run-2", 60.0)
    with pytest.raises(RepairError, match=r"cuts entries 5-7 .* fork at 4 \(before them\)\."):
        fork_plan(_run("completed", 7), entries, 6, "wf-2", "run-2", 60.0)
    reforked = replace(entries[0], data=journal.encode(journal.WorkflowStarted(ARGS, "s0")))
    plan = fork_plan(_run("running", 3), [reforked, *entries[1:3]], 3, "wf-3", "run-3", 60.0)
    started = journal.decode(plan.entries[0].kind, plan.entries[0].data)
    assert started == journal.WorkflowStarted(ARGS, seed="s0")  # a fork of a fork keeps it


KID = journal.ChildStarted("kid", "kid-1", "kr-1", "default", ARGS)


def test_children_in_flight_are_heard_from_their_runs_as_they_stand() -> None:
    entries = _journal(
        journal.WorkflowStarted(ARGS),
        KID,
        journal.ChildFailed("kid-1", BOOM, "failed", "kr-1"),
        journal.WorkflowFailed(BOOM),
    )
    assert children_needed(entries) == [KID]  # the failed child, which retry re-opens
    reopened = _run("running", 3, workflow_id="kid-1", run_id="kr-1", error=None)
    plan = retry_plan(_run("failed", 4), entries, 50.0, children={"kr-1": reopened})
    assert plan.keep == 2
    assert plan.inbox == []  # the child will answer
    note = journal.decode(Kind.RUN_RETRIED, plan.note)
    assert isinstance(note, journal.RunRetried)
    assert note.step == 2
    stopped = _journal(journal.WorkflowStarted(ARGS), KID, journal.WorkflowTerminated(""))
    done = replace(reopened, status="completed", result=b"\xc0")
    plan = retry_plan(_run("terminated", 3), stopped, 50.0, children={"kr-1": done})
    assert journal.decode(*plan.inbox[0]) == journal.ChildCompleted("kid-1", b"\xc0", "kr-1")
    gone = replace(reopened, status="cancelled", error=payload.envelope(BOOM.to_dict()))
    plan = retry_plan(_run("terminated", 3), stopped, 50.0, children={"kr-1": gone})
    assert journal.decode(*plan.inbox[0]) == journal.ChildFailed("kid-1", BOOM, "cancelled", "kr-1")
    # a fork reuses a completed child's result, and refuses one whose answer is elsewhere
    forked = fork_plan(_run("terminated", 3), stopped, 2, "f", "fr", 60.0, children={"kr-1": done})
    assert journal.decode(*forked.inbox[0]) == journal.ChildCompleted("kid-1", b"\xc0", "kr-1")
    with pytest.raises(RepairError, match="is running where the journal would be cut"):
        fork_plan(_run("terminated", 3), stopped, 2, "f", "fr", 60.0, children={"kr-1": reopened})


def test_a_run_that_timed_out_goes_on_with_its_timeout_started_again() -> None:
    entries = _journal(
        journal.WorkflowStarted(ARGS),
        journal.TimerStarted(31.0),  # the run's own timeout (30 s from its start at 1.0)
        _act("a"),
        journal.TimerFired(2),
        journal.WorkflowFailed(RemoteError("TimeoutError", "timed out")),
    )
    plan = retry_plan(_run("failed", 5, timeout=30.0), entries, 500.0)
    assert plan.keep == 3
    assert [(t.seq, t.due_at) for t in plan.timers] == [(2, 530.0)]
    assert [t.seq for t in plan.tasks] == [3]  # a runs again
    assert plan.inbox == []  # not the timeout again
    forked = fork_plan(_run("failed", 5, timeout=30.0), entries, 3, "f", "fr", 900.0)
    assert [(t.seq, t.due_at) for t in forked.timers] == [(2, 930.0)]
    sleeper = _journal(journal.WorkflowStarted(ARGS), journal.TimerStarted(99.0))
    plan = fork_plan(_run("running", 2), sleeper, 2, "g", "gr", 900.0)  # no timeout: a sleep
    assert [(t.seq, t.due_at) for t in plan.timers] == [(2, 99.0)]
