"""Group commit on SQLite: read what the fences need, apply `durable.plan`, one statement
per kind of write.

`commit_steps` runs inside the caller's ``BEGIN IMMEDIATE`` transaction, which already
holds the database's only write lock: nothing read here can change before the commit.

1. **Read.** One query reads the runs the batch needs (its own, the runs its items name,
   the current runs of its children's and items' workflow ids), one the lease of every
   task it finishes or cancels: a `durable.plan.Snapshot`.
2. **Plan.** `durable.plan.plan` judges the steps and returns the writes of the accepted
   ones (the rules live there, shared with the PostgreSQL backend).
3. **Write.** Each field of the plan is written with one ``executemany``, in the plan's
   order. A batch of a hundred steps thus costs a constant number of statements, not a
   thousand round trips to the database thread.

Also here: `close_runs`, `deliver` and `insert_runs`, which `SQLiteStore` shares.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from durable import frozen
from durable import plan as _plan
from durable.journal import WORKFLOW_ADDRESSED
from durable.plan import Delivery, Plan, RunState, Snapshot
from durable.store import EXTERNAL_OWNER, TOPIC_RUNS, NewRun, Outgoing, StepCommit

from . import updates

__all__ = ["close_runs", "commit_steps", "deliver", "insert_runs", "read_runs", "route_one"]

_ADDRESSED = json.dumps(sorted(WORKFLOW_ADDRESSED))  # inbox kinds that follow a workflow id

_READ_RUNS = """SELECT run_id, workflow_id, status, is_current, lease_owner,
    lease_expires_at, history_length, ready, problem FROM runs
    WHERE run_id IN (SELECT value FROM json_each(?))
    OR (is_current = 1 AND workflow_id IN (SELECT value FROM json_each(?)))"""

_INSERT_RUN = """INSERT INTO runs (run_id, workflow_id, is_current, name, queue,
    status, input, created_at, updated_at, parent_id, parent_run_id, history_length, ready,
    parked, timeout, tags, trace)
    VALUES (?, ?, 1, ?, ?, 'pending', ?, ?, ?, ?, ?, 0, 1, 0, ?, ?, ?)"""

_UPDATE_RUN = """UPDATE runs SET history_length = ?, updated_at = ?, status = ?,
    result = COALESCE(?, result), error = COALESCE(?, error), problem = ?,
    closed_at = CASE WHEN ? THEN ? ELSE closed_at END,
    lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
    lease_expires_at = CASE WHEN ? THEN NULL ELSE lease_expires_at END,
    continued_to = COALESCE(?, continued_to),
    is_current = CASE WHEN ? IS NULL THEN is_current ELSE 0 END,
    ready = CASE WHEN ? THEN 0 ELSE ready END
    WHERE run_id = ?"""
# A step that leaves the run's status, lease, result and currency as they were (most steps
# of a run that goes on): only the columns no index reads, so no index entry is rewritten
# (8 us a row instead of 21 in W2's shape).
_STEP_RUN = "UPDATE runs SET history_length = ?, updated_at = ?, problem = ? WHERE run_id = ?"

_INSERT_TASK = """INSERT OR IGNORE INTO tasks (task_id, run_id, workflow_id, seq, name, queue,
    data, attempt, status, visible_at, lease_owner, lease_expires_at, cancel_requested,
    created_at, key, priority) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)"""


def _json(values: Iterable[str]) -> str:
    return json.dumps(list(values))


def read_runs(
    conn: sqlite3.Connection, run_ids: Iterable[str], workflow_ids: Iterable[str]
) -> dict[str, RunState]:
    """The runs ``run_ids`` and the current runs of ``workflow_ids``, by run id."""
    rows = conn.execute(_READ_RUNS, (_json(run_ids), _json(workflow_ids))).fetchall()
    return {r[0]: _run_state(r) for r in rows}


def _run_state(r: tuple[Any, ...]) -> RunState:
    """A row of `_READ_RUNS` as `RunState(*r)` (one a step of every batch: made by
    `frozen.build`, without nine calls of `object.__setattr__`)."""
    fields = {
        "run_id": r[0],
        "workflow_id": r[1],
        "status": r[2],
        "is_current": bool(r[3]),
        "lease_owner": r[4],
        "lease_expires_at": r[5],
        "history_length": r[6],
        "ready": bool(r[7]),
        "problem": r[8],
    }
    return frozen.build(RunState, fields)


def commit_steps(
    conn: sqlite3.Connection, steps: Sequence[StepCommit], now: float
) -> tuple[list[bool], set[str], dict[str, tuple[str, str, int]]]:
    """Judge and write ``steps`` inside an open write transaction on ``conn``.

    Returns whether each step was accepted, the topics to notify after the commit, and
    the (run, status, journal length) written per workflow id whose run stays current.
    Raises `ValueError` (before writing anything) when a step's entries do not continue
    gaplessly from its ``expected_length``: that is a bug in the caller, not a lost lease.
    """
    needs = _plan.lookups(steps)  # `_plan.plan` checks the entries before anything is written
    runs = read_runs(conn, needs.run_ids, needs.workflow_ids)
    tasks: dict[str, tuple[str | None, int]] = {}
    if needs.task_ids:
        tasks = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT task_id, lease_owner, attempt FROM tasks "
                "WHERE task_id IN (SELECT value FROM json_each(?))",
                (_json(needs.task_ids),),
            ).fetchall()
        }
    p = _plan.plan(steps, Snapshot(runs, tasks), now)
    if not any(p.accepted):
        return p.accepted, p.topics, {}
    _write(conn, p, now, runs)
    written = {
        u.workflow_id: (u.run_id, u.status, u.history_length)
        for u in p.runs
        if u.continued_to is None
    }
    return p.accepted, p.topics, written


def _write(conn: sqlite3.Connection, p: Plan, now: float, runs: Mapping[str, RunState]) -> None:
    """Write ``p`` in the order of its fields (see `durable.plan.Plan`); ``runs``: the
    runs as read before it was planned."""
    full, plain = [], []
    for u in p.runs:
        before = runs.get(u.run_id)
        if (
            before is not None
            and u.status == before.status
            and not (u.closed or u.release)
            and u.result is None
            and u.error is None
            and u.continued_to is None
        ):
            plain.append((u.history_length, now, u.problem, u.run_id))
        else:
            full.append(
                (u.history_length, now, u.status, u.result, u.error, u.problem, u.closed, now,
                 u.release, u.release, u.continued_to, u.continued_to, u.closed, u.run_id)
            )  # fmt: skip
    if full:
        conn.executemany(_UPDATE_RUN, full)
    if plain:
        conn.executemany(_STEP_RUN, plain)
    if p.demoted:
        conn.executemany(
            "UPDATE runs SET is_current = 0 WHERE run_id = ?", [(r,) for r in p.demoted]
        )
    if p.journal:
        conn.executemany(
            "INSERT INTO journal (run_id, seq, kind, time, data) VALUES (?, ?, ?, ?, ?)",
            p.journal,
        )
    if p.consumed:
        conn.executemany("DELETE FROM inbox WHERE id = ?", [(i,) for i in p.consumed])
    if p.new_runs:
        insert_runs(conn, p.new_runs)
    if p.cleared:
        conn.executemany("DELETE FROM published WHERE workflow_id = ?", [(w,) for w in p.cleared])
        conn.executemany("DELETE FROM updates WHERE workflow_id = ?", [(w,) for w in p.cleared])
    if p.moves:
        # Unconsumed items sent to the workflow id follow it; ids (their order) are kept.
        conn.executemany(
            "UPDATE inbox SET run_id = ? WHERE run_id = ? "
            "AND kind IN (SELECT value FROM json_each(?))",
            [(new, old, _ADDRESSED) for old, new in p.moves],
        )
    if p.tasks:
        conn.executemany(
            _INSERT_TASK,
            [
                (t.task_id, t.run_id, t.workflow_id, t.seq, t.name, t.queue, t.data,
                 t.attempt, "queued" if t.lease_owner is None else "running", t.visible_at,
                 t.lease_owner, t.lease_expires_at, now, t.key, t.priority)
                for t in p.tasks
            ],
        )  # fmt: skip
    if p.timers:
        conn.executemany(
            "INSERT OR IGNORE INTO timers (run_id, seq, due_at, data) VALUES (?, ?, ?, ?)",
            p.timers,
        )
    if p.finished:
        conn.executemany("DELETE FROM tasks WHERE task_id = ?", [(t,) for t in p.finished])
    if p.cancelled_tasks:
        conn.executemany(
            "UPDATE tasks SET cancel_requested = 1 WHERE task_id = ?",
            [(t,) for t in p.cancelled_tasks],
        )
    if p.cancelled_timers:
        conn.executemany("DELETE FROM timers WHERE run_id = ? AND seq = ?", p.cancelled_timers)
    if p.closed:
        close_runs(conn, p.closed)
    deliver(conn, p.deliveries)
    if p.published:
        conn.executemany(
            "INSERT INTO published (workflow_id, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value",
            [(wf, key, value) for (wf, key), value in p.published.items()],
        )
    if p.updates:
        conn.executemany(
            updates.UPSERT, [(wf, uid, value, now) for (wf, uid), value in p.updates.items()]
        )
    if p.tags:
        # json_patch merges (a key given takes the new value); a trigger updates run_tags.
        conn.executemany(
            "UPDATE runs SET tags = json_patch(COALESCE(tags, '{}'), ?) WHERE run_id = ?",
            [(json.dumps(tags), run_id) for run_id, tags in p.tags.items()],
        )
    if p.released:
        # Items that arrived after the claim and were not consumed must not be stranded
        # by the lease going back: the run is ready for whoever claims next.
        cursor = conn.executemany(
            "UPDATE runs SET ready = 1 WHERE run_id = ? AND ready = 0 "
            "AND EXISTS (SELECT 1 FROM inbox WHERE inbox.run_id = runs.run_id)",
            [(r,) for r in p.released],
        )
        if cursor.rowcount > 0:
            p.topics.add(TOPIC_RUNS)


def tags_json(tags: Mapping[str, str] | None) -> str | None:
    """How ``runs.tags`` stores tags: a JSON object, keys sorted; NULL for none."""
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":")) if tags else None


def insert_runs(conn: sqlite3.Connection, runs: Sequence[NewRun]) -> None:
    """Insert ``runs`` as current, pending and ready."""
    conn.executemany(
        _INSERT_RUN,
        [
            (r.run_id, r.workflow_id, r.name, r.queue, r.input, r.created_at, r.created_at,
             r.parent_id, r.parent_run_id, r.timeout, tags_json(r.tags), r.trace)
            for r in runs
        ],
    )  # fmt: skip


def close_runs(conn: sqlite3.Connection, run_ids: Sequence[str]) -> None:
    """Clean up after runs that just closed: delete their timers, queued tasks and external
    waits, and ask their running tasks to cancel (their workers see it on the next
    heartbeat)."""
    params = [(run_id,) for run_id in run_ids]
    conn.executemany("DELETE FROM timers WHERE run_id = ?", params)
    conn.executemany(
        "DELETE FROM tasks WHERE run_id = ? AND (status = 'queued' OR lease_owner = ?)",
        [(run_id, EXTERNAL_OWNER) for run_id in run_ids],
    )
    conn.executemany(
        "UPDATE tasks SET cancel_requested = 1 WHERE run_id = ? AND status = 'running'", params
    )


def deliver(conn: sqlite3.Connection, deliveries: Sequence[Delivery]) -> None:
    """Append routed items to their runs' inboxes, in order, and mark those runs ready."""
    if deliveries:
        conn.executemany(
            "INSERT INTO inbox (run_id, kind, time, data) VALUES (?, ?, ?, ?)",
            [(d.run_id, d.kind, d.time, d.data) for d in deliveries],
        )
        conn.executemany(
            "UPDATE runs SET ready = 1 WHERE run_id = ?",
            [(r,) for r in sorted({d.run_id for d in deliveries})],
        )


def route_one(conn: sqlite3.Connection, item: Outgoing, now: float) -> Delivery | None:
    """Where ``item`` goes now (`durable.plan.route`), read inside the caller's transaction."""
    runs = read_runs(conn, [item.run_id] if item.run_id else [], [item.workflow_id])
    named = runs.get(item.run_id) if item.run_id is not None else None
    current = next(
        (r for r in runs.values() if r.is_current and r.workflow_id == item.workflow_id), None
    )
    target = _plan.route(item, named, current)
    return Delivery(target, item.kind, now, item.data) if target is not None else None
