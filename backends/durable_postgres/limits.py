"""Queue limits on PostgreSQL (`durable.limits`): reading and writing them, and the part of
a task claim that takes tasks of a limited queue.

A claim of a limited queue locks its ``queue_limits`` row (``FOR UPDATE``, queues in name
order) for the rest of its transaction: claims of one limited queue are serialised, so
each counts the running tasks and the recent starts its predecessors committed (READ
COMMITTED: every statement after the lock sees them). Claims of queues without limits
never touch those rows and go on in parallel with ``SKIP LOCKED`` as before.

Running tasks are counted with ``lease_expires_at`` below infinity, which leaves out
external waits (leased for ever); a lease that expired still counts until the sweep or a
claimer takes it over. The rate's window is ``queue_starts``: one row per claim that
started tasks of the queue (``n`` of them), pruned to the last ``per`` seconds.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from durable.admission import admit, claim_budget, full_keys
from durable.limits import QueueLimits
from durable.store import EXTERNAL_OWNER, TOPIC_LIMITS, TOPIC_TASKS, TaskRecord

from .connection import RELAXED
from .schema import TASK_COLUMNS, task_record

__all__ = [
    "XID_AND_ANY_LIMITS",
    "candidates",
    "lock",
    "read_limits",
    "record_starts",
    "write_limits",
]

_COLUMNS = "queue, concurrency, key_concurrency, rate, per"
#: A claim's first statement: its transaction id, and whether any queue has limits (as
#: ``held``). Where none has, that is all a claim pays for them: no round trip of its own,
#: and an empty table looked at once. Otherwise the claim reads and locks them (`lock`).
# A claim's first statement: its xid, whether any queue has limits, and a commit that
# does not wait for the WAL flush (`durable_postgres.connection.RELAXED`).
XID_AND_ANY_LIMITS = (
    "SELECT txid_current() AS xid, EXISTS (SELECT 1 FROM queue_limits) AS held, "
    f"{RELAXED} AS relaxed"
)


def _limits(queue: str, concurrency: Any, key_concurrency: Any, rate: Any, per: Any) -> QueueLimits:
    return QueueLimits(
        queue,
        concurrency=concurrency,
        key_concurrency=key_concurrency,
        rate=rate,
        per=None if per is None else timedelta(seconds=float(per)),
    )


async def write_limits(conn: Any, limits: QueueLimits, now: float) -> tuple[None, list[str]]:
    """`Store.set_queue_limits` inside a transaction; returns the topics to notify."""
    if limits.rate is None:  # no window to keep
        await conn.execute("DELETE FROM queue_starts WHERE queue = $1", limits.queue)
    if limits.empty:
        await conn.execute("DELETE FROM queue_limits WHERE queue = $1", limits.queue)
        return None, [TOPIC_TASKS, TOPIC_LIMITS]
    await conn.execute(
        f"INSERT INTO queue_limits ({_COLUMNS}, updated_at) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (queue) DO UPDATE SET concurrency = EXCLUDED.concurrency, "
        "key_concurrency = EXCLUDED.key_concurrency, rate = EXCLUDED.rate, "
        "per = EXCLUDED.per, updated_at = EXCLUDED.updated_at",
        limits.queue, limits.concurrency, limits.key_concurrency, limits.rate,
        limits.per_seconds, now,
    )  # fmt: skip
    return None, [TOPIC_TASKS, TOPIC_LIMITS]


async def read_limits(conn: Any, queues: Collection[str] | None) -> list[QueueLimits]:
    """The limits of every queue that has any, or of those of ``queues`` that do."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM queue_limits "
        "WHERE $1::text[] IS NULL OR queue = ANY($1::text[]) ORDER BY queue",
        None if queues is None else list(queues),
    )
    return [_limits(*r) for r in rows]


async def lock(conn: Any, queues: Collection[str] | None) -> dict[str, QueueLimits]:
    """Lock the limits rows of ``queues`` (``None``: every queue) in queue order, and
    return them by queue: the queues of a claim that have limits."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM queue_limits "
        "WHERE $1::text[] IS NULL OR queue = ANY($1::text[]) ORDER BY queue FOR UPDATE",
        None if queues is None else sorted(queues),
    )
    return {r["queue"]: _limits(*r) for r in rows}


async def candidates(
    conn: Any,
    limits: QueueLimits,
    *,
    names: Collection[str] | None,
    now: float,
    limit: int,
    exclude: Collection[str],
) -> list[TaskRecord]:
    """The queued tasks of ``limits.queue`` a claim may start at ``now`` (at most
    ``limit``), locked: by priority, then due time, within what the limits leave. The
    caller holds the queue's limits row (`lock`)."""
    queue = limits.queue
    running: dict[str | None, int] = {}
    started: int | None = None  # tasks started in the rate's window, if it has a rate
    if limits.concurrency is not None or limits.key_concurrency is not None:
        for r in await conn.fetch(
            "SELECT key, count(*) AS n FROM tasks WHERE status = 'running' AND queue = $1 "
            "AND lease_expires_at < 'Infinity'::float8 AND lease_owner <> $2 GROUP BY key",
            queue,
            EXTERNAL_OWNER,
        ):
            running[r["key"]] = r["n"]
    if limits.rate is not None and limits.per_seconds is not None:
        since = now - limits.per_seconds
        started = int(
            await conn.fetchval(
                "WITH gone AS (DELETE FROM queue_starts WHERE queue = $1 AND at <= $2) "
                "SELECT COALESCE(SUM(n), 0) FROM queue_starts WHERE queue = $1 AND at > $2",
                queue,
                since,
            )
        )
    budget = claim_budget(limits, limit, running, started)
    if budget <= 0:
        return []
    per_key = limits.key_concurrency
    full = full_keys(limits, running)
    taken: list[TaskRecord] = []
    skip = list(exclude)
    while len(taken) < budget:
        want = budget - len(taken)
        rows = await conn.fetch(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = 'queued' AND queue = $1 "
            "AND visible_at <= $2 AND NOT task_id = ANY($3::text[]) "
            "AND (key IS NULL OR NOT key = ANY($4::text[])) "
            "AND ($5::text[] IS NULL OR name = ANY($5::text[])) "
            "ORDER BY priority DESC, visible_at LIMIT $6 FOR UPDATE SKIP LOCKED",
            queue, now, skip, sorted(full), None if names is None else list(names), want,
        )  # fmt: skip
        tasks = [task_record(row) for row in rows]
        passed_over = admit(tasks, budget, per_key, running, full, taken, skip)
        # Fewer rows than asked: the queue has no more (or they are locked). Otherwise,
        # if a key filled up on the way, look again without it.
        if len(rows) < want or not passed_over:
            break
    return taken


async def record_starts(conn: Any, queue: str, n: int, now: float) -> None:
    """Count ``n`` tasks of ``queue`` started at ``now`` in its rate's window."""
    await conn.execute("INSERT INTO queue_starts (queue, at, n) VALUES ($1, $2, $3)", queue, now, n)
