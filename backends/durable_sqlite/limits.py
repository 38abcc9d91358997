"""Queue limits on SQLite (`durable.limits`): reading and writing them, and the part of a
task claim that takes tasks of a limited queue.

Synchronous functions on a plain `sqlite3.Connection`, run inside the caller's ``BEGIN
IMMEDIATE`` transaction (see `durable_sqlite.claims`): SQLite admits one writer at a time,
so what a claim counts (running tasks, recent starts) cannot change before it commits.

Running tasks are counted through ``tasks_lease`` with ``lease_expires_at`` below
`_ENDLESS`, which leaves out external waits (leased for ever); a lease that expired still
counts until the sweep or a claimer takes it over. The rate's window is ``queue_starts``:
one row per claim that started tasks of the queue (``n`` of them), pruned to the last
``per`` seconds by each claim.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence
from datetime import timedelta

from durable.admission import admit, claim_budget, full_keys
from durable.limits import QueueLimits
from durable.store import EXTERNAL_OWNER, TaskRecord

from .schema import TASK_COLUMNS, task_record

__all__ = ["candidates", "in_force", "read_limits", "record_starts", "write_limits"]

_ENDLESS = 1e300  # below the lease of an external wait (infinity), above any real lease
_COLUMNS = "queue, concurrency, key_concurrency, rate, per"


def _limits(row: Sequence[object]) -> QueueLimits:
    queue, concurrency, key_concurrency, rate, per = row
    return QueueLimits(
        str(queue),
        concurrency=concurrency,  # type: ignore[arg-type]
        key_concurrency=key_concurrency,  # type: ignore[arg-type]
        rate=rate,  # type: ignore[arg-type]
        per=None if per is None else timedelta(seconds=float(per)),  # type: ignore[arg-type]
    )


def write_limits(db: sqlite3.Connection, limits: QueueLimits, now: float) -> None:
    """`Store.set_queue_limits` inside an open write transaction."""
    if limits.rate is None:  # no window to keep
        db.execute("DELETE FROM queue_starts WHERE queue = ?", (limits.queue,))
    if limits.empty:
        db.execute("DELETE FROM queue_limits WHERE queue = ?", (limits.queue,))
        return
    db.execute(
        f"INSERT INTO queue_limits ({_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (queue) DO UPDATE SET concurrency = excluded.concurrency, "
        "key_concurrency = excluded.key_concurrency, rate = excluded.rate, "
        "per = excluded.per, updated_at = excluded.updated_at",
        (
            limits.queue,
            limits.concurrency,
            limits.key_concurrency,
            limits.rate,
            limits.per_seconds,
            now,
        ),
    )


def read_limits(db: sqlite3.Connection, queues: Collection[str] | None) -> list[QueueLimits]:
    """The limits of every queue that has any, or of those of ``queues`` that do."""
    if queues is None:
        rows = db.execute(f"SELECT {_COLUMNS} FROM queue_limits ORDER BY queue").fetchall()
    else:
        rows = db.execute(
            f"SELECT {_COLUMNS} FROM queue_limits "
            "WHERE queue IN (SELECT value FROM json_each(?)) ORDER BY queue",
            (json.dumps(list(queues)),),
        ).fetchall()
    return [_limits(row) for row in rows]


def in_force(db: sqlite3.Connection, queues: Collection[str] | None) -> dict[str, QueueLimits]:
    """`read_limits` by queue: what a claim of ``queues`` must obey (usually nothing: then
    one look at an empty table is all it costs)."""
    if not db.execute("SELECT EXISTS (SELECT 1 FROM queue_limits)").fetchall()[0][0]:
        return {}
    return {limits.queue: limits for limits in read_limits(db, queues)}


def candidates(
    db: sqlite3.Connection,
    limits: QueueLimits,
    *,
    names: Collection[str] | None,
    now: float,
    limit: int,
    exclude: Collection[str],
    prune: bool = True,
) -> list[TaskRecord]:
    """The queued tasks of ``limits.queue`` a claim may start at ``now`` (at most
    ``limit``): by priority, then due time, within what the limits leave. ``prune``:
    delete the starts that left the rate's window (``False`` in a read-only look)."""
    queue = limits.queue
    running: dict[str | None, int] = {}
    started: int | None = None  # tasks started in the rate's window, if it has a rate
    if limits.concurrency is not None or limits.key_concurrency is not None:
        for key, count in db.execute(
            "SELECT key, COUNT(*) FROM tasks INDEXED BY tasks_lease WHERE status = 'running' "
            "AND lease_expires_at < ? AND queue = ? AND lease_owner <> ? GROUP BY key",
            (_ENDLESS, queue, EXTERNAL_OWNER),
        ).fetchall():
            running[key] = count
    if limits.rate is not None and limits.per_seconds is not None:
        since = now - limits.per_seconds
        if prune:
            db.execute("DELETE FROM queue_starts WHERE queue = ? AND at <= ?", (queue, since))
        started = int(
            db.execute(
                "SELECT COALESCE(SUM(n), 0) FROM queue_starts WHERE queue = ? AND at > ?",
                (queue, since),
            ).fetchall()[0][0]
        )
    budget = claim_budget(limits, limit, running, started)
    if budget <= 0:
        return []
    per_key = limits.key_concurrency
    full = full_keys(limits, running)
    taken: list[TaskRecord] = []
    skip = list(exclude)
    while len(taken) < budget:
        where = ""
        params: list[object] = [queue, now, json.dumps(skip), json.dumps(sorted(full))]
        if names is not None:
            where = " AND name IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(names)))
        want = budget - len(taken)
        rows = db.execute(
            f"SELECT {TASK_COLUMNS} FROM tasks INDEXED BY tasks_ready "
            "WHERE status = 'queued' AND queue = ? AND visible_at <= ? "
            "AND task_id NOT IN (SELECT value FROM json_each(?)) "
            f"AND (key IS NULL OR key NOT IN (SELECT value FROM json_each(?))){where} "
            "ORDER BY priority DESC, visible_at LIMIT ?",
            (*params, want),
        ).fetchall()
        tasks = [task_record(row) for row in rows]
        passed_over = admit(tasks, budget, per_key, running, full, taken, skip)
        # Fewer rows than asked: the queue has no more. Otherwise, if a key filled up on
        # the way, look again without it.
        if len(rows) < want or not passed_over:
            break
    return taken


def record_starts(db: sqlite3.Connection, queue: str, n: int, now: float) -> None:
    """Count ``n`` tasks of ``queue`` started at ``now`` in its rate's window."""
    db.execute("INSERT INTO queue_starts (queue, at, n) VALUES (?, ?, ?)", (queue, now, n))
