"""The worker's polling queries: claiming runs and tasks, ending attempts, firing timers.

The functions are synchronous, on a plain `sqlite3.Connection`: `SQLiteStore` runs each
operation whole on its database thread (see `durable_sqlite.transact`). Each claim runs
inside the caller's ``BEGIN IMMEDIATE`` transaction, so "choose, then update" is atomic
across processes: SQLite admits one writer at a time, and the chosen
rows cannot change between the SELECT and the UPDATE. Each claim unions two index range
scans (work that is ready, leases that expired), forced with ``INDEXED BY`` so the plan
does not depend on table statistics (see `durable_sqlite.schema` for the indexes).

`runs_claimable`, `tasks_claimable` and `timers_due` are the read-only checks for an
`aiosqlite.Connection` of one's own (``durable.testing`` looks with them): one hop each.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sqlite3
from collections.abc import Collection, Sequence

import aiosqlite

from durable.store import TOPIC_RUNS, TOPIC_TASKS, TOPIC_TIMERS, ClaimedRun, TaskOutcome, TaskRecord

from . import limits as _limits
from . import transact as _tx
from .schema import INBOX_COLUMNS, RUN_COLUMNS, TASK_COLUMNS, inbox_item, run_record, task_record

__all__ = [
    "Finish",
    "check_runs",
    "check_tasks",
    "check_timers",
    "claim_runs",
    "claim_tasks",
    "finish_task",
    "finish_tasks",
    "fire_timers",
    "runs_claimable",
    "tasks_claimable",
    "timers_due",
]

_FILTERS = (
    "AND queue IN (SELECT value FROM json_each(?)) AND name IN (SELECT value FROM json_each(?))"
)


def _json(values: Collection[str]) -> str:
    return json.dumps(list(values))


# What is claimable, shared by the claims and their read-only checks below. Parameters:
# runs ready: queues, names, now, owner; runs expired: now, queues, names;
# tasks queued: queues, names, now, exclude; tasks expired: now, queues, names, exclude.
_RUNS_READY = (
    "runs INDEXED BY runs_ready "
    f"WHERE ready = 1 AND closed_at IS NULL AND parked = 0 {_FILTERS} "
    "AND (lease_owner IS NULL OR lease_expires_at <= ? OR lease_owner = ?)"
)
_RUNS_EXPIRED = (
    "runs INDEXED BY runs_lease WHERE lease_owner IS NOT NULL AND lease_expires_at <= ? "
    f"AND closed_at IS NULL AND parked = 0 {_FILTERS}"
)


def _tasks_sql(
    queues: Collection[str] | None,
    names: Collection[str] | None,
    expired_only: bool,
    limited: Collection[str] = (),
) -> tuple[str, list[object], str, list[object]]:
    """The claimable tasks, queued and expired: ``(queued, params, expired, params)``, each
    a ``FROM`` clause with its parameters (``queued`` is ``""`` with ``expired_only``).
    ``None`` filters nothing: any queue, any name. Queued tasks of the ``limited`` queues
    are left out (`durable_sqlite.limits` takes those)."""
    where, params = "", list[object]()
    if queues is not None:
        where += " AND queue IN (SELECT value FROM json_each(?))"
        params.append(_json(queues))
    if names is not None:
        where += " AND name IN (SELECT value FROM json_each(?))"
        params.append(_json(names))
    index = "tasks_ready" if queues is not None else "tasks_visible"
    free = ""
    qparams = params
    if limited:
        free = " AND queue NOT IN (SELECT value FROM json_each(?))"
        qparams = [*params, _json(limited)]
    queued = (
        ""
        if expired_only or (queues is not None and not queues)
        else f"tasks INDEXED BY {index} WHERE status = 'queued'{where}{free} "
        "AND visible_at <= ? AND task_id NOT IN (SELECT value FROM json_each(?))"
    )
    expired = (
        "tasks INDEXED BY tasks_lease WHERE status = 'running' AND lease_expires_at <= ?"
        f"{where} AND task_id NOT IN (SELECT value FROM json_each(?))"
    )
    return queued, qparams, expired, params


# Read-only checks, run before taking the write lock: an idle worker polling a busy file
# then costs readers (which WAL never blocks), not writers queueing for the one lock.


def check_runs(
    db: sqlite3.Connection,
    owner: str,
    *,
    queues: Collection[str],
    names: Collection[str],
    now: float,
) -> bool:
    """Whether `claim_runs` would find anything (it may still find nothing: a race)."""
    rows = db.execute(
        f"SELECT EXISTS (SELECT 1 FROM {_RUNS_READY}) OR EXISTS (SELECT 1 FROM {_RUNS_EXPIRED})",
        (_json(queues), _json(names), now, owner, now, _json(queues), _json(names)),
    ).fetchall()
    return bool(next(iter(rows))[0])


def check_tasks(
    db: sqlite3.Connection,
    *,
    queues: Collection[str] | None,
    names: Collection[str] | None,
    now: float,
    exclude: Collection[str],
    expired_only: bool = False,
) -> bool:
    """Whether `claim_tasks` would find anything (it may still find nothing: a race). On a
    queue with limits, only what they let start now counts (so time skipping in
    ``durable.testing`` moves on while a rate limit holds tasks back)."""
    held = {} if expired_only else _limits.in_force(db, queues)
    free = queues if queues is None or not held else [q for q in queues if q not in held]
    queued, qparams, expired, eparams = _tasks_sql(
        free, names, expired_only, held if queues is None else ()
    )
    if held and queues is not None:  # expired leases on every queue asked for
        _, _, expired, eparams = _tasks_sql(queues, names, True)
    sql = f"SELECT EXISTS (SELECT 1 FROM {expired})"
    params: list[object] = [now, *eparams, _json(exclude)]
    if queued:
        sql += f" OR EXISTS (SELECT 1 FROM {queued})"
        params += [*qparams, now, _json(exclude)]
    rows = db.execute(sql, params).fetchall()
    if next(iter(rows))[0]:
        return True
    return any(
        _limits.candidates(db, q, names=names, now=now, limit=1, exclude=exclude, prune=False)
        for q in held.values()
    )


def check_timers(db: sqlite3.Connection, now: float) -> tuple[bool, float | None]:
    """Whether a timer is due by ``now``, and `fire_timers`'s answer if none is."""
    rows = list(
        db.execute(
            "SELECT EXISTS (SELECT 1 FROM timers INDEXED BY timers_due WHERE due_at <= ?)",
            (now,),
        ).fetchall()
    )
    if rows[0][0]:
        return True, None
    return False, _next_due(db, now)


