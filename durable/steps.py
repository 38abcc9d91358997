"""Steps: the one model of a run that everything shows (DESIGN §6).

The journal is the truth; a *step* is how people see it: one per durable operation (an
activity with all its attempts, a child workflow, a timer, a signal wait, an external wait,
a published value, a patch marker, a saga's compensation), with its branch and group,
status, times, input, output and error. This module turns a run's journal (and what the
store knows beyond it: the activity tasks with their attempts in flight, the timers still
to fire) into `Step`\\ s, the pending ones into `PendingStep`\\ s, and says why a run
cannot progress (`problem`). It is pure — entries in, steps out — so the client, the CLI,
the HTTP API and the console all show the same thing, and nobody else interprets journal
entries.

Statuses: ``scheduled`` (an activity waiting for a worker), ``running`` (an attempt under
way), ``retrying`` (an attempt failed; the next waits for its backoff), ``waiting`` (a
timer, a signal wait, an external wait, a child workflow), ``completed``, ``failed``,
``cancelled`` (given up by the code, or the run closed first).

A compensation (an activity a `durable.saga` block ran to undo a step) is a step of kind
``compensation``: an activity in every other way, with attempts, retries and errors.

An entry that cannot be read (`durable.journal.Damaged`) becomes a step of kind
``damaged`` saying why, and the rest of the run is still shown.
"""

from __future__ import annotations

import gc
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import msgpack

from . import journal, payload
from .errors import RemoteError
from .journal import Kind
from .stepmodel import (
    ACTIVITY_KINDS,
    Attempt,
    PendingStep,
    Step,
    Undecoded,
    args_of,
    decoded,
    dt,
    make_step,
    readable_value,
    value,
)
from .store import CLOSED_STATUSES, JournalEntry, RunRecord, TaskRecord, WorkerRecord

__all__ = [
    "ACTIVITY_KINDS",
    "HISTORY_WARN",
    "Attempt",
    "PendingStep",
    "Step",
    "StepBuilder",
    "Undecoded",
    "build",
    "build_rows",
    "decoded",
    "pending",
    "problem",
    "readable",
    "readable_value",
    "value",
]

HISTORY_WARN = 20_000  # journal length past which describe() and the worker's log warn


