"""Workers on SQLite: registration, heartbeats (renewing leases), and a graceful goodbye.

Each function runs inside the caller's ``BEGIN IMMEDIATE`` transaction: `Registry`, a
part of `SQLiteStore`, opens it and notifies afterwards.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from durable.notify import Hub
from durable.store import TOPIC_RUNS, TOPIC_TASKS, WorkerRecord

from .schema import WORKER_COLUMNS, worker_record

__all__ = ["WORKER_GONE_SECONDS", "Registry", "goodbye", "register_row", "renew"]

T = TypeVar("T")

WORKER_GONE_SECONDS = 60.0  # a worker silent this long is dropped from `workers`


def _json(values: Collection[str]) -> str:
    return json.dumps(list(values))


def register_row(db: sqlite3.Connection, worker: WorkerRecord, *, unpark: bool) -> int:
    """Record ``worker`` (replacing its row) and, with ``unpark``, unpark the runs it
    serves; returns how many were unparked."""
    db.execute(
        f"INSERT OR REPLACE INTO workers ({WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            worker.worker_id,
            _json(worker.queues),
            _json(worker.workflows),
            _json(worker.activities),
            worker.host,
            worker.pid,
            worker.started_at,
            worker.heartbeat_at,
            json.dumps(dict(worker.signatures)),
        ),
    )
    if not unpark:
        return 0
    cursor = db.execute(
        "UPDATE runs SET parked = 0, problem = NULL, ready = 1 WHERE parked = 1 "
        "AND queue IN (SELECT value FROM json_each(?)) "
        "AND name IN (SELECT value FROM json_each(?))",
        (_json(worker.queues), _json(worker.workflows)),
    )
    return cursor.rowcount


def renew(
    db: sqlite3.Connection,
    worker_id: str,
    *,
    runs: Collection[str],
    tasks: Mapping[str, tuple[int, bytes | None]],
    now: float,
    lease_until: float,
) -> tuple[set[str], set[str]]:
    """`durable.store.Store.heartbeat`: renew the worker's row and the leases it still
    holds; returns ``(lost, cancel_requested)``."""
    cursor = db.execute("UPDATE workers SET heartbeat_at = ? WHERE worker_id = ?", (now, worker_id))
    registered = cursor.rowcount > 0
    db.execute("DELETE FROM workers WHERE heartbeat_at < ?", (now - WORKER_GONE_SECONDS,))
    owned: set[str] = set()
    if runs:
        db.execute(
            "UPDATE runs SET lease_expires_at = ? WHERE lease_owner = ? "
            "AND run_id IN (SELECT value FROM json_each(?))",
            (lease_until, worker_id, _json(runs)),
        )
        rows = db.execute(
            "SELECT run_id FROM runs WHERE lease_owner = ? "
            "AND run_id IN (SELECT value FROM json_each(?))",
            (worker_id, _json(runs)),
        ).fetchall()
        owned = {row[0] for row in rows}
    cancelled: set[str] = set()
    if tasks:
        db.executemany(
            "UPDATE tasks SET lease_expires_at = ?, "
            "heartbeat_details = COALESCE(?, heartbeat_details) "
            "WHERE task_id = ? AND lease_owner = ? AND attempt = ?",
            [
                (lease_until, details, t, worker_id, attempt)
                for t, (attempt, details) in tasks.items()
            ],
        )
        rows = db.execute(
            "SELECT task_id, attempt, cancel_requested FROM tasks WHERE lease_owner = ? "
            "AND task_id IN (SELECT value FROM json_each(?))",
            (worker_id, _json(tasks)),
        ).fetchall()
        for task_id, attempt, cancel in rows:
            if tasks[task_id][0] != attempt:
                continue
            owned.add(task_id)
            if cancel:
                cancelled.add(task_id)
    lost = (set(runs) | set(tasks)) - owned
    if not registered:
        lost.add(worker_id)
    return lost, cancelled


def goodbye(db: sqlite3.Connection, worker_id: str) -> set[str]:
    """Hand back the worker's run and task leases and delete its row; returns the topics
    to notify."""
    topics: set[str] = set()
    cursor = db.execute(
        "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL, ready = 1 "
        "WHERE lease_owner = ?",
        (worker_id,),
    )
    if cursor.rowcount > 0:
        topics.add(TOPIC_RUNS)
    # A task of a closed run is not worth another attempt: drop it.
    db.execute(
        "DELETE FROM tasks WHERE lease_owner = ? AND run_id IN "
        "(SELECT run_id FROM runs WHERE closed_at IS NOT NULL)",
        (worker_id,),
    )
    cursor = db.execute(
        "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL "
        "WHERE lease_owner = ?",
        (worker_id,),
    )
    if cursor.rowcount > 0:
        topics.add(TOPIC_TASKS)
    db.execute("DELETE FROM workers WHERE worker_id = ?", (worker_id,))
    return topics


class Registry:
    """The worker-registry methods of `SQLiteStore`: each runs a function above in one
    transaction and notifies what it changed."""

    if TYPE_CHECKING:
        hub: Hub

        async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def register_worker(self, worker: WorkerRecord, *, unpark: bool = True) -> None:
        """Record the worker and unpark the runs it serves (retried at once)."""
        unparked = await self._write(lambda db: register_row(db, worker, unpark=unpark))
        if unparked > 0:
            self.hub.notify([TOPIC_RUNS])

    async def heartbeat(
        self,
        worker_id: str,
        *,
        runs: Collection[str],
        tasks: Mapping[str, tuple[int, bytes | None]],
        now: float,
        lease_until: float,
    ) -> tuple[set[str], set[str]]:
        """Renew the worker's row and leases; return ``(lost, cancel_requested)``."""
        runs, tasks = list(runs), dict(tasks)  # the worker's own go on changing meanwhile
        return await self._write(
            lambda db: renew(
                db, worker_id, runs=runs, tasks=tasks, now=now, lease_until=lease_until
            )
        )

    async def deregister_worker(self, worker_id: str, now: float) -> None:
        """Hand back the worker's run and task leases at once and delete its row."""
        topics = await self._write(lambda db: goodbye(db, worker_id))
        self.hub.notify(topics)

    async def list_workers(self) -> list[WorkerRecord]:
        """The registered workers not yet deregistered or dropped as silent."""
        rows = await self._read(f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_at")
        return [worker_record(row) for row in rows]
