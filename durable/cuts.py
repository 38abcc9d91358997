"""Where a journal may be cut, and what a cut leaves in flight: the journal reading that
`durable.repair`'s rules stand on (pure: entries in, rows out).

A journal may end only where one activation's commands end — right before an input
entry, before a termination (written by a client after whole steps), or at its end —
since replay checks every command the code issues after an input against the commands
journaled with it (`fork_points`). What the kept entries started and did not see
answered is in flight (`in_flight`): activities, external waits, timers, child workflows;
`task_rows` gives the rows that bring them back for a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import journal
from .errors import RepairError
from .journal import INPUT_KINDS, Kind
from .store import EXTERNAL_OWNER, NEVER, JournalEntry, NewTask, NewTimer, RunRecord

__all__ = [
    "BOUNDARIES",
    "ENDINGS",
    "InFlight",
    "child_step",
    "children_needed",
    "fork_points",
    "in_flight",
    "read_records",
    "source_seed",
    "start_input",
    "task_rows",
    "timeout_timer",
]

ENDINGS = frozenset({*journal.CLOSING_KINDS, Kind.WORKFLOW_TERMINATED})  # how a run ends
BOUNDARIES = frozenset({*INPUT_KINDS, Kind.WORKFLOW_TERMINATED})  # what may follow a cut


def read_records(
    run: RunRecord, entries: Sequence[JournalEntry]
) -> list[tuple[JournalEntry, journal.Record]]:
    out = []
    for entry in entries:
        rec = journal.decode(entry.kind, entry.data)
        if isinstance(rec, journal.Damaged):
            raise RepairError(
                f"Journal entry {entry.seq} ({entry.kind}) of workflow {run.workflow_id!r} "
                f"cannot be read ({rec.problem}); it cannot be replayed, so it cannot be "
                "repaired. Start the workflow anew."
            )
        out.append((entry, rec))
    return out


@dataclass
class InFlight:
    """The commands of a journal prefix still waiting for their answer."""

    activities: dict[int, tuple[JournalEntry, journal.ActivityScheduled, int]] = field(
        default_factory=dict
    )  # seq -> (entry, command, attempts that failed so far)
    externals: dict[int, tuple[JournalEntry, journal.ExternalStarted]] = field(default_factory=dict)
    timers: dict[int, journal.TimerStarted] = field(default_factory=dict)
    children: dict[int, journal.ChildStarted] = field(default_factory=dict)


def in_flight(records: Sequence[tuple[JournalEntry, journal.Record]]) -> InFlight:
    out = InFlight()
    for entry, rec in records:
        seq = entry.seq
        if isinstance(rec, journal.ActivityScheduled):
            out.activities[seq] = (entry, rec, 0)
        elif isinstance(rec, journal.ActivityRetrying):
            if rec.ref in out.activities:
                e, cmd, tried = out.activities[rec.ref]
                out.activities[rec.ref] = (e, cmd, max(tried, rec.attempt))
        elif isinstance(rec, journal.ActivityCompleted | journal.ActivityFailed):
            out.activities.pop(rec.ref, None)
        elif isinstance(rec, journal.ExternalStarted):
            out.externals[seq] = (entry, rec)
        elif isinstance(rec, journal.ExternalCompleted | journal.ExternalFailed):
            out.externals.pop(rec.ref, None)
        elif isinstance(rec, journal.TimerStarted):
            out.timers[seq] = rec
        elif isinstance(rec, journal.TimerFired):
            out.timers.pop(rec.ref, None)
        elif isinstance(rec, journal.ChildStarted):
            out.children[seq] = rec
        elif isinstance(rec, journal.ChildCompleted | journal.ChildFailed):
            ref = next(
                (s for s, c in out.children.items() if c.run_id == rec.run_id),
                next((s for s, c in out.children.items() if c.id == rec.workflow_id), None),
            )
            if ref is not None:
                del out.children[ref]
    return out


def task_rows(
    flight: InFlight,
    run_id: str,
    workflow_id: str,
    queue: str,
    now: float,
    timeout: tuple[int, float] | None = None,
) -> tuple[list[NewTask], list[NewTimer]]:
    """The task and timer rows of what is in flight, for run ``run_id``; ``timeout``: the
    seq of the run's own timeout timer and its length, which starts again from ``now``."""
    fresh = {timeout[0]: now + timeout[1]} if timeout is not None else {}
    tasks = [
        NewTask(
            task_id=journal.task_id(run_id, seq),
            run_id=run_id,
            workflow_id=workflow_id,
            seq=seq,
            name=cmd.name,
            queue=cmd.queue,
            data=entry.data,
            visible_at=now,
            attempt=tried + 1,
        )
        for seq, (entry, cmd, tried) in sorted(flight.activities.items())
    ]
    tasks += [
        NewTask(
            task_id=journal.task_id(run_id, seq),
            run_id=run_id,
            workflow_id=workflow_id,
            seq=seq,
            name=cmd.name,
            queue=queue,
            data=entry.data,
            visible_at=now,
            lease_owner=EXTERNAL_OWNER,
            lease_expires_at=NEVER,
        )
        for seq, (entry, cmd) in sorted(flight.externals.items())
    ]
    timers = [
        NewTimer(run_id, seq, fresh.get(seq, cmd.due), journal.encode(journal.TimerFired(seq)))
        for seq, cmd in sorted(flight.timers.items())
    ]
    return tasks, timers