class StepBuilder:
    """One run's steps built as its journal grows: `fold` the entries read since the last
    (``last``: the seq of the last one folded), then `steps` as `build` returns them.

    Each step's state is kept until its end is seen; a step that ended is made once and
    handed out again by later `steps` calls until an entry changes it. ``decode=False``:
    as `build_rows` says; ``keep``: journal kinds whose rows `fold` keeps in `kept` as it
    reads them (what a page says besides the steps: `durable.runsteps.RunSteps`). A
    journal whose entries were taken off its end (a repair, `durable.repair`) needs a new
    builder."""

    def __init__(self, decode: bool = True, keep: Collection[str] = ()) -> None:
        self.decode = decode  # False: the fast paths leave payloads `Undecoded`
        self.keep = frozenset(keep)  # kinds whose rows `fold` keeps (`kept`), as read
        self.kept: list[tuple[int, str, float, bytes]] = []
        self.last = 0
        self.steps: dict[int, dict[str, Any]] = {}
        self.made: dict[int, Step] = {}  # steps that ended, as made (shared with their maps)
        self.children: dict[str, int] = {}  # child workflow id -> seq, while unresolved
        self.waits: dict[str, list[int]] = {}  # signal name -> seqs of open waits, FIFO
        self.wait_timers: dict[int, int] = {}  # timer seq -> seq of the wait it times out
        self.updates: dict[str, int] = {}  # update id -> seq, while its handler runs

    def add(self, seq: int, kind: str, rec: journal.Record, time: float, **fields: Any) -> None:
        self.steps[seq] = {
            "seq": seq,
            "kind": kind,
            "branch": getattr(rec, "branch", "0"),
            "group": getattr(rec, "group", None),
            "scheduled_at": dt(time),
            "attempts": [],
            **fields,
        }

    def _writable(self, seq: int) -> dict[str, Any] | None:
        """The state of the step at ``seq`` to change: a copy when it was handed out."""
        step = self.steps.get(seq)
        if step is not None and self.made.pop(seq, None) is not None:
            step = self.steps[seq] = {**step, "attempts": list(step["attempts"])}
        return step

    def fold(self, rows: Iterable[tuple[int, str, float, bytes]]) -> None:
        """Walk ``(seq, kind, time, data)`` rows, in order, after ``last``: the common kinds
        straight from their decoded maps (no record objects), every other one through
        `journal.decode`."""
        with _collector_paused():
            self._fold(rows)

    def _fold(self, rows: Iterable[tuple[int, str, float, bytes]]) -> None:
        # The hot loop of a big run's first view (130,000 entries): locals only, the three
        # common kinds inline, each step's map a copy of its kind's with the entry's fields
        # set. A map without a field its record requires goes to `entry` (`journal.decode`
        # says it is damaged). The entries of one commit share its time: one datetime for
        # all of them (``at``), made when the time changes.
        scheduled, completed, published = _FAST
        unpack, fromts, utc = msgpack.unpackb, datetime.fromtimestamp, UTC
        steps, made, decode = self.steps, self.made, self.decode
        new_activity, new_published = _ACTIVITY.copy, _PUBLISHED.copy
        new, set_dict = object.__new__, object.__setattr__  # no __init__ frames, as `make_step`
        seq, last_t, at = self.last, None, None
        keep, kept = self.keep, self.kept
        if keep & set(_FAST):  # not looked for on the fast paths
            rows = list(rows)
            kept.extend(row for row in rows if row[1] in keep)
            keep = frozenset()
        for seq, kind, t, data in rows:
            if kind != published and kind != scheduled and kind != completed:
                if kind in keep:
                    kept.append((seq, kind, t, data))
                self.entry(seq, t, journal.decode(kind, data))
                continue
            try:
                f = unpack(data, strict_map_key=False)  # raw=False: msgpack's default
            except Exception:
                f = None
            if type(f) is dict:
                if kind == published:
                    try:
                        key, value = f["key"], f["value"]
                    except KeyError:
                        pass
                    else:
                        if t != last_t:
                            last_t, at = t, fromts(t, utc)
                        step = steps[seq] = new_published()
                        step["seq"] = seq
                        step["name"] = key
                        step["branch"] = f.get("branch", "0")
                        step["attempts"] = []
                        step["scheduled_at"] = step["closed_at"] = at
                        if decode:
                            step["input"] = readable_value(value)
                        else:
                            step["input"] = found = new(Undecoded)
                            found.data, found.args = value, False
                        step["logs"] = []
                        continue
                elif kind == scheduled:
                    if "queue" in f and "retry" in f:
                        try:
                            name, args = f["name"], f["args"]
                        except KeyError:
                            pass
                        else:
                            if t != last_t:
                                last_t, at = t, fromts(t, utc)
                            step = steps[seq] = new_activity()
                            step["seq"] = seq
                            if f.get("compensation", False):
                                step["kind"] = "compensation"
                            step["name"] = name
                            step["branch"] = f.get("branch", "0")
                            step["group"] = f.get("group")
                            step["attempts"] = []
                            step["scheduled_at"] = at
                            if decode:
                                step["input"] = args_of(args)
                            else:
                                step["input"] = found = new(Undecoded)
                                found.data, found.args = args, True
                            step["logs"] = []
                            continue
                else:  # as `_end_activity` does from the record
                    try:
                        ref, result = f["ref"], f["result"]
                    except KeyError:
                        pass
                    else:
                        ended = steps.get(ref)
                        if ended is None:
                            continue
                        if made and made.pop(ref, None) is not None:  # handed out: a copy
                            ended = steps[ref] = {**ended, "attempts": list(ended["attempts"])}
                        if t != last_t:
                            last_t, at = t, fromts(t, utc)
                        attempts = ended["attempts"]
                        number = len(attempts) + 1
                        attempt = f.get("attempt")
                        if attempt and attempt > number:
                            number = attempt
                        started = f.get("started_at")
                        if started is not None:
                            started = fromts(started, utc)
                        done = new(Attempt)  # without its __init__: 30,000 of them
                        set_dict(done, "__dict__", {
                            "number": number, "started_at": started, "closed_at": at,
                            "worker": f.get("worker"), "error": None, "heartbeat": None,
                        })  # fmt: skip
                        attempts.append(done)
                        ended["status"] = "completed"
                        if decode:
                            ended["output"] = readable_value(result)
                        else:
                            ended["output"] = found = new(Undecoded)
                            found.data, found.args = result, False
                        ended["error"] = None
                        ended["closed_at"] = at
                        continue
            self.entry(seq, t, journal.decode(kind, data))
        self.last = seq

    def entry(self, seq: int, t: float, rec: journal.Record | journal.Damaged) -> None:
        if isinstance(rec, journal.Damaged):
            self.steps[seq] = {
                "seq": seq,
                "kind": "damaged",
                "name": rec.kind,
                "branch": "0",
                "group": None,
                "status": "failed",
                "scheduled_at": dt(t),
                "attempts": [],
                "error": RemoteError("DamagedEntry", f"journal entry {seq}: {rec.problem}"),
            }
            return
        if isinstance(rec, journal.ActivityScheduled):
            kind = "compensation" if rec.compensation else "activity"
            self.add(seq, kind, rec, t, name=rec.name, status="scheduled", input=args_of(rec.args))
        elif isinstance(rec, journal.ActivityRetrying):
            step = self._writable(rec.ref)
            if step is not None:
                step["attempts"].append(
                    Attempt(rec.attempt, dt(rec.started_at), dt(t), rec.worker, rec.error)
                )
                step["status"] = "retrying"
                step["error"] = rec.error
        elif isinstance(rec, journal.ActivityCompleted | journal.ActivityFailed):
            self._end_activity(rec, t)
        elif isinstance(rec, journal.ChildStarted):
            self.add(
                seq,
                "child",
                rec,
                t,
                name=rec.name,
                status="waiting",
                input=args_of(rec.args),
                child_id=rec.id,
                started_at=dt(t),
            )
            self.children[rec.id] = seq
        elif isinstance(rec, journal.ChildCompleted | journal.ChildFailed):
            ref = self.children.pop(rec.workflow_id, None)
            step = self._writable(ref) if ref is not None else None
            if step is not None:
                step["closed_at"] = dt(t)
                if isinstance(rec, journal.ChildCompleted):
                    step.update(status="completed", output=readable_value(rec.result))
                else:
                    status = "cancelled" if rec.status in ("cancelled", "terminated") else "failed"
                    step.update(status=status, error=rec.error)
        elif isinstance(rec, journal.TimerStarted):
            wait = self._wait_timed_by(seq, rec)
            if wait is not None:
                self.wait_timers[seq] = wait
            elif rec.wait == "condition":  # durable.wait_condition's timeout: the wait
                due = dt(rec.due)
                self.add(seq, "condition", rec, t, name="condition", status="waiting", input=due)
            else:
                self.add(seq, "timer", rec, t, name="timer", status="waiting", input=dt(rec.due))
        elif isinstance(rec, journal.TimerFired):
            self._timer_fired(rec.ref, t)
        elif isinstance(rec, journal.SignalWaitStarted):
            self.add(seq, "signal", rec, t, name=rec.name, status="waiting", input=dt(rec.due))
            self.waits.setdefault(rec.name, []).append(seq)
        elif isinstance(rec, journal.SignalReceived):
            open_waits = self.waits.get(rec.name)
            if open_waits:
                step = self._own(open_waits.pop(0))
                step.update(status="completed", output=readable_value(rec.value), closed_at=dt(t))
        elif isinstance(rec, journal.ExternalStarted):
            self.add(seq, "external", rec, t, name=rec.name, status="waiting")
        elif isinstance(rec, journal.ExternalCompleted | journal.ExternalFailed):
            step = self._writable(rec.ref)
            if step is not None and step["kind"] == "external":
                if isinstance(rec, journal.ExternalCompleted):
                    step.update(status="completed", output=readable_value(rec.result))
                else:
                    step.update(status="failed", error=rec.error)
                step["closed_at"] = dt(t)
        elif isinstance(rec, journal.UpdateAccepted):
            args = args_of(rec.args)
            self.add(seq, "update", rec, t, name=rec.name, status="running", input=args)
            self.updates[rec.id] = seq
        elif isinstance(rec, journal.UpdateCompleted):
            ref = self.updates.pop(rec.id, None)
            step = self._writable(ref) if ref is not None else None
            if step is not None:
                step["closed_at"] = dt(t)
                if rec.failure is None:
                    step.update(status="completed", output=readable_value(rec.result))
                else:
                    step.update(status="failed", error=RemoteError.from_dict(rec.failure))
        elif isinstance(rec, journal.Published):
            self.add(
                seq,
                "publish",
                rec,
                t,
                name=rec.key,
                status="completed",
                input=readable_value(rec.value),
                closed_at=dt(t),
            )
        elif isinstance(rec, journal.Marker):
            self.add(seq, "marker", rec, t, name=rec.patch, status="completed", closed_at=dt(t))
        elif isinstance(rec, journal.TagsSet):
            done = {"status": "completed", "closed_at": dt(t), "input": dict(rec.tags)}
            self.add(seq, "tags", rec, t, name=", ".join(rec.tags), **done)

    def _wait_timed_by(self, seq: int, rec: journal.TimerStarted) -> int | None:
        """The signal wait this timer is the timeout of: issued right after it, by the same
        branch, due when the wait's timeout is."""
        wait = self.steps.get(seq - 1)
        if (
            wait is not None
            and wait["kind"] == "signal"
            and wait["branch"] == rec.branch
            and wait["input"] is not None
            and wait["input"] == dt(rec.due)
        ):
            return seq - 1
        return None

    def _end_activity(
        self, rec: journal.ActivityCompleted | journal.ActivityFailed, t: float
    ) -> None:
        step = self._writable(rec.ref)
        if step is None:
            return
        number = len(step["attempts"]) + 1
        if isinstance(rec, journal.ActivityCompleted):
            number = max(number, rec.attempt or 0)
            step["attempts"].append(Attempt(number, dt(rec.started_at), dt(t), rec.worker, None))
            step.update(status="completed", output=readable_value(rec.result), error=None)
        else:
            number = max(number, rec.attempts)
            cancelled = rec.error.type == "CancelledError"
            step["attempts"].append(
                Attempt(number, dt(rec.started_at), dt(t), rec.worker, rec.error)
            )
            step.update(status="cancelled" if cancelled else "failed", error=rec.error)
        step["closed_at"] = dt(t)

    def _timer_fired(self, ref: int, t: float) -> None:
        wait = self.wait_timers.pop(ref, None)
        if wait is not None:
            step = self._own(wait)
            if step["status"] == "waiting":
                error = RemoteError("TimeoutError", f"no signal {step['name']!r} in time")
                step.update(status="failed", error=error, closed_at=dt(t))
                for seqs in self.waits.values():
                    if wait in seqs:
                        seqs.remove(wait)
            return
        timer = self._writable(ref)
        if timer is not None and timer["kind"] == "timer":
            timer.update(status="completed", closed_at=dt(t))
        elif timer is not None and timer["kind"] == "condition":
            error = RemoteError("TimeoutError", "the condition did not hold in time")
            timer.update(status="failed", error=error, closed_at=dt(t))

    def _own(self, seq: int) -> dict[str, Any]:
        step = self._writable(seq)
        assert step is not None  # a seq the builder keeps
        return step

    def finish(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord] = (),
        timers: Mapping[int, float] | None = None,
    ) -> list[Step]:
        """The steps so far, in journal order, with the store's view of what is in flight
        (the run's tasks and timers: `durable.store.RunExtras`), and what can no longer end
        closed when the run is."""
        with _collector_paused():
            return self._finish(run, {t.seq: t for t in tasks}, timers or {})

    def _finish(
        self, run: RunRecord, tasks: Mapping[int, TaskRecord], timers: Mapping[int, float]
    ) -> list[Step]:
        closed = run.status in CLOSED_STATUSES
        completed = run.status in ("completed", "continued_as_new")
        out = []
        made = self.made
        steps = self.steps
        order = sorted(steps)  # added in journal order when the rows came in order
        again = bool(made)  # else none is made yet (a first build): no looking
        new, set_dict, whole = object.__new__, object.__setattr__, len(_ACTIVITY)
        for seq, step in steps.items() if order == list(steps) else _each(steps, order):
            if again:
                found = made.get(seq)
                if found is not None:
                    out.append(found)
                    continue
            status = step["status"]
            if status in _ENDED:  # nothing below changes it: made once, kept
                if len(step) == whole:  # `make_step`, inline: 100,000 of them
                    found = new(Step)
                    set_dict(found, "__dict__", step)
                else:
                    found = make_step(step)
                made[seq] = found
                out.append(found)
                continue
            step = {**step, "attempts": list(step["attempts"])}  # the state stays as read
            if step["kind"] in ACTIVITY_KINDS and status in ("scheduled", "retrying"):
                self._in_flight(step, tasks.get(seq))
            elif step["kind"] == "timer" and status == "waiting" and seq not in timers:
                status = "cancelled"  # the code gave up on it (its row was deleted)
                step["status"] = status
            elif step["kind"] == "condition" and status == "waiting" and seq not in timers:
                # Its timeout was called off: the condition held (a run that closed other
                # than by completing may have been cancelled while it waited).
                if not closed or completed:
                    step["status"] = "completed"
            if closed and step["status"] in ("scheduled", "running", "retrying", "waiting"):
                step["status"] = "cancelled"
            out.append(make_step(step))
        return out

    def _in_flight(self, step: dict[str, Any], task: TaskRecord | None) -> None:
        if task is None:
            return
        if task.status == "running":
            heartbeat = readable_value(task.heartbeat_details)
            step["attempts"].append(
                Attempt(task.attempt, None, None, task.lease_owner, None, heartbeat)
            )
            step["status"] = "running"
        elif task.attempt > 1 or step["attempts"]:
            step["status"] = "retrying"
        if task.cancel_requested:
            step["status"] = "cancelled"  # the code gave up on it; an attempt may still run
        if task.last_error is not None and step.get("error") is None:
            step["error"] = RemoteError.from_dict(payload.decode(task.last_error))


