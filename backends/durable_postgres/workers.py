"""Workers on PostgreSQL: registration, heartbeats (renewing leases), and a graceful goodbye.

Each function runs inside the caller's write transaction (`PostgresStore._write`, which
retries lost connections) and returns its result with the topics to notify after the
commit. Rows are locked as every writer here locks them: runs before tasks, each in id
order, so a heartbeat and a group commit cannot deadlock.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from durable.store import TOPIC_RUNS, TOPIC_TASKS, WorkerRecord, run_topic

__all__ = ["WORKER_SILENCE_SECONDS", "deregister", "heartbeat", "register"]

WORKER_SILENCE_SECONDS = 60.0  # a worker not heard from for this long is dropped from workers

# Locking statements are plain scans (see durable_postgres.commit): lock, then write.
_LOCK_MY_RUNS = """
SELECT run_id FROM runs WHERE run_id = ANY($1::text[]) AND lease_owner = $2
ORDER BY run_id FOR UPDATE
"""
_LOCK_MY_TASKS = """
SELECT task_id, attempt, cancel_requested FROM tasks
WHERE task_id = ANY($1::text[]) AND lease_owner = $2 ORDER BY task_id FOR UPDATE
"""
_RENEW_TASKS = """
UPDATE tasks t SET lease_expires_at = $1,
    heartbeat_details = COALESCE(u.details, t.heartbeat_details)
FROM unnest($2::text[], $3::bytea[]) AS u(task_id, details)
WHERE t.task_id = u.task_id
"""
_UPSERT_WORKER = """
INSERT INTO workers (worker_id, queues, workflows, activities, host, pid, started_at,
                     heartbeat_at, signatures)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (worker_id) DO UPDATE SET queues = EXCLUDED.queues,
    workflows = EXCLUDED.workflows, activities = EXCLUDED.activities,
    host = EXCLUDED.host, pid = EXCLUDED.pid,
    started_at = EXCLUDED.started_at, heartbeat_at = EXCLUDED.heartbeat_at,
    signatures = EXCLUDED.signatures
"""


async def register(
    conn: Any, worker: WorkerRecord, *, unpark: bool
) -> tuple[None, Collection[str]]:
    """Record ``worker`` (replacing its row) and, with ``unpark``, unpark the runs it
    serves (their ``problem`` cleared, ready)."""
    await conn.execute(
        _UPSERT_WORKER,
        worker.worker_id, list(worker.queues), list(worker.workflows),
        list(worker.activities), worker.host, worker.pid, worker.started_at,
        worker.heartbeat_at, json.dumps(dict(worker.signatures)),
    )  # fmt: skip
    if not unpark:
        return None, ()
    unparked = await conn.fetch(
        "SELECT run_id, workflow_id FROM runs WHERE parked AND closed_at IS NULL "
        "AND queue = ANY($1::text[]) AND name = ANY($2::text[]) "
        "ORDER BY run_id FOR UPDATE",
        list(worker.queues),
        list(worker.workflows),
    )
    if not unparked:
        return None, ()
    await conn.execute(
        "UPDATE runs SET parked = false, problem = NULL, ready = true "
        "WHERE run_id = ANY($1::text[])",
        [r["run_id"] for r in unparked],
    )
    return None, {TOPIC_RUNS, *(run_topic(r["workflow_id"]) for r in unparked)}


async def heartbeat(
    conn: Any,
    worker_id: str,
    *,
    runs: Collection[str],
    tasks: Mapping[str, tuple[int, bytes | None]],
    now: float,
    lease_until: float,
) -> tuple[tuple[set[str], set[str]], Collection[str]]:
    """`durable.store.Store.heartbeat`: renew the worker's row and the leases it still
    holds; returns ``(lost, cancel_requested)``. Deletes workers silent for
    `WORKER_SILENCE_SECONDS`."""
    run_ids = sorted(runs)
    task_ids = sorted(tasks)
    # Rows locked in id order, runs before tasks, as the group commit locks them: in
    # table order, a heartbeat and a commit could deadlock (and stall a second).
    kept_runs = [r["run_id"] for r in await conn.fetch(_LOCK_MY_RUNS, run_ids, worker_id)]
    if kept_runs:
        await conn.execute(
            "UPDATE runs SET lease_expires_at = $2 WHERE run_id = ANY($1::text[])",
            kept_runs,
            lease_until,
        )
    locked = await conn.fetch(_LOCK_MY_TASKS, task_ids, worker_id) if task_ids else []
    kept_tasks = [r for r in locked if r["attempt"] == tasks[r["task_id"]][0]]
    if kept_tasks:
        ids = [r["task_id"] for r in kept_tasks]
        await conn.execute(_RENEW_TASKS, lease_until, ids, [tasks[t][1] for t in ids])
    registered = await conn.execute(
        "UPDATE workers SET heartbeat_at = $2 WHERE worker_id = $1", worker_id, now
    )
    await conn.execute(  # SKIP LOCKED: two heartbeats never wait on each other here
        "DELETE FROM workers WHERE worker_id IN (SELECT worker_id FROM workers "
        "WHERE heartbeat_at < $1 ORDER BY worker_id FOR UPDATE SKIP LOCKED)",
        now - WORKER_SILENCE_SECONDS,
    )
    lost = set(run_ids) - set(kept_runs)
    lost |= set(task_ids) - {r["task_id"] for r in kept_tasks}
    cancelled = {r["task_id"] for r in kept_tasks if r["cancel_requested"]}
    if registered == "UPDATE 0":
        lost.add(worker_id)
    return (lost, cancelled), ()


async def deregister(conn: Any, worker_id: str, now: float) -> tuple[None, Collection[str]]:
    """Hand back the worker's run and task leases (runs ready, tasks requeued at the same
    attempt, visible at once) and delete its row."""
    runs = await conn.fetch(
        "SELECT run_id FROM runs WHERE lease_owner = $1 AND closed_at IS NULL "
        "ORDER BY run_id FOR UPDATE",
        worker_id,
    )
    if runs:
        await conn.execute(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, ready = true "
            "WHERE run_id = ANY($1::text[])",
            [r["run_id"] for r in runs],
        )
    tasks = await conn.fetch(
        "SELECT task_id FROM tasks WHERE lease_owner = $1 ORDER BY task_id FOR UPDATE",
        worker_id,
    )
    if tasks:
        await conn.execute(
            "UPDATE tasks SET status = 'queued', lease_owner = NULL, "
            "lease_expires_at = NULL, visible_at = LEAST(visible_at, $2) "
            "WHERE task_id = ANY($1::text[])",
            [r["task_id"] for r in tasks],
            now,
        )
    await conn.execute("DELETE FROM workers WHERE worker_id = $1", worker_id)
    topics = set()
    if runs:
        topics.add(TOPIC_RUNS)
    if tasks:
        topics.add(TOPIC_TASKS)
    return None, topics