def _next_due(db: sqlite3.Connection, now: float) -> float | None:
    # ... and when the oldest start in a rate limit's window leaves it (durable.limits).
    rows = db.execute(
        "SELECT MIN(due_at) FROM timers UNION ALL "
        "SELECT MIN(visible_at) FROM tasks WHERE status = 'queued' AND visible_at > ? UNION ALL "
        "SELECT MIN(s.at + l.per) FROM queue_starts s JOIN queue_limits l ON l.queue = s.queue "
        "WHERE s.at + l.per > ?",
        (now, now),
    ).fetchall()
    times = [row[0] for row in rows if row[0] is not None]
    return min(times) if times else None


async def runs_claimable(
    db: aiosqlite.Connection,
    owner: str,
    *,
    queues: Collection[str],
    names: Collection[str],
    now: float,
) -> bool:
    """`check_runs` on an aiosqlite connection, in one hop."""
    return await _tx.call(db, lambda c: check_runs(c, owner, queues=queues, names=names, now=now))


async def tasks_claimable(
    db: aiosqlite.Connection,
    *,
    queues: Collection[str] | None,
    names: Collection[str] | None,
    now: float,
    exclude: Collection[str],
) -> bool:
    """`check_tasks` on an aiosqlite connection, in one hop."""
    return await _tx.call(
        db, lambda c: check_tasks(c, queues=queues, names=names, now=now, exclude=exclude)
    )


async def timers_due(db: aiosqlite.Connection, now: float) -> tuple[bool, float | None]:
    """`check_timers` on an aiosqlite connection, in one hop."""
    return await _tx.call(db, lambda c: check_timers(c, now))