def _each(steps: dict[int, dict[str, Any]], order: list[int]) -> Iterator[tuple[int, Any]]:
    for seq in order:
        yield seq, steps[seq]


def build(
    run: RunRecord,
    entries: Iterable[JournalEntry],
    tasks: Sequence[TaskRecord] = (),
    timers: Mapping[int, float] | None = None,
) -> list[Step]:
    """The run's steps in journal order, from its entries and the store's tasks and
    timers (`durable.store.RunExtras`)."""
    return build_rows(run, ((e.seq, e.kind, e.time, e.data) for e in entries), tasks, timers)


def build_rows(
    run: RunRecord,
    rows: Iterable[tuple[int, str, float, bytes]],
    tasks: Sequence[TaskRecord] = (),
    timers: Mapping[int, float] | None = None,
    *,
    decode: bool = True,
) -> list[Step]:
    """`build` from the journal's ``(seq, kind, time, data)`` rows
    (`durable.store.Store.read_journal_rows`): the same steps, without a `JournalEntry`
    made per entry. ``decode=False`` leaves the arguments and results of activities and
    published values `Undecoded` (`value`, `decoded`): for a page that shows few of a big
    run's values."""
    builder = StepBuilder(decode=decode)
    builder.fold(rows)
    return builder.finish(run, tasks, timers)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection meanwhile: a build makes objects by the hundred
    thousand and frees none (none of them is garbage), so the collections its allocations
    would set off find nothing and cost a fifth to a third of the build.

    Then what a big build made (`_PROMOTED` young objects or more) goes straight to the
    oldest generation, where a young collection would have put it after walking all of it
    (70 ms for a run of 100,000 steps): `gc.freeze` moves every tracked object to the
    permanent generation (and counts no young allocations), `gc.unfreeze` moves them all to
    the oldest, neither walking them. Garbage cycles that were young then wait for the next
    full collection: so small builds (a page of a small run, a live run's new entries) get
    the young collection as before, and so does a process that froze objects of its own
    (`gc.get_freeze_count`: they stay frozen)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] >= _PROMOTED and not gc.get_freeze_count():
            gc.freeze()
            gc.unfreeze()
        gc.enable()


