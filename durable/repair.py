"""Repair: re-open a failed run where it stopped (retry), or start a new run from a prefix
of another's journal (fork). DESIGN §8.

The rules are written here once, as pure functions (STYLE 26), on the journal reading of
`durable.cuts` (where a journal may be cut, what a cut leaves in flight): `retry_plan` and
`fork_plan` read a run and its journal and return what to write — a `Reopen` or a
`Fork` — or raise `RepairError` saying why not and what to do instead. Each backend
applies them in one transaction (`durable.store.Store.reopen_run`,
`durable.store.Store.fork_run`); `retry` and `fork` below are what the client calls.

**Where a journal may be cut.** The worker journals each input right before the commands
the code issued after it, in one commit, and replay checks every command against that
list; so a journal may end only where one activation's commands end: right before an
input entry, or at its end. A cut anywhere else would leave the code issuing commands
the journal does not hold, and the run would park as non-deterministic.

**Retry** (``handle.retry()``) keeps the run (its id, run id, and the journal up to the
failure) and re-opens it:

- *failed because a step failed* — the last input before ``workflow_failed`` is an
  ``activity_failed`` (or ``external_failed``, or ``child_failed`` of a child that failed
  or was terminated): the journal is cut right before it, the step runs again (its task
  is created anew, the attempt numbering going on from the failed attempts; an external
  wait gets its row back, same token; a failed child is retried first, the same way, and
  answers when it ends), and a failed attempt stays in the history as an
  ``activity_retrying`` entry.
- *failed because the workflow code raised* (after any other input: an activity's result,
  a timer, a signal, or the start itself) — the journal is cut right before that input,
  which is delivered again: the code runs from there with the code deployed now, so a
  fixed deploy and a retry repair it.
- *failed by its own timeout* (``@workflow(timeout=...)``) — it goes on where it was
  when it timed out, with its steps in flight.
- *terminated* — only ``workflow_terminated`` is dropped; the steps it interrupted go on.
- *parked* (open, but a worker could not advance it: non-determinism after a deploy, a
  step that could not be committed) — it is unparked: workers try it again at once with
  their code, as when a worker starts. Nothing is dropped.

Every step in flight at the cut gets its row back: activity tasks (queued, next attempt),
external waits, timers (at their recorded due time; one the code had cancelled fires
into nothing; the run's own timeout starts again from the repair, so that neither a retry
nor a fork of an old run times out at once). A child workflow in flight answers by
itself if still open (the run keeps its run id); one that closed meanwhile has its
outcome delivered from its run (its own answer went to the closed run and was dropped).
The re-open is fenced on those children's statuses, so a child closing while it is
planned makes `retry` plan again.

A ``run_retried`` entry, written by the repair itself right after what is kept, says
what was done: the status it had, why it ended, the step run again and the entries
dropped, so the history shows the repair (it is an input that changes nothing in the
code's state). When nothing is kept (the code raised on its start), the start input is
queued after it.

Refused: a run still open and not parked, completed, cancelled (on purpose: fork it, or
start it again), or not the current run of its id; a run with a child whose run is gone
(pruned); a child run whose parent is still open (the parent was told it failed: retry
the parent). Start a new run with ``if_exists="restart"``, or fork it, instead.

A repair is an operator's act on the journal, which is otherwise append-only: the entries
a retry drops are listed in its note, and workers older than these kinds park a repaired
run (they do not know ``run_retried``) until a newer worker starts.

**Fork** (``client.fork(id, at_seq=N, new_id=None)``) creates a new workflow (id
``new_id``, default ``{id}-fork-{8 hex}``) whose journal is a copy of entries ``1..N``
of the source's current run, and lets workers go on from there with the code deployed
now: completed steps are reused, not run again; steps in flight at seq ``N`` run again
(their rows are created for the new run). ``at_seq=0`` starts from scratch with the same
input. The new run keeps the source's name, queue, input, timeout and tags, replays the
source's random values (``workflow_started.seed``), and its entry ``N + 1`` is
``run_forked`` naming the source. Refused: a seq past the end of the journal, one that
includes the run's end, one that cuts an activation's commands (the error names the
nearest seqs that work), a prefix with an unreadable entry or a child workflow in
flight that has not completed (its answer belongs to the source run; a completed one's
result is reused).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import journal, payload
from .cuts import (
    ENDINGS,
    InFlight,
    child_step,
    children_needed,
    fork_points,
    in_flight,
    read_records,
    source_seed,
    start_input,
    task_rows,
    timeout_timer,
)
from .errors import RemoteError, RepairError, WorkflowAlreadyExists, WorkflowNotFound
from .journal import INPUT_KINDS
from .store import CLOSED_STATUSES, JournalEntry, NewRun, NewTask, NewTimer, RunRecord

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "RETRYABLE",
    "Fork",
    "Reopen",
    "fork",
    "fork_plan",
    "retry",
    "retry_plan",
]

#: Statuses `retry` re-opens (and open runs that are parked).
RETRYABLE = ("failed", "terminated")
REPLANS = 5  # times retry plans again when a child in flight moved on while it planned
FORK_SUFFIX = "-fork-"  # a fork's default id: "{source id}-fork-{8 hex digits}"


@dataclass(frozen=True, slots=True)
class Reopen:
    """What `Store.reopen_run` writes to re-open run ``run_id`` (see the module docstring).

    Fence: the run is still current with ``expected_status`` and ``expected_length``
    (journal entries), for a parked run still parked, and each run of ``children`` still
    has the status given (checked after the run's row is locked, which a child's commit
    delivering to it locks too); otherwise nothing is written.
    Then, in one transaction: journal entries past ``keep`` are deleted and ``note`` (the
    ``run_retried`` entry's data) is appended as entry ``keep + 1``; unless ``parked``,
    the run's task rows, timers and inbox items are deleted, ``tasks``/``timers`` inserted
    and ``inbox`` items (kind, data) queued in order; the run becomes ``status`` with
    ``history_length = keep + 1``, no result, error, closed_at, lease, parked or problem,
    and ready.
    """

    run_id: str
    workflow_id: str
    expected_status: str
    expected_length: int
    parked: bool
    keep: int
    status: str
    note: bytes
    tasks: list[NewTask] = field(default_factory=list)
    timers: list[NewTimer] = field(default_factory=list)
    inbox: list[tuple[str, bytes]] = field(default_factory=list)
    #: Fence on the children in flight at the cut: run id -> status as the plan read it.
    #: A child that closed since would have answered a closed run (dropped): re-plan.
    children: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fork:
    """What `Store.fork_run` writes: ``run`` as a new current run (refused with
    `WorkflowAlreadyExists` when its workflow id has any run) with ``status`` and
    ``entries`` as its journal (``history_length = len(entries)``), ready; its ``tasks``,
    ``timers``, ``published`` values (key -> value) and ``inbox`` items, in one
    transaction."""

    run: NewRun
    status: str
    entries: list[JournalEntry]
    tasks: list[NewTask] = field(default_factory=list)
    timers: list[NewTimer] = field(default_factory=list)
    published: dict[str, bytes] = field(default_factory=dict)
    inbox: list[tuple[str, bytes]] = field(default_factory=list)


def _cause(run: RunRecord) -> str:
    if run.error is None:
        return ""
    try:
        return str(RemoteError.from_dict(payload.decode(run.error)))
    except Exception:
        return "(the run's error cannot be read)"


# ---- retry -----------------------------------------------------------------------------


def retry_plan(
    run: RunRecord,
    entries: Sequence[JournalEntry],
    now: float,
    *,
    reason: str = "",
    children: Mapping[str, RunRecord] | None = None,
) -> Reopen:
    """What re-opens ``run`` (its whole journal is ``entries``), per the module docstring.

    ``children``: the runs of the child workflows in flight where the journal is cut (see
    `children_needed`), by the run id their ``child_started`` names (or its successor's,
    for one that continued as new); the failed child of a failed step must have been
    re-opened already (`retry` does so).

    Raises `RepairError` when the run has nothing to retry or cannot be retried.
    """
    wid = run.workflow_id
    if not run.is_current:
        raise RepairError(
            f"Run {run.run_id} is not the current run of workflow {wid!r}; only the "
            "current run can be retried (fork this one instead: client.fork(id, at_seq=N))."
        )
    if run.status not in CLOSED_STATUSES and run.parked:
        note = journal.RunRetried(run.status, run.problem or "", None, [], reason)
        return Reopen(
            run.run_id,
            wid,
            run.status,
            run.history_length,
            parked=True,
            keep=run.history_length,
            status="running",
            note=journal.encode(note),
            inbox=start_input(run, run.history_length),  # parked before it started
        )
    if run.status not in RETRYABLE:
        raise RepairError(_not_retryable(run))
    records = read_records(run, entries)
    if not records or records[-1][0].kind not in ENDINGS:
        raise RepairError(
            f"Workflow {wid!r} is {run.status} but its journal does not end with how it "
            "ended; it cannot be retried where it stopped. Fork it at a seq "
            "(durable fork ID --at-seq N) or start it anew."
        )
    end = len(records) - 1
    redelivered: list[tuple[JournalEntry, journal.Record]] = []
    step: int | None = None
    if run.status == "terminated":
        keep = end
    else:
        last = max((i for i in range(end) if records[i][0].kind in INPUT_KINDS), default=None)
        if last is None:
            raise RepairError(f"Workflow {wid!r} failed before it started; start it anew.")
        entry, rec = records[last]
        keep = last  # entries before the input after which the code failed
        if isinstance(rec, journal.ActivityFailed) and rec.error.type != "CancelledError":
            step = rec.ref
            again = journal.ActivityRetrying(
                rec.ref, rec.attempts, rec.error, rec.started_at, rec.worker
            )
            redelivered.append((JournalEntry(entry.seq, again.KIND, entry.time, b""), again))
        elif isinstance(rec, journal.ExternalFailed):
            step = rec.ref
        elif isinstance(rec, journal.ChildFailed) and rec.status in RETRYABLE:
            step = child_step(records[:last], rec)  # the child is re-opened with this run
        elif isinstance(rec, journal.TimerFired) and rec.ref == timeout_timer(run, records):
            pass  # timed out: the timer is in flight again, and starts again (task_rows)
        elif isinstance(rec, journal.WorkflowStarted):
            keep = 0  # started again below
        else:
            redelivered.append((entry, rec))
    kept = records[:keep]
    flight = in_flight([*kept, *redelivered])
    children = children or {}
    answers = _child_answers(wid, flight, children, fork=False)
    seen = {c.run_id: children[c.run_id].run_id for c in flight.children.values()}
    timeout = timeout_timer(run, records)
    limit = (timeout, run.timeout) if timeout is not None and run.timeout is not None else None
    tasks, timers = task_rows(flight, run.run_id, wid, run.queue, now, limit)
    dropped = [[e.seq, e.kind] for e, _ in records[keep:]]
    note = journal.RunRetried(run.status, _cause(run), step, dropped, reason)
    inbox = start_input(run, 0 if keep == 0 else None, source_seed(run, entries))
    inbox += [(r.KIND, journal.encode(r)) for _, r in redelivered]
    inbox += [(r.KIND, journal.encode(r)) for r in answers]
    return Reopen(
        run.run_id,
        wid,
        run.status,
        run.history_length,
        parked=False,
        keep=keep,
        status="running",
        note=journal.encode(note),
        tasks=tasks,
        timers=timers,
        inbox=inbox,
        children={run_id: children[cmd].status for cmd, run_id in seen.items()},
    )


def _not_retryable(run: RunRecord) -> str:
    wid = run.workflow_id
    if run.status == "completed":
        return (
            f"Workflow {wid!r} completed: there is nothing to retry. To run it again from a "
            f"step, fork it (durable fork {wid} --at-seq N); to run it anew, start it with "
            "if_exists='restart'."
        )
    if run.status == "cancelled":
        return (
            f"Workflow {wid!r} was cancelled on purpose; retry re-opens failed or terminated "
            f"runs. Fork it (durable fork {wid} --at-seq N) or start it anew."
        )
    if run.status in CLOSED_STATUSES:
        return f"Workflow {wid!r} is {run.status}; retry re-opens failed or terminated runs."
    return (
        f"Workflow {wid!r} is still {run.status} (not failed, nor parked): there is nothing "
        "to retry, it goes on by itself. Cancel or terminate it to stop it; fork it to run "
        "a copy from a step."
    )


def _child_answers(
    wid: str, flight: InFlight, children: Mapping[str, RunRecord], *, fork: bool
) -> list[journal.Record]:
    """What each child in flight at the cut tells the repaired run: nothing while it is
    open (its answer will reach it: a re-opened run keeps its run id); the outcome of one
    that closed meanwhile (its answer went to the closed run and was dropped). A fork
    only reuses completed children: another's answer goes to the source run."""
    answers: list[journal.Record] = []
    for seq, cmd in sorted(flight.children.items()):
        child = children.get(cmd.run_id)
        where = f"child workflow {cmd.name!r} ({cmd.id}), started at step {seq} of {wid!r},"
        if child is None:
            raise RepairError(
                f"The run of {where} is gone (pruned?); its outcome is unknown, so the run "
                "cannot be repaired there. Fork it at a seq before the child started."
            )
        if child.status == "completed":
            answers.append(journal.ChildCompleted(cmd.id, child.result, child.run_id))
        elif fork:
            raise RepairError(
                f"{where[0].upper()}{where[1:]} is {child.status} where the journal would be "
                "cut, and its outcome belongs to the source run. Fork at a seq after its "
                "answer, or before it started."
            )
        elif child.status in CLOSED_STATUSES:
            error = RemoteError.from_dict(payload.decode(child.error)) if child.error else None
            answers.append(
                journal.ChildFailed(
                    cmd.id,
                    error or RemoteError("CancelledError", "child workflow was cancelled"),
                    child.status,
                    child.run_id,
                )
            )
    return answers


async def retry(store: Store, workflow_id: str, now: float, *, reason: str = "") -> Reopen:
    """Re-open the current run of ``workflow_id`` (`retry_plan`); returns what was written.
    Raises `WorkflowNotFound`, or `RepairError` (nothing written)."""
    run = await store.get_run(workflow_id)
    if run is None:
        raise WorkflowNotFound(f"No workflow with id {workflow_id!r} in {store.url}.")
    if run.parent_id is not None and run.status in CLOSED_STATUSES:
        parent = await store.get_run(run.parent_id, run.parent_run_id)
        if parent is not None and parent.status not in CLOSED_STATUSES:
            raise RepairError(
                f"Workflow {workflow_id!r} is a child of {run.parent_id!r}, which is still "
                f"{parent.status} and was told this child {run.status}; retry the parent's "
                "step instead (a child's new outcome would not reach it)."
            )
    first = run
    for _ in range(REPLANS):
        entries = await store.read_journal(run.run_id)
        failed_child = _failed_child(run, entries)
        if failed_child is not None:
            child = await store.get_run(failed_child)
            if child is not None and child.status in RETRYABLE:
                # The child first: should this run's re-open fail, the child's outcome is
                # read from its run by the next try.
                why = f"retried with its parent {workflow_id!r}"
                await retry(store, failed_child, now, reason=why)
        children = await _child_runs(store, children_needed(entries))
        plan = retry_plan(run, entries, now, reason=reason, children=children)
        if await store.reopen_run(plan, now):
            return plan
        again = await store.get_run(workflow_id)  # changed meanwhile: look again
        if again is None or (again.run_id, again.status) != (run.run_id, run.status):
            break
        run = again
    raise RepairError(
        f"Workflow {workflow_id!r} changed while it was being retried (it was "
        f"{first.status}); nothing was written. Look at it again and retry if still needed."
    )


def _failed_child(run: RunRecord, entries: Sequence[JournalEntry]) -> str | None:
    """The workflow id of the child whose failure failed ``run`` (the last input before
    its end), if it is to be retried with it."""
    if run.status != "failed" or len(entries) < 2:
        return None
    last = next((e for e in reversed(entries[:-1]) if e.kind in INPUT_KINDS), None)
    rec = journal.decode(last.kind, last.data) if last is not None else None
    if isinstance(rec, journal.ChildFailed) and rec.status in RETRYABLE:
        return rec.workflow_id
    return None


async def _child_runs(store: Store, wanted: Sequence[journal.ChildStarted]) -> dict[str, RunRecord]:
    """The runs of ``wanted`` children by the run id their command names: the successor
    that answers for one that continued as new."""
    found: dict[str, RunRecord] = {}
    for cmd in wanted:
        child = await store.get_run(cmd.id, cmd.run_id)
        if child is not None and child.status == "continued_as_new":
            child = await store.get_run(cmd.id)
        if child is not None:
            found[cmd.run_id] = child
    return found


# ---- fork ------------------------------------------------------------------------------


def fork_plan(
    run: RunRecord,
    entries: Sequence[JournalEntry],
    at_seq: int,
    workflow_id: str,
    run_id: str,
    now: float,
    *,
    children: Mapping[str, RunRecord] | None = None,
) -> Fork:
    """A new run ``run_id`` of ``workflow_id`` from entries ``1..at_seq`` of ``run``, per
    the module docstring; ``children`` as for `retry_plan` (``children_needed(entries,
    at_seq)``). Raises `RepairError` for a seq where the journal cannot be cut."""
    wid = run.workflow_id
    if isinstance(at_seq, bool) or not isinstance(at_seq, int) or at_seq < 0:
        raise RepairError(f"at_seq must be a whole number >= 0, not {at_seq!r}.")
    points = fork_points(entries)
    if at_seq not in points:
        raise RepairError(_bad_seq(wid, entries, at_seq, points))
    records = read_records(run, entries[:at_seq])
    flight = in_flight(records)
    answers = _child_answers(wid, flight, children or {}, fork=True)
    copied = list(entries[:at_seq])
    seed = run.run_id  # what seeds the source's durable.random(), unless it has a seed
    for i, (entry, rec) in enumerate(records):
        if isinstance(rec, journal.WorkflowStarted):
            seed = rec.seed or seed
            seeded = journal.WorkflowStarted(rec.args, seed)
            copied[i] = JournalEntry(entry.seq, entry.kind, entry.time, journal.encode(seeded))
            break
    else:
        seed = source_seed(run, entries) or seed
    timeout = timeout_timer(run, records)
    limit = (timeout, run.timeout) if timeout is not None and run.timeout is not None else None
    tasks, timers = task_rows(flight, run_id, workflow_id, run.queue, now, limit)
    published = {rec.key: rec.value for _, rec in records if isinstance(rec, journal.Published)}
    note = journal.RunForked(wid, run.run_id, at_seq)
    copied.append(JournalEntry(at_seq + 1, note.KIND, now, journal.encode(note)))
    new = NewRun(
        workflow_id=workflow_id,
        run_id=run_id,
        name=run.name,
        queue=run.queue,
        input=run.input,
        created_at=now,
        timeout=run.timeout,
        tags=run.tags or None,
    )
    inbox = start_input(run, at_seq, seed)
    inbox += [(r.KIND, journal.encode(r)) for r in answers]
    return Fork(
        new, "running", copied, tasks=tasks, timers=timers, published=published, inbox=inbox
    )


def _bad_seq(wid: str, entries: Sequence[JournalEntry], at_seq: int, points: list[int]) -> str:
    end = points[-1]
    if at_seq > len(entries):
        return (
            f"at_seq {at_seq} is past the end of the journal of workflow {wid!r} "
            f"({len(entries)} entries); fork at a seq from 0 to {end}."
        )
    ending = next((e for e in entries if e.kind in ENDINGS), None)
    if ending is not None and at_seq >= ending.seq:
        return (
            f"at_seq {at_seq} includes how workflow {wid!r} ended (seq {ending.seq}: "
            f"{ending.kind}); fork at {end} or earlier."
        )
    before = max(p for p in points if p < at_seq)
    after = min((p for p in points if p > at_seq), default=None)
    last = after if after is not None else (ending.seq if ending is not None else len(entries))
    return (
        f"at_seq {at_seq} cuts entries {before + 1}-{last} of workflow {wid!r} apart: an "
        "input and the commands its code issued after it, which replay only together; "
        f"fork at {before} (before them)"
        + (f" or {after} (after them)." if after is not None else ".")
    )


async def fork(store: Store, workflow_id: str, at_seq: int, new_id: str | None, now: float) -> str:
    """Fork the current run of ``workflow_id`` (`fork_plan`) as ``new_id``; returns the
    new workflow id. Raises `WorkflowNotFound`, `WorkflowAlreadyExists` (``new_id`` taken), or
    `RepairError` (nothing written)."""
    if new_id is not None and (not isinstance(new_id, str) or not new_id):
        raise RepairError(f"new_id must be a non-empty str or None, not {new_id!r}.")
    run = await store.get_run(workflow_id)
    if run is None:
        raise WorkflowNotFound(f"No workflow with id {workflow_id!r} in {store.url}.")
    target = new_id or f"{workflow_id}{FORK_SUFFIX}{uuid.uuid4().hex[:8]}"
    if target == workflow_id:
        raise RepairError(f"A fork needs a new workflow id, not {workflow_id!r} itself.")
    entries = await store.read_journal(run.run_id)
    upto = at_seq if isinstance(at_seq, int) and at_seq >= 0 else 0
    children = await _child_runs(store, children_needed(entries, upto))
    plan = fork_plan(run, entries, at_seq, target, str(uuid.uuid4()), now, children=children)
    try:
        await store.fork_run(plan, now)
    except WorkflowAlreadyExists as exc:
        raise WorkflowAlreadyExists(
            f"Cannot fork {workflow_id!r} as {target!r}: {exc} Give another new_id."
        ) from None
    return target
