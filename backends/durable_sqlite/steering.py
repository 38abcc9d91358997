"""Operators' actions on one run, on SQLite: `Steering`, a part of `SQLiteStore`
(terminate a run; reopen or fork it: `durable.repair`, applied by `durable_sqlite.repair`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from durable.notify import Hub
from durable.repair import Fork, Reopen
from durable.store import TOPIC_RUNS, TOPIC_STATUS, Outgoing, run_topic
from durable.topics import end_topic

from . import repair as _repair
from . import steps as _steps

__all__ = ["Steering"]

T = TypeVar("T")


class Steering:
    """The run-steering methods of `SQLiteStore`."""

    if TYPE_CHECKING:
        hub: Hub

        async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T: ...

    async def terminate(
        self,
        run_id: str,
        *,
        entry_data: bytes,
        error: bytes,
        now: float,
        parent_item: Outgoing | None,
    ) -> bool:
        """Close an open run as ``terminated`` at once, revoking its lease."""

        def body(db: sqlite3.Connection) -> set[str] | None:
            rows = db.execute(
                "SELECT workflow_id, history_length, closed_at FROM runs WHERE run_id = ?",
                (run_id,),
            ).fetchall()
            if not rows or rows[0][2] is not None:
                return None
            workflow_id, length, _ = rows[0]
            db.execute(
                "INSERT INTO journal (run_id, seq, kind, time, data) "
                "VALUES (?, ?, 'workflow_terminated', ?, ?)",
                (run_id, length + 1, now, entry_data),
            )
            db.execute(
                "UPDATE runs SET status = 'terminated', error = ?, closed_at = ?, "
                "updated_at = ?, history_length = ?, lease_owner = NULL, "
                "lease_expires_at = NULL, ready = 0 WHERE run_id = ?",
                (error, now, now, length + 1, run_id),
            )
            _steps.close_runs(db, [run_id])
            topics = {TOPIC_STATUS, run_topic(workflow_id), end_topic(workflow_id)}
            routed = _steps.route_one(db, parent_item, now) if parent_item else None
            if routed is not None:
                _steps.deliver(db, [routed])
                topics.add(TOPIC_RUNS)
            return topics

        topics = await self._write(body)
        if topics is None:
            return False
        self.hub.notify(topics)
        return True

    async def reopen_run(self, reopen: Reopen, now: float) -> bool:
        """See `Store.reopen_run` (applied by `durable_sqlite.repair`)."""
        topics = await self._write(lambda db: _repair.reopen_run(db, reopen, now))
        if topics is None:
            return False
        self.hub.notify(topics)
        return True

    async def fork_run(self, fork: Fork, now: float) -> None:
        """See `Store.fork_run` (applied by `durable_sqlite.repair`)."""
        self.hub.notify(await self._write(lambda db: _repair.fork_run(db, fork, now)))