_PROMOTED = 50_000  # young objects past which a build's go to the oldest generation at once


_ENDED = frozenset({"completed", "failed", "cancelled"})
# The kinds a big run is mostly made of, which `StepBuilder` reads straight from their maps,
# and the maps of the steps they begin (every field of `Step`, in order, see `_finish`).
_FAST = (Kind.ACTIVITY_SCHEDULED.value, Kind.ACTIVITY_COMPLETED.value, Kind.PUBLISHED.value)


def _template(**values: Any) -> dict[str, Any]:
    """A step's map with every field of `Step`, in order, ``None`` but ``values``: a real
    step's ``__dict__``, so that its copies share their keys with every `Step` (CPython's
    split dicts: a third of the memory of a map of their own, 100,000 of them in a big
    run)."""
    blank: dict[str, Any] = dict.fromkeys(f.name for f in fields(Step))
    real: dict[str, Any] = {**blank, "attempts": [], "logs": []}
    shared: dict[str, Any] = Step(**real).__dict__
    shared.update(blank, **values)  # only keys it has: it stays split
    return shared


_ACTIVITY = _template(kind="activity", branch="0", status="scheduled")
_PUBLISHED = _template(kind="publish", branch="0", status="completed")


def pending(steps: Iterable[Step]) -> list[PendingStep]:
    """The steps still in flight, as `describe().pending` lists them."""
    out = []
    for step in steps:
        if step.status not in ("scheduled", "running", "retrying", "waiting"):
            continue
        scheduled = step.scheduled_at or datetime.fromtimestamp(0, UTC)
        if step.kind in ACTIVITY_KINDS:
            last = next((a.error for a in reversed(step.attempts) if a.error), step.error)
            number = max([a.number for a in step.attempts] + [1])
            if step.status == "retrying":
                number += 1
            out.append(PendingStep(step.kind, step.name, number, scheduled, last))
        elif step.kind in ("timer", "condition"):
            due = _when(step.input)
            out.append(PendingStep(step.kind, f"until {due}", 1, scheduled, None))
        elif step.kind == "child":
            out.append(PendingStep("child", f"{step.name} ({step.child_id})", 1, scheduled, None))
        elif step.kind == "signal":
            until = f" until {_when(step.input)}" if isinstance(step.input, datetime) else ""
            out.append(PendingStep("signal", f"{step.name}{until}", 1, scheduled, None))
        elif step.kind in ("external", "update"):
            out.append(PendingStep(step.kind, step.name, 1, scheduled, None))
    return out


