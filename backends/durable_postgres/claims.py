"""Claims: leasing runs and activity tasks, and firing due timers, across processes.

Every claim is one statement that picks candidates with ``FOR UPDATE SKIP LOCKED`` and
updates them in place: a transaction of its own (``alone``, the common case: no BEGIN and
COMMIT round trips) or inside the caller's (tasks on queues with limits). SKIP LOCKED
means concurrent claimers (any number of workers on any number of machines) never wait for
one another and never get the same row: a row another transaction has locked is passed
over, and a row another transaction changed and committed since this statement's snapshot
is re-checked against the WHERE clause before it is locked (READ COMMITTED's
EvalPlanQual), so a run claimed a moment ago, no longer ready, is not claimed again.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from durable.limits import QueueLimits
from durable.store import ClaimedRun, InboxItem, TaskRecord

from . import limits as _limits
from .connection import RELAXED, Database
from .schema import RUN_COLUMNS, TASK_COLUMNS, prefixed, run_record, task_record

__all__ = [
    "UNCLAIM_RUNS",
    "UNCLAIM_TASKS",
    "alone",
    "claim_runs",
    "claim_runs_sql",
    "claim_tasks",
    "claim_tasks_alone",
    "claim_tasks_sql",
    "fire_timers",
    "wake",
]

T = TypeVar("T")

# Claimable runs come from two index-driven scans: ready runs (runs_ready_idx, walked in
# created_at order once per queue, so a claim reads about `limit` rows per queue however
# long the backlog) and runs whose worker died (runs_lease_idx). Each locks with SKIP
# LOCKED, so rows another claimer is taking are passed over rather than waited for, and a
# row changed since the scan is re-checked against the WHERE clause before it is locked
# (READ COMMITTED's EvalPlanQual). Candidates beyond the `limit` oldest stay locked, not
# updated, until this short transaction ends.
#
# One branch per queue, each with ``queue = $n``: an equality with a parameter lets the
# planner read the (queue, created_at) index already in created_at order and stop after
# `limit` rows, which ``queue = ANY(...)`` (or a LATERAL join over the queues) does not.
_CLAIM_RUNS_READY = """ready_{i} AS (
    SELECT run_id, created_at FROM runs
    WHERE ready AND closed_at IS NULL AND NOT parked
      AND queue = ${queue} AND name = ANY($2::text[])
      AND (lease_owner IS NULL OR lease_expires_at <= $3 OR lease_owner = $4)
    ORDER BY created_at LIMIT $6
    FOR UPDATE SKIP LOCKED
)"""
_CLAIM_RUNS = """
WITH {flags}{ready_ctes}, ready AS ({ready}), expired AS (
    SELECT run_id, created_at FROM runs
    WHERE lease_owner IS NOT NULL AND lease_expires_at <= $3
      AND closed_at IS NULL AND NOT parked
      AND queue = ANY($1::text[]) AND name = ANY($2::text[])
    ORDER BY lease_expires_at LIMIT $6
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT run_id FROM (SELECT * FROM ready UNION SELECT * FROM expired) c
    ORDER BY created_at LIMIT $6
)
UPDATE runs r SET lease_owner = $4, lease_expires_at = $5, ready = false
FROM chosen WHERE r.run_id = chosen.run_id{relaxed}
RETURNING {columns}
"""
# The same shape for tasks; RETURNING gives the status *before* the claim, so the caller
# sees "running" for a task taken over from a dead worker.
_CLAIM_TASKS_QUEUED = """queued_{i} AS (
    SELECT task_id, visible_at, status, priority FROM tasks
    WHERE status = 'queued' AND queue = ${queue} AND visible_at <= $3
      AND ($2::text[] IS NULL OR name = ANY($2::text[])) AND NOT task_id = ANY($7::text[])
    ORDER BY priority DESC, visible_at LIMIT $6
    FOR UPDATE SKIP LOCKED
)"""
_CLAIM_TASKS = """
WITH {flags}{queued_ctes}, queued AS ({queued}), expired AS (
    SELECT task_id, visible_at, status, priority FROM tasks
    WHERE status = 'running' AND lease_expires_at <= $3
      AND ($1::text[] IS NULL OR queue = ANY($1::text[]))
      AND ($2::text[] IS NULL OR name = ANY($2::text[]))
      AND NOT task_id = ANY($7::text[])
    ORDER BY lease_expires_at LIMIT $6
    FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT task_id, status FROM (SELECT * FROM queued UNION ALL SELECT * FROM expired) c
    {unheld}ORDER BY priority DESC, visible_at LIMIT $6
){claimed}
UPDATE tasks t SET status = 'running', lease_owner = $4, lease_expires_at = $5
FROM chosen WHERE t.task_id = chosen.task_id
RETURNING {columns}{answer}
"""
# A claim that is a transaction of its own (`alone`: one round trip, where a transaction
# takes four) says in its first CTE whether any queue has limits, and makes its commit
# not wait for the WAL flush (`durable_postgres.connection.RELAXED`); where a queue has
# limits it claims nothing, answers one row with ``held`` true, and the caller claims in a
# transaction (`durable_postgres.limits`). Its rows are ``held`` and the claimed task's
# columns (NULL in the one row of a claim that took nothing).
_ALONE_FLAGS = f"""flags AS (
    SELECT EXISTS (SELECT 1 FROM queue_limits) AS held, {RELAXED} AS relaxed
), """
_ALONE = {
    "flags": _ALONE_FLAGS,
    "unheld": "WHERE NOT (SELECT held FROM flags)\n    ",
    "claimed": ", claimed AS (",
    "answer": ")\nSELECT f.held, c.* FROM flags f LEFT JOIN claimed c ON true",
}
_IN_TRANSACTION = dict.fromkeys(_ALONE, "")


@functools.lru_cache(maxsize=64)
def claim_runs_sql(n_queues: int, alone: bool = False) -> str:
    """`claim_runs`'s statement for ``n_queues`` queues: ``$1`` the queues, ``$2`` the names,
    ``$3`` now, ``$4`` the owner, ``$5`` lease_until, ``$6`` the limit, ``$7...`` each queue.
    ``alone``: a statement outside a transaction, whose commit does not wait for the WAL
    flush (`durable_postgres.connection.RELAXED`)."""
    return _CLAIM_RUNS.format(
        flags=f"flags AS (SELECT {RELAXED} AS relaxed), " if alone else "",
        relaxed="\n  AND (SELECT relaxed FROM flags) IS NOT NULL" if alone else "",
        ready_ctes=", ".join(
            _CLAIM_RUNS_READY.replace("${queue}", f"${7 + i}").format(i=i) for i in range(n_queues)
        ),
        ready=" UNION ALL ".join(f"SELECT * FROM ready_{i}" for i in range(n_queues)),
        columns=prefixed(RUN_COLUMNS, "r"),
    )


# After a lost answer to an ``alone`` claim of runs, which may have committed: the runs it
# leased (to ``$1`` until ``$2``: no other claim or renewal gives that lease) made
# claimable again, locked in id order as every writer locks runs.
UNCLAIM_RUNS = """
UPDATE runs SET ready = true WHERE run_id = ANY(ARRAY(
    SELECT run_id FROM runs
    WHERE lease_owner = $1 AND lease_expires_at = $2 AND NOT ready AND closed_at IS NULL
    ORDER BY run_id FOR UPDATE
))
"""

# The same for an ``alone`` claim of tasks: they are queued again as they were (a task a
# lost claim took over from a dead worker comes back queued, its lost attempt uncounted).
UNCLAIM_TASKS = """
UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL
WHERE task_id = ANY(ARRAY(
    SELECT task_id FROM tasks
    WHERE status = 'running' AND lease_owner = $1 AND lease_expires_at = $2
    ORDER BY task_id FOR UPDATE
))
"""

# Any queue (the worker's sweep for lost attempts, or a poll of every queue): one scan.
_CLAIM_TASKS_QUEUED_ANY = """queued_any AS (
    SELECT task_id, visible_at, status, priority FROM tasks
    WHERE status = 'queued' AND visible_at <= $3
      AND ($2::text[] IS NULL OR name = ANY($2::text[])) AND NOT task_id = ANY($7::text[])
    ORDER BY priority DESC, visible_at LIMIT $6
    FOR UPDATE SKIP LOCKED
)"""
# Any queue but those with limits ($8), which `durable_postgres.limits` claims.
_CLAIM_TASKS_QUEUED_FREE = _CLAIM_TASKS_QUEUED_ANY.replace(
    "WHERE status = 'queued'", "WHERE status = 'queued' AND NOT queue = ANY($8::text[])"
)
_NOTHING_QUEUED = """queued_none AS (
    SELECT task_id, visible_at, status, priority FROM tasks WHERE false
)"""


@functools.lru_cache(maxsize=64)
def claim_tasks_sql(
    n_queues: int | None, expired_only: bool = False, free: bool = False, alone: bool = False
) -> str:
    """`claim_tasks`'s statement for ``n_queues`` queues (parameters as `claim_runs_sql`,
    but ``$7`` is the task ids not to claim and each queue follows from ``$8``); ``None``:
    any queue (``$1`` is then NULL; with ``free``, ``$8`` lists queues left out). With
    ``expired_only``, no queued task is taken. ``alone``: a statement outside a transaction
    that claims only where no queue has limits (see `_ALONE`)."""
    parts = _ALONE if alone else _IN_TRANSACTION
    if expired_only or n_queues is None:
        cte = _NOTHING_QUEUED if expired_only else _CLAIM_TASKS_QUEUED_ANY
        if free and not expired_only:
            cte = _CLAIM_TASKS_QUEUED_FREE
        name = "queued_none" if expired_only else "queued_any"
        return _CLAIM_TASKS.format(
            queued_ctes=cte,
            queued=f"SELECT * FROM {name}",
            columns=prefixed(TASK_COLUMNS, "t").replace("t.status", "chosen.status"),
            **parts,
        )
    return _CLAIM_TASKS.format(
        **parts,
        queued_ctes=", ".join(
            _CLAIM_TASKS_QUEUED.replace("${queue}", f"${8 + i}").format(i=i)
            for i in range(n_queues)
        ),
        queued=" UNION ALL ".join(f"SELECT * FROM queued_{i}" for i in range(n_queues)),
        columns=prefixed(TASK_COLUMNS, "t").replace("t.status", "chosen.status"),
    )


_FIRE_TIMERS = """
WITH due AS (
    SELECT run_id, seq FROM timers WHERE due_at <= $1
    ORDER BY due_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), fired AS (
    DELETE FROM timers t USING due WHERE t.run_id = due.run_id AND t.seq = due.seq
    RETURNING t.run_id, t.seq, t.due_at, t.data
), ins AS (
    INSERT INTO inbox (run_id, kind, time, data)
    SELECT f.run_id, 'timer_fired', $1, f.data
    FROM fired f JOIN runs r ON r.run_id = f.run_id
    WHERE r.closed_at IS NULL
    ORDER BY f.due_at, f.run_id, f.seq
    RETURNING run_id
)
SELECT DISTINCT run_id FROM ins
"""
# Then the woken runs are locked in id order and marked ready: `wake`.
# ... and when the oldest start in a rate limit's window leaves it (durable.limits).
_NEXT_DUE = """
SELECT LEAST(
    (SELECT min(due_at) FROM timers),
    (SELECT min(visible_at) FROM tasks WHERE status = 'queued' AND visible_at > $1),
    (SELECT min(s.at + l.per) FROM queue_starts s JOIN queue_limits l ON l.queue = s.queue
     WHERE s.at + l.per > $1)
)
"""


async def alone(
    db: Database, claim: Callable[[Any], Awaitable[T]], unclaim: str, owner: str, lease_until: float
) -> T:
    """``claim(conn)``, a claim that is a transaction of its own, retried as
    `Database.read` retries a lost connection. The answer of a try may be lost after its
    claim committed: a retry first frees what that claim took (``unclaim``, `UNCLAIM_RUNS`
    or `UNCLAIM_TASKS`: the rows leased to ``owner`` until this very ``lease_until``, a
    lease no other claim or renewal gives), so they need not wait for their lease to
    expire (and tasks are not counted as lost attempts then)."""
    tries = 0

    async def once(conn: Any) -> T:
        nonlocal tries
        tries += 1
        if tries > 1:
            await conn.execute(unclaim, owner, lease_until)
        return await claim(conn)

    return await db.read(once)


async def claim_runs(
    conn: Any,
    owner: str,
    *,
    queues: Collection[str],
    names: Collection[str],
    now: float,
    lease_until: float,
    limit: int,
    alone: bool = False,
) -> list[ClaimedRun]:
    """Lease up to ``limit`` claimable runs to ``owner``, oldest first, with their inbox.
    ``alone``: outside a transaction, the claim commits by itself before the inbox is read
    (two round trips, where a transaction takes five)."""
    if limit <= 0 or not queues or not names:
        return []
    wanted = sorted(set(queues))
    rows = await conn.fetch(
        claim_runs_sql(len(wanted), alone), wanted, list(names), now, owner, lease_until,
        limit, *wanted,
    )  # fmt: skip
    if not rows:
        return []
    # A later statement: its snapshot includes every item committed before the claim
    # locked the rows; items committed after that set ``ready`` again (see PostgresStore).
    # An item committed between an ``alone`` claim's commit and this read is read here
    # and again by the next claim of its run: the worker takes each item once, by id.
    inbox: dict[str, list[InboxItem]] = {r["run_id"]: [] for r in rows}
    for item in await conn.fetch(
        "SELECT id, run_id, kind, time, data FROM inbox WHERE run_id = ANY($1::text[]) ORDER BY id",
        list(inbox),
    ):
        inbox[item["run_id"]].append(
            InboxItem(item["id"], item["run_id"], item["kind"], item["time"], item["data"])
        )
    runs = sorted((run_record(r) for r in rows), key=lambda r: (r.created_at, r.run_id))
    return [ClaimedRun(r, inbox[r.run_id]) for r in runs]


async def claim_tasks_alone(
    conn: Any,
    owner: str,
    *,
    queues: Collection[str] | None,
    names: Collection[str] | None,
    now: float,
    lease_until: float,
    limit: int,
    exclude: Collection[str] = (),
) -> list[TaskRecord] | None:
    """`claim_tasks` in one statement outside a transaction, or ``None`` without claiming
    anything if some queue has limits (then claim in a transaction, with `claim_tasks`)."""
    if limit <= 0 or (queues is not None and not queues) or (names is not None and not names):
        return []
    wanted = None if queues is None else sorted(set(queues))
    rows = await conn.fetch(
        claim_tasks_sql(None if wanted is None else len(wanted), alone=True),
        wanted, None if names is None else list(names), now, owner, lease_until, limit,
        list(exclude), *(wanted or ()),
    )  # fmt: skip
    if rows[0]["held"]:
        return None
    found = []
    for row in rows:
        if row["task_id"] is not None:
            columns = dict(row)
            del columns["held"]
            found.append(task_record(columns))
    return sorted(found, key=lambda t: (-t.priority, t.visible_at, t.task_id))


async def claim_tasks(
    conn: Any,
    owner: str,
    *,
    queues: Collection[str] | None,
    names: Collection[str] | None,
    now: float,
    lease_until: float,
    limit: int,
    exclude: Collection[str] = (),
    expired_only: bool = False,
    any_limits: bool = True,
) -> list[TaskRecord]:
    """Lease up to ``limit`` claimable tasks to ``owner``, by priority, then earliest
    ``visible_at``, each with its status before the claim; none of ``exclude``. ``None``
    filters nothing. Queues with limits are served first, within them
    (`durable_postgres.limits`), the rest of ``limit`` by the others; ``any_limits=False``
    says that no queue has any (`XID_AND_ANY_LIMITS`), which saves looking."""
    if limit <= 0 or (queues is not None and not queues) or (names is not None and not names):
        return []
    wanted = None if queues is None else sorted(set(queues))
    limited: list[TaskRecord] = []
    held: dict[str, QueueLimits] = {}
    if any_limits and not expired_only:
        held = await _limits.lock(conn, wanted)
        for queue_limits in held.values():
            limited += await _limits.candidates(
                conn, queue_limits, names=names, now=now, limit=limit - len(limited),
                exclude=exclude,
            )  # fmt: skip
        if limited:
            await conn.execute(
                "UPDATE tasks SET status = 'running', lease_owner = $2, lease_expires_at = $3 "
                "WHERE task_id = ANY($1::text[])",
                [t.task_id for t in limited], owner, lease_until,
            )  # fmt: skip
            limited = [
                dataclasses.replace(t, lease_owner=owner, lease_expires_at=lease_until)
                for t in limited
            ]
            for queue, n in collections.Counter(t.queue for t in limited).items():
                if held[queue].rate is not None:
                    await _limits.record_starts(conn, queue, n, now)
    rest = limit - len(limited)
    if rest <= 0:
        return limited
    free = wanted if wanted is None or not held else [q for q in wanted if q not in held]
    extra: list[Any] = []
    if wanted is None or expired_only:
        sql = claim_tasks_sql(None, expired_only, free=bool(held))
        if held and not expired_only:
            extra = [sorted(held)]
    elif not free:  # every queue asked for has limits: only expired leases are left here
        sql = claim_tasks_sql(len(wanted), True)
    else:
        sql = claim_tasks_sql(len(free))
        extra = list(free)
    # $1 is every queue asked for: expired leases are taken over on limited queues too.
    rows = await conn.fetch(
        sql, wanted, None if names is None else list(names), now, owner, lease_until, rest,
        list(exclude), *extra,
    )  # fmt: skip
    found = sorted(
        (task_record(r) for r in rows), key=lambda t: (-t.priority, t.visible_at, t.task_id)
    )
    return limited + found


async def fire_timers(conn: Any, now: float, limit: int) -> tuple[bool, float | None]:
    """Fire up to ``limit`` due timers; return whether any reached an open run, and the
    earliest remaining due time (timers and not-yet-visible queued tasks)."""
    woken = [r["run_id"] for r in await conn.fetch(_FIRE_TIMERS, now, limit)] if limit > 0 else []
    await wake(conn, woken)
    next_due = await conn.fetchval(_NEXT_DUE, now)
    return bool(woken), next_due


async def wake(conn: Any, run_ids: Collection[str]) -> None:
    """Mark ``run_ids`` ready (an inbox item arrived), locking them in id order first with a
    plain scan (a locking statement over a join can lose rows updated while it waits)."""
    if run_ids:
        ids = sorted(set(run_ids))
        await conn.execute(
            "SELECT 1 FROM runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE", ids
        )
        await conn.execute("UPDATE runs SET ready = true WHERE run_id = ANY($1::text[])", ids)