def claim_runs(
    db: sqlite3.Connection,
    owner: str,
    *,
    queues: Collection[str],
    names: Collection[str],
    now: float,
    lease_until: float,
    limit: int,
) -> list[ClaimedRun]:
    """`Store.claim_runs` inside an open write transaction."""
    ready = db.execute(
        f"SELECT run_id, created_at FROM {_RUNS_READY} ORDER BY created_at LIMIT ?",
        (_json(queues), _json(names), now, owner, limit),
    ).fetchall()
    expired = db.execute(
        f"SELECT run_id, created_at FROM {_RUNS_EXPIRED} ORDER BY created_at LIMIT ?",
        (now, _json(queues), _json(names), limit),
    ).fetchall()
    chosen = sorted({row[0]: row[1] for row in [*ready, *expired]}.items(), key=lambda kv: kv[1])
    if not chosen:
        return []
    ids = _json([run_id for run_id, _ in chosen[:limit]])
    db.execute(
        "UPDATE runs SET lease_owner = ?, lease_expires_at = ?, ready = 0 "
        "WHERE run_id IN (SELECT value FROM json_each(?))",
        (owner, lease_until, ids),
    )
    rows = db.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id IN (SELECT value FROM json_each(?)) "
        "ORDER BY created_at, rowid",
        (ids,),
    ).fetchall()
    items = db.execute(
        f"SELECT {INBOX_COLUMNS} FROM inbox "
        "WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY id",
        (ids,),
    ).fetchall()
    claimed = [ClaimedRun(run_record(row), []) for row in rows]
    by_id = {c.run.run_id: c for c in claimed}
    for row in items:
        by_id[row[1]].inbox.append(inbox_item(row))
    return claimed


def claim_tasks(
    db: sqlite3.Connection,
    owner: str,
    *,
    queues: Collection[str] | None,
    names: Collection[str] | None,
    now: float,
    lease_until: float,
    limit: int,
    exclude: Collection[str] = (),
    expired_only: bool = False,
) -> list[TaskRecord]:
    """`Store.claim_tasks` inside an open write transaction.

    Each task is returned with its new lease but the status it had before this claim:
    ``"queued"``, or ``"running"`` when its previous worker's lease had expired. Queues
    with limits are served first, within their limits (`durable_sqlite.limits`); the
    rest of ``limit`` goes to the others, by priority, then due time.
    """
    held = {} if expired_only else _limits.in_force(db, queues)
    limited: list[TaskRecord] = []
    for queue_limits in held.values():
        limited += _limits.candidates(
            db, queue_limits, names=names, now=now, limit=limit - len(limited), exclude=exclude
        )
    rest = limit - len(limited)
    free = queues if queues is None or not held else [q for q in queues if q not in held]
    queued_sql, qparams, expired_sql, eparams = _tasks_sql(
        free, names, expired_only or rest <= 0, held if queues is None else ()
    )
    queued = (
        db.execute(
            f"SELECT {TASK_COLUMNS} FROM {queued_sql} ORDER BY priority DESC, visible_at LIMIT ?",
            (*qparams, now, _json(exclude), rest),
        ).fetchall()
        if queued_sql
        else []
    )
    if held and queues is not None:  # expired leases on every queue asked for
        _, _, expired_sql, eparams = _tasks_sql(queues, names, True)
    expired = (
        db.execute(
            f"SELECT {TASK_COLUMNS} FROM {expired_sql} ORDER BY visible_at LIMIT ?",
            (now, *eparams, _json(exclude), rest),
        ).fetchall()
        if rest > 0
        else []
    )
    records = sorted(
        (task_record(row) for row in [*queued, *expired]), key=lambda t: (-t.priority, t.visible_at)
    )
    chosen = limited + records[: max(rest, 0)]
    if not chosen:
        return []
    for queue, n in collections.Counter(t.queue for t in limited).items():
        if held[queue].rate is not None:
            _limits.record_starts(db, queue, n, now)
    db.execute(
        "UPDATE tasks SET status = 'running', lease_owner = ?, lease_expires_at = ? "
        "WHERE task_id IN (SELECT value FROM json_each(?))",
        (owner, lease_until, _json([t.task_id for t in chosen])),
    )
    return [dataclasses.replace(t, lease_owner=owner, lease_expires_at=lease_until) for t in chosen]