def _when(value: Any) -> str:
    """A due time as pending steps name it: ISO 8601 to the second, in UTC."""
    return value.isoformat(timespec="seconds") if isinstance(value, datetime) else "?"


def problem(
    run: RunRecord, workers: Sequence[WorkerRecord], tasks: Sequence[TaskRecord] = ()
) -> str | None:
    """Why the run cannot progress right now, or `None`: parked (non-determinism, a step
    that cannot be committed), a journal past the warning length, no live worker serving
    its queue and name, or an activity task (of ``tasks``, the run's) waiting on a queue no
    live worker takes it from — neither a Python worker with that activity nor a remote
    worker polling the queue (listed by `durable.tasks` while it polls)."""
    if run.parked:
        return run.problem
    if run.status in CLOSED_STATUSES:
        return None
    if run.history_length > HISTORY_WARN:
        return (
            f"Its journal has {run.history_length} entries (warning threshold "
            f"{HISTORY_WARN}); use durable.continue_as_new() to start afresh."
        )
    if run.ready and run.lease_owner is None:
        found = _unserved_run(run, workers)
        if found is not None:
            return found
    for task in tasks:
        if task.status == "queued" and not task.cancel_requested:
            found = _unserved_task(task, workers)
            if found is not None:
                return found
    return None


