"""Step logs on SQLite (`Store.append_logs`, `Store.read_logs`): `Logs`, a part of
`SQLiteStore`, over the ``step_logs`` table (`durable_sqlite.schema.EXTRA_TABLES`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from durable.store import NewStepLog, StepLog

__all__ = ["TABLE", "Logs"]

T = TypeVar("T")

#: The table and its index, created on open when missing.
TABLE: tuple[str, tuple[str, ...]] = (
    "step_logs",
    (
        """CREATE TABLE IF NOT EXISTS step_logs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            attempt INTEGER NOT NULL,
            at REAL NOT NULL,
            level INTEGER NOT NULL,
            logger TEXT NOT NULL,
            message TEXT NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS step_logs_run ON step_logs (run_id, seq, id)",
    ),
)

_COLUMNS = "id, run_id, seq, attempt, at, level, logger, message"


class Logs:
    """The step-log methods of `SQLiteStore`."""

    if TYPE_CHECKING:

        async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def append_logs(self, logs: Sequence[NewStepLog]) -> None:
        """See `Store.append_logs`."""
        if not logs:
            return
        rows = [(g.run_id, g.seq, g.attempt, g.at, g.level, g.logger, g.message) for g in logs]
        await self._write(
            lambda db: db.executemany(
                "INSERT INTO step_logs (run_id, seq, attempt, at, level, logger, message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        )

    async def read_logs(
        self, run_id: str, *, seq: int | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[StepLog]:
        """See `Store.read_logs`."""
        if seq is None:
            sql = (
                f"SELECT {_COLUMNS} FROM step_logs WHERE run_id = ? AND id > ? ORDER BY id LIMIT ?"
            )
            params: tuple[Any, ...] = (run_id, after_id, limit)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM step_logs WHERE run_id = ? AND seq = ? AND id > ? "
                "ORDER BY id LIMIT ?"
            )
            params = (run_id, seq, after_id, limit)
        return [StepLog(*row) for row in await self._read(sql, params)]