def finish_task(
    db: sqlite3.Connection,
    task_id: str,
    owner: str,
    attempt: int,
    outcome: TaskOutcome,
    now: float,
) -> tuple[bool, set[str]]:
    """`Store.finish_task` inside an open write transaction; also returns the topics.

    A retry or release of a task whose run has closed deletes the task instead: nobody
    wants another attempt.
    """
    if outcome.kind not in ("done", "retry", "release"):
        raise ValueError(f"Unknown TaskOutcome kind {outcome.kind!r}")
    rows = list(
        db.execute(
            "SELECT t.run_id, t.lease_owner, t.attempt, "
            "r.run_id IS NOT NULL AND r.closed_at IS NULL, "
            "EXISTS (SELECT 1 FROM queue_limits l WHERE l.queue = t.queue) "
            "FROM tasks t LEFT JOIN runs r ON r.run_id = t.run_id WHERE t.task_id = ?",
            (task_id,),
        ).fetchall()
    )
    if not rows or rows[0][1] != owner or rows[0][2] != attempt:
        return False, set()
    run_id, _, _, run_open, limited = rows[0]
    # An attempt ending on a queue with limits frees room: wake claimers waiting for it.
    topics: set[str] = {TOPIC_TASKS} if limited else set()
    if outcome.kind == "done" or not run_open:
        db.execute("DELETE FROM tasks WHERE task_id = ?", (task_id,))
    elif outcome.kind == "retry":
        db.execute(
            "UPDATE tasks SET status = 'queued', attempt = attempt + 1, visible_at = ?, "
            "last_error = ?, lease_owner = NULL, lease_expires_at = NULL, "
            "heartbeat_details = COALESCE(?, heartbeat_details) WHERE task_id = ?",
            (outcome.visible_at, outcome.last_error, outcome.details, task_id),
        )
        topics.add(TOPIC_TASKS if outcome.visible_at <= now else TOPIC_TIMERS)
    else:
        db.execute(
            "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
            "heartbeat_details = COALESCE(?, heartbeat_details) WHERE task_id = ?",
            (outcome.details, task_id),
        )
        topics.add(TOPIC_TASKS)
    if run_open and outcome.kind != "release":
        default = "activity_retrying" if outcome.kind == "retry" else "activity_completed"
        db.execute(
            "INSERT INTO inbox (run_id, kind, time, data) VALUES (?, ?, ?, ?)",
            (run_id, outcome.item_kind or default, now, outcome.item_data),
        )
        db.execute("UPDATE runs SET ready = 1 WHERE run_id = ?", (run_id,))
        topics.add(TOPIC_RUNS)
    return True, topics


#: `finish_task`'s arguments after the connection: (task_id, owner, attempt, outcome, now).
Finish = tuple[str, str, int, TaskOutcome, float]


def finish_tasks(db: sqlite3.Connection, items: Sequence[Finish]) -> tuple[list[bool], set[str]]:
    """`finish_task` for each of ``items`` in order, in the caller's transaction: whether each
    was accepted, and the topics to notify."""
    done, topics = [], set[str]()
    for task_id, owner, attempt, outcome, now in items:
        ok, more = finish_task(db, task_id, owner, attempt, outcome, now)
        done.append(ok)
        topics |= more
    return done, topics


def fire_timers(db: sqlite3.Connection, now: float, limit: int) -> tuple[float | None, bool]:
    """`Store.fire_timers` inside an open write transaction; also returns whether any fired."""
    due = list(
        db.execute(
            "SELECT run_id, seq, data FROM timers INDEXED BY timers_due WHERE due_at <= ? "
            "ORDER BY due_at LIMIT ?",
            (now, limit),
        ).fetchall()
    )
    if due:
        # A timer of a closed run is deleted at close; the EXISTS is belt and braces.
        db.executemany(
            "INSERT INTO inbox (run_id, kind, time, data) SELECT ?, 'timer_fired', ?, ? "
            "WHERE EXISTS (SELECT 1 FROM runs WHERE run_id = ? AND closed_at IS NULL)",
            [(run_id, now, data, run_id) for run_id, _, data in due],
        )
        db.executemany(
            "DELETE FROM timers WHERE run_id = ? AND seq = ?",
            [(run_id, seq) for run_id, seq, _ in due],
        )
        db.executemany(
            "UPDATE runs SET ready = 1 WHERE run_id = ? AND closed_at IS NULL",
            [(run_id,) for run_id in {row[0] for row in due}],
        )
    return _next_due(db, now), bool(due)