def _unserved_run(run: RunRecord, workers: Sequence[WorkerRecord]) -> str | None:
    if any(run.queue in w.queues and run.name in w.workflows for w in workers):
        return None
    serving_queue = [w for w in workers if run.queue in w.queues]
    if serving_queue:
        names = sorted({n for w in serving_queue for n in w.workflows})
        return (
            f"No live worker registers workflow {run.name!r}: the workers on queue "
            f"{run.queue!r} serve {names}. Deploy a worker that includes it "
            "(durable worker your.module)."
        )
    return (
        f"No live worker serves queue {run.queue!r} for workflow {run.name!r}. Start one: "
        f"durable worker your.module --queue {run.queue}"
    )


def _unserved_task(task: TaskRecord, workers: Sequence[WorkerRecord]) -> str | None:
    # A remote worker that takes any name lists its activities as ("*",).
    if any(
        task.queue in w.queues and (task.name in w.activities or "*" in w.activities)
        for w in workers
    ):
        return None
    return (
        f"No live worker takes activity {task.name!r} (step {task.seq}) from queue "
        f"{task.queue!r}: start a worker that implements it (durable worker your.module "
        f"--queue {task.queue}), or a worker in another language polling that queue "
        "(client.poll_tasks, or the HTTP API)."
    )


def readable(kind: str, data: bytes) -> dict[str, Any]:
    """A journal entry's data for people and tools: payloads decoded (raw bytes where they
    cannot be), errors as `RemoteError`; an unreadable entry as ``{"damaged": why}``."""
    rec = journal.decode(kind, data)
    if isinstance(rec, journal.Damaged):
        return {"damaged": rec.problem}
    out = rec.to_data()
    for key in ("args", "result", "value"):
        if isinstance(out.get(key), bytes):
            out[key] = readable_value(out[key])
    if isinstance(out.get("error"), dict):
        out["error"] = RemoteError.from_dict(out["error"])
    return out
