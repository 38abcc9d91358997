"""Group commit: many runs' fenced steps written in one transaction, a statement per kind.

`commit_steps` runs inside the caller's ``BEGIN IMMEDIATE`` transaction, in two phases:

1. **Check.** One query reads the fencing state of every run in the batch, one the lease of
   every task the batch finishes. The steps are then judged in order against that state,
   which is updated in memory as each accepted step would change it (so two steps of one
   run in one batch chain correctly: the second sees the first's history length).
   A rejected step contributes nothing.
2. **Write.** The accepted steps' writes are gathered per kind (journal rows, inbox
   deletes, tasks, timers, ...) and each kind is written with one ``executemany``, in an
   order under which no write depends on a later one: run rows first (so a continued
   run stops being current before its successor is inserted, and a run closing in this
   batch receives no outgoing item), then inserts, then deletes and flags, then closing
   clean-up (after the inserts, so it also covers tasks a closing step created), then
   moves of workflow-addressed items (signals, cancellation) to successors (after the
   consumed items are deleted), then outgoing items, and last the ready flag of runs whose lease was released with inbox items left.

A batch of a hundred steps thus costs a dozen statements, not a thousand round trips to
the database thread. Also here: `close_runs` and `deliver`, which `SQLiteStore.terminate`
shares.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from durable.journal import WORKFLOW_ADDRESSED
from durable.store import (
    CLOSED_STATUSES,
    TOPIC_RUNS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    NewRun,
    Outgoing,
    StepCommit,
    run_topic,
)

__all__ = ["close_runs", "commit_steps", "deliver", "insert_runs"]

# The run an `Outgoing` item reaches: the named run if open, else the workflow's current
# run if open, else none (see `Outgoing`).
_TARGET = """COALESCE(
    (SELECT run_id FROM runs
        WHERE run_id = :run_id AND workflow_id = :workflow_id AND closed_at IS NULL),
    (SELECT run_id FROM runs
        WHERE workflow_id = :workflow_id AND is_current = 1 AND closed_at IS NULL))"""

_DELIVER = f"""INSERT INTO inbox (run_id, kind, time, data)
    SELECT target, :kind, :time, :data FROM (SELECT {_TARGET} AS target)
    WHERE target IS NOT NULL"""
_MARK_TARGET_READY = f"UPDATE runs SET ready = 1 WHERE run_id = {_TARGET}"

_INSERT_RUN = """INSERT {conflict} INTO runs (run_id, workflow_id, is_current, name, queue,
    status, input, created_at, updated_at, parent_id, parent_run_id, history_length, ready,
    parked, timeout)
    VALUES (?, ?, 1, ?, ?, 'pending', ?, ?, ?, ?, ?, 0, 1, 0, ?)"""

_UPDATE_RUN = """UPDATE runs SET history_length = ?, updated_at = ?, status = ?,
    result = COALESCE(?, result), error = COALESCE(?, error), problem = ?,
    closed_at = COALESCE(?, closed_at), lease_owner = ?, lease_expires_at = ?,
    continued_to = COALESCE(?, continued_to),
    is_current = CASE WHEN ? THEN 0 ELSE is_current END,
    ready = CASE WHEN ? THEN 0 ELSE ready END
    WHERE run_id = ?"""

_INSERT_TASK = """INSERT OR IGNORE INTO tasks (task_id, run_id, workflow_id, seq, name, queue,
    data, attempt, status, visible_at, lease_owner, lease_expires_at, cancel_requested,
    created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"""


_ADDRESSED = json.dumps(sorted(WORKFLOW_ADDRESSED))  # inbox kinds that follow a workflow id


def _json(values: Iterable[str]) -> str:
    return json.dumps(list(values))


@dataclass(slots=True)
class _Run:
    """A run's fencing state, as the steps judged so far have left it."""

    workflow_id: str
    status: str
    owner: str | None
    expires: float | None
    length: int


@dataclass(slots=True)
class _Writes:
    """The accepted steps' writes, gathered per statement."""

    runs: list[tuple[Any, ...]] = field(default_factory=list)
    journal: list[tuple[Any, ...]] = field(default_factory=list)
    consumed: list[tuple[int]] = field(default_factory=list)
    successors: list[NewRun] = field(default_factory=list)
    children: list[NewRun] = field(default_factory=list)
    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    timers: list[tuple[Any, ...]] = field(default_factory=list)
    finished: list[tuple[str]] = field(default_factory=list)
    cancelled_timers: list[tuple[str, int]] = field(default_factory=list)
    cancelled_tasks: list[tuple[str]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)  # (successor, old run)
    outgoing: list[tuple[Outgoing, float]] = field(default_factory=list)
    published: list[tuple[str, str, bytes]] = field(default_factory=list)
    released: list[tuple[str]] = field(default_factory=list)  # leases handed back, still open
    topics: set[str] = field(default_factory=set)


def _check_entries(step: StepCommit) -> None:
    for i, entry in enumerate(step.entries):
        if entry.seq != step.expected_length + 1 + i:
            raise ValueError(
                f"Step of run {step.run_id!r}: entry {i} has seq {entry.seq}, expected "
                f"{step.expected_length + 1 + i} (seqs continue from expected_length "
                f"{step.expected_length}, gapless)."
            )


def _accept(step: StepCommit, run: _Run, now: float, out: _Writes) -> None:
    """Record the writes of an accepted step and advance the run's in-memory state."""
    old_status = run.status
    run.length = step.expected_length + len(step.entries)
    if step.status is not None:
        run.status = step.status
    closing = run.status in CLOSED_STATUSES
    if closing or step.release_lease:
        run.owner = run.expires = None
    continued = closing and run.status == "continued_as_new" and step.successor is not None
    out.runs.append(
        (
            run.length,
            now,
            run.status,
            step.result,
            step.error,
            step.problem,
            now if closing else None,
            run.owner,
            run.expires,
            step.successor.run_id if continued and step.successor is not None else None,
            continued,
            closing,
            step.run_id,
        )
    )
    out.journal.extend((step.run_id, e.seq, e.kind, e.time, e.data) for e in step.entries)
    out.consumed.extend((item_id,) for item_id in step.consumed_inbox)
    for task in step.new_tasks:
        leased = task.lease_owner is not None
        out.tasks.append(
            (
                task.task_id,
                task.run_id,
                task.workflow_id,
                task.seq,
                task.name,
                task.queue,
                task.data,
                task.attempt,
                "running" if leased else "queued",
                task.visible_at,
                task.lease_owner,
                task.lease_expires_at,
                now,
            )
        )
        if not leased:
            out.topics.add(TOPIC_TASKS if task.visible_at <= now else TOPIC_TIMERS)
    out.timers.extend((t.run_id, t.seq, t.due_at, t.data) for t in step.new_timers)
    if step.new_timers:
        out.topics.add(TOPIC_TIMERS)
    out.finished.extend((task_id,) for task_id in step.finished_tasks)
    out.cancelled_timers.extend((step.run_id, seq) for seq in step.cancelled_timers)
    out.cancelled_tasks.extend((task_id,) for task_id in step.cancelled_tasks)
    for child in step.new_runs:
        out.children.append(child)
        out.topics.update((TOPIC_RUNS, run_topic(child.workflow_id)))
    out.outgoing.extend((item, now) for item in step.outgoing)
    out.published.extend((run.workflow_id, k, v) for k, v in step.published.items())
    if closing:
        out.closed.append(step.run_id)
    elif step.release_lease:
        out.released.append((step.run_id,))
    if continued and step.successor is not None:
        out.successors.append(step.successor)
        out.moves.append((step.successor.run_id, step.run_id))
        out.topics.add(TOPIC_RUNS)
    if closing or run.status != old_status or step.published:
        out.topics.add(run_topic(run.workflow_id))


async def commit_steps(
    conn: aiosqlite.Connection, steps: Sequence[StepCommit], now: float
) -> tuple[list[bool], set[str]]:
    """Judge and write ``steps`` inside an open write transaction on ``conn``.

    Returns whether each step was accepted and the topics to notify after the commit.
    Raises `ValueError` (before writing anything) when a step's entries do not continue
    gaplessly from its ``expected_length``: that is a bug in the caller, not a lost lease.
    """
    for step in steps:
        _check_entries(step)
    run_ids = {step.run_id for step in steps}
    runs = {
        row[0]: _Run(row[1], row[2], row[3], row[4], row[5])
        for row in await conn.execute_fetchall(
            "SELECT run_id, workflow_id, status, lease_owner, lease_expires_at, history_length "
            "FROM runs WHERE run_id IN (SELECT value FROM json_each(?))",
            (_json(run_ids),),
        )
    }
    task_ids = {task_id for step in steps for task_id in step.finished_tasks}
    task_lease: dict[str, tuple[str | None, int]] = {}
    if task_ids:
        task_lease = {
            row[0]: (row[1], row[2])
            for row in await conn.execute_fetchall(
                "SELECT task_id, lease_owner, attempt FROM tasks "
                "WHERE task_id IN (SELECT value FROM json_each(?))",
                (_json(task_ids),),
            )
        }
    out = _Writes()
    accepted: list[bool] = []
    for step in steps:
        run = runs.get(step.run_id)
        ok = (
            run is not None
            and run.owner == step.owner
            and run.expires is not None
            and run.expires > now
            and run.length == step.expected_length
            and run.status not in CLOSED_STATUSES
            and all(
                task_lease.get(t) == (step.owner, attempt)
                for t, attempt in step.finished_tasks.items()
            )
        )
        accepted.append(ok)
        if ok and run is not None:
            _accept(step, run, now, out)
            for task_id in step.finished_tasks:
                task_lease.pop(task_id, None)
            for task in step.new_tasks:
                task_lease[task.task_id] = (task.lease_owner, task.attempt)
    if any(accepted):
        await _write(conn, out, now)
    return accepted, out.topics


async def _write(conn: aiosqlite.Connection, out: _Writes, now: float) -> None:
    if out.runs:
        await conn.executemany(_UPDATE_RUN, out.runs)
    if out.journal:
        await conn.executemany(
            "INSERT INTO journal (run_id, seq, kind, time, data) VALUES (?, ?, ?, ?, ?)",
            out.journal,
        )
    if out.consumed:
        await conn.executemany("DELETE FROM inbox WHERE id = ?", out.consumed)
    if out.successors:
        await insert_runs(conn, out.successors, or_ignore=False)
    if out.children:
        # A child whose workflow id already has a current run is left alone.
        await insert_runs(conn, out.children, or_ignore=True)
    if out.tasks:
        await conn.executemany(_INSERT_TASK, out.tasks)
    if out.timers:
        await conn.executemany(
            "INSERT OR IGNORE INTO timers (run_id, seq, due_at, data) VALUES (?, ?, ?, ?)",
            out.timers,
        )
    if out.finished:
        await conn.executemany("DELETE FROM tasks WHERE task_id = ?", out.finished)
    if out.cancelled_timers:
        await conn.executemany(
            "DELETE FROM timers WHERE run_id = ? AND seq = ?", out.cancelled_timers
        )
    if out.cancelled_tasks:
        await conn.executemany(
            "UPDATE tasks SET cancel_requested = 1 WHERE task_id = ?", out.cancelled_tasks
        )
    if out.closed:
        await close_runs(conn, out.closed)
    if out.moves:
        # Unconsumed items sent to the workflow id follow it; ids (their order) are kept.
        await conn.executemany(
            "UPDATE inbox SET run_id = ? WHERE run_id = ? "
            "AND kind IN (SELECT value FROM json_each(?))",
            [(new, old, _ADDRESSED) for new, old in out.moves],
        )
    if out.outgoing and await deliver(conn, out.outgoing):
        out.topics.add(TOPIC_RUNS)
    if out.published:
        await conn.executemany(
            "INSERT INTO published (workflow_id, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value",
            out.published,
        )
    if out.released:
        # Items that arrived after the claim and were not consumed must not be stranded
        # by the lease going back: the run is ready for whoever claims next.
        cursor = await conn.executemany(
            "UPDATE runs SET ready = 1 WHERE run_id = ? AND ready = 0 "
            "AND EXISTS (SELECT 1 FROM inbox WHERE inbox.run_id = runs.run_id)",
            out.released,
        )
        if cursor.rowcount > 0:
            out.topics.add(TOPIC_RUNS)


async def insert_runs(
    conn: aiosqlite.Connection, runs: Sequence[NewRun], *, or_ignore: bool
) -> int:
    """Insert ``runs`` as current, pending and ready; returns how many were inserted."""
    cursor = await conn.executemany(
        _INSERT_RUN.format(conflict="OR IGNORE" if or_ignore else ""),
        [
            (
                r.run_id,
                r.workflow_id,
                r.name,
                r.queue,
                r.input,
                r.created_at,
                r.created_at,
                r.parent_id,
                r.parent_run_id,
                r.timeout,
            )
            for r in runs
        ],
    )
    return cursor.rowcount


async def close_runs(conn: aiosqlite.Connection, run_ids: Sequence[str]) -> None:
    """Clean up after runs that just closed: delete their timers and queued tasks, and ask
    their running tasks to cancel (their workers see it on the next heartbeat)."""
    params = [(run_id,) for run_id in run_ids]
    await conn.executemany("DELETE FROM timers WHERE run_id = ?", params)
    await conn.executemany("DELETE FROM tasks WHERE run_id = ? AND status = 'queued'", params)
    await conn.executemany(
        "UPDATE tasks SET cancel_requested = 1 WHERE run_id = ? AND status = 'running'", params
    )


async def deliver(conn: aiosqlite.Connection, items: Sequence[tuple[Outgoing, float]]) -> int:
    """Append each `Outgoing` item (with its time) to its target's inbox and mark the target
    ready; returns how many were delivered (the rest had no open target)."""
    params = [
        {
            "run_id": item.run_id,
            "workflow_id": item.workflow_id,
            "kind": item.kind,
            "time": time,
            "data": item.data,
        }
        for item, time in items
    ]
    cursor = await conn.executemany(_DELIVER, params)
    delivered = cursor.rowcount
    if delivered > 0:
        await conn.executemany(_MARK_TARGET_READY, params)  # extra keys are ignored
    return delivered
