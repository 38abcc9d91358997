"""Repair on SQLite: apply a `durable.repair.Reopen` (retry) or `durable.repair.Fork`.

The rules (what is cut, which rows come back) are `durable.repair`'s; these functions run
inside the caller's ``BEGIN IMMEDIATE`` transaction, which holds the database's only
write lock, so the fence read here cannot change before the writes.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from durable.errors import WorkflowAlreadyExists
from durable.journal import Kind
from durable.repair import Fork, Reopen
from durable.store import (
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    NewTask,
    run_topic,
    steps_topic,
)

from . import steps as _steps

__all__ = ["fork_run", "reopen_run"]

_INSERT_TASK = """INSERT INTO tasks (task_id, run_id, workflow_id, seq, name, queue,
    data, attempt, status, visible_at, lease_owner, lease_expires_at, cancel_requested,
    created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)"""


def _insert_tasks(db: sqlite3.Connection, tasks: list[NewTask], now: float) -> None:
    db.executemany(
        _INSERT_TASK,
        [
            (t.task_id, t.run_id, t.workflow_id, t.seq, t.name, t.queue, t.data, t.attempt,
             "queued" if t.lease_owner is None else "running", t.visible_at, t.lease_owner,
             t.lease_expires_at, now)
            for t in tasks
        ],
    )  # fmt: skip


def reopen_run(db: sqlite3.Connection, reopen: Reopen, now: float) -> set[str] | None:
    """Apply ``reopen`` (see `durable.store.Store.reopen_run`); the topics to notify, or
    ``None`` when the fence failed and nothing was written."""
    row = db.execute(
        "SELECT status, history_length, is_current, parked FROM runs WHERE run_id = ?",
        (reopen.run_id,),
    ).fetchone()
    if row is None or (row[0], row[1], bool(row[2])) != (
        reopen.expected_status,
        reopen.expected_length,
        True,
    ):
        return None
    if reopen.parked and not row[3]:
        return None
    for child, status in reopen.children.items():
        found = db.execute("SELECT status FROM runs WHERE run_id = ?", (child,)).fetchone()
        if found is None or found[0] != status:
            return None  # it answered the closed run meanwhile: the caller plans again
    # Attempts still flagged to cancel when the run closed: the new row's attempt goes
    # past theirs, so their late finish is fenced off.
    old = dict(db.execute("SELECT task_id, attempt FROM tasks WHERE run_id = ?", (reopen.run_id,)))
    tasks = [
        t if t.task_id not in old else replace(t, attempt=max(t.attempt, old[t.task_id] + 1))
        for t in reopen.tasks
    ]
    if not reopen.parked:
        db.execute("DELETE FROM journal WHERE run_id = ? AND seq > ?", (reopen.run_id, reopen.keep))
        db.execute("DELETE FROM tasks WHERE run_id = ?", (reopen.run_id,))
        db.execute("DELETE FROM timers WHERE run_id = ?", (reopen.run_id,))
        db.execute("DELETE FROM inbox WHERE run_id = ?", (reopen.run_id,))
        _insert_tasks(db, tasks, now)
        db.executemany(
            "INSERT INTO timers (run_id, seq, due_at, data) VALUES (?, ?, ?, ?)",
            [(t.run_id, t.seq, t.due_at, t.data) for t in reopen.timers],
        )
    db.execute(
        "INSERT INTO journal (run_id, seq, kind, time, data) VALUES (?, ?, ?, ?, ?)",
        (reopen.run_id, reopen.keep + 1, Kind.RUN_RETRIED.value, now, reopen.note),
    )
    db.executemany(
        "INSERT INTO inbox (run_id, kind, time, data) VALUES (?, ?, ?, ?)",
        [(reopen.run_id, kind, now, data) for kind, data in reopen.inbox],
    )
    db.execute(
        "UPDATE runs SET status = ?, history_length = ?, result = NULL, error = NULL, "
        "closed_at = NULL, updated_at = ?, lease_owner = NULL, lease_expires_at = NULL, "
        "parked = 0, problem = NULL, ready = 1 WHERE run_id = ?",
        (reopen.status, reopen.keep + 1, now, reopen.run_id),
    )
    wid = reopen.workflow_id
    return {TOPIC_RUNS, TOPIC_STATUS, TOPIC_TASKS, TOPIC_TIMERS, run_topic(wid), steps_topic(wid)}


def fork_run(db: sqlite3.Connection, fork: Fork, now: float) -> set[str]:
    """Apply ``fork`` (see `durable.store.Store.fork_run`); the topics to notify."""
    run = fork.run
    taken = db.execute(
        "SELECT run_id, status FROM runs WHERE workflow_id = ? ORDER BY is_current DESC LIMIT 1",
        (run.workflow_id,),
    ).fetchone()
    if taken is not None:
        raise WorkflowAlreadyExists(
            f"Workflow {run.workflow_id!r} already exists (run {taken[0]!r}, {taken[1]})."
        )
    _steps.insert_runs(db, [run])
    db.execute(
        "UPDATE runs SET status = ?, history_length = ? WHERE run_id = ?",
        (fork.status, len(fork.entries), run.run_id),
    )
    db.executemany(
        "INSERT INTO journal (run_id, seq, kind, time, data) VALUES (?, ?, ?, ?, ?)",
        [(run.run_id, e.seq, e.kind, e.time, e.data) for e in fork.entries],
    )
    _insert_tasks(db, fork.tasks, now)
    db.executemany(
        "INSERT INTO timers (run_id, seq, due_at, data) VALUES (?, ?, ?, ?)",
        [(t.run_id, t.seq, t.due_at, t.data) for t in fork.timers],
    )
    db.executemany(
        "INSERT INTO published (workflow_id, key, value) VALUES (?, ?, ?) "
        "ON CONFLICT (workflow_id, key) DO UPDATE SET value = excluded.value",
        [(run.workflow_id, key, value) for key, value in fork.published.items()],
    )
    db.executemany(
        "INSERT INTO inbox (run_id, kind, time, data) VALUES (?, ?, ?, ?)",
        [(run.run_id, kind, now, data) for kind, data in fork.inbox],
    )
    wid = run.workflow_id
    return {TOPIC_RUNS, TOPIC_STATUS, TOPIC_TASKS, TOPIC_TIMERS, run_topic(wid), steps_topic(wid)}