def fork_points(entries: Sequence[JournalEntry]) -> list[int]:
    """The seqs a journal may be cut after (see the module docstring): ``0``, and every
    seq followed by an input entry, by a termination, or ending the journal (not past an
    entry that ends the run)."""
    points = [0]
    for i, entry in enumerate(entries):
        if entry.kind in ENDINGS:
            break
        following = entries[i + 1] if i + 1 < len(entries) else None
        # A termination is written by a client after whole steps: it cuts nothing apart.
        if following is None or following.kind in BOUNDARIES:
            points.append(entry.seq)
    return points


def timeout_timer(
    run: RunRecord, records: Sequence[tuple[JournalEntry, journal.Record]]
) -> int | None:
    """The seq of the run's own timeout timer, if it has one: the engine starts it first
    thing, right after ``workflow_started``."""
    if run.timeout is None or not math.isfinite(run.timeout):
        return None
    kinds = [e.kind for e, _ in records]
    if Kind.WORKFLOW_STARTED not in kinds:
        return None
    after = kinds.index(Kind.WORKFLOW_STARTED) + 1
    return records[after][0].seq if kinds[after : after + 1] == [Kind.TIMER_STARTED] else None


def start_input(
    run: RunRecord, kept: int | None, seed: str | None = None
) -> list[tuple[str, bytes]]:
    """The start input, for a run whose journal keeps nothing of its own (``kept == 0``):
    after the repair's note (its entry 1) the worker no longer makes it, so it is queued."""
    if kept != 0:
        return []
    started = journal.WorkflowStarted(run.input, seed)
    return [(started.KIND, journal.encode(started))]


def source_seed(run: RunRecord, entries: Sequence[JournalEntry]) -> str | None:
    """The seed of a source whose start is not in the copied prefix (a fork at 0)."""
    for entry in entries:
        if entry.kind == Kind.WORKFLOW_STARTED:
            rec = journal.decode(entry.kind, entry.data)
            return rec.seed if isinstance(rec, journal.WorkflowStarted) else None
    return None


def child_step(
    records: Sequence[tuple[JournalEntry, journal.Record]], rec: journal.ChildFailed
) -> int | None:
    """The seq of the ``child_started`` that ``rec`` answers."""
    for entry, cmd in reversed(records):
        if isinstance(cmd, journal.ChildStarted) and rec.run_id in (cmd.run_id, None):
            if cmd.id == rec.workflow_id:
                return entry.seq
    return None


def children_needed(
    entries: Sequence[JournalEntry], upto: int | None = None
) -> list[journal.ChildStarted]:
    """The child workflows whose runs `retry_plan` (``upto=None``: wherever the cut is)
    or `fork_plan` (``upto``: its ``at_seq``) need: those started in the journal (up to
    ``upto``) and not answered before its end, or answered by its last input (what a
    retry's cut drops). Entries that cannot be read are skipped here (the plan refuses
    them)."""
    chosen = entries if upto is None else entries[:upto]
    records = [
        (e, r)
        for e in chosen
        if not isinstance(r := journal.decode(e.kind, e.data), journal.Damaged)
    ]
    if upto is None:
        inputs = [i for i, (e, _) in enumerate(records) if e.kind in INPUT_KINDS]
        if inputs and isinstance(
            records[inputs[-1]][1], journal.ChildFailed | journal.ChildCompleted
        ):
            records = records[: inputs[-1]]
    return list(in_flight(records).children.values())
