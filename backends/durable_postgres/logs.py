"""Step logs on PostgreSQL (`Store.append_logs`, `Store.read_logs`): `Logs`, a part of
`PostgresStore`, over the ``step_logs`` table (`durable_postgres.schema.EXTRA_TABLES`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from durable.store import NewStepLog, StepLog

if TYPE_CHECKING:
    from .connection import Database

__all__ = ["TABLE", "Logs"]

T = TypeVar("T")

#: The table and its index, created on open when missing.
TABLE: tuple[str, list[str]] = (
    "step_logs",
    [
        """CREATE TABLE IF NOT EXISTS step_logs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id text NOT NULL,
            seq integer NOT NULL,
            attempt integer NOT NULL,
            at double precision NOT NULL,
            level integer NOT NULL,
            logger text NOT NULL,
            message text NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS step_logs_run ON step_logs (run_id, seq, id)",
    ],
)

_COLUMNS = "id, run_id, seq, attempt, at, level, logger, message"


class Logs:
    """The step-log methods of `PostgresStore`."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Any], Awaitable[tuple[T, Collection[str]]]]) -> T: ...

        _db: Database

    async def append_logs(self, logs: Sequence[NewStepLog]) -> None:
        """See `Store.append_logs`."""
        if not logs:
            return

        async def insert(conn: Any) -> tuple[None, Collection[str]]:
            await conn.execute(
                "INSERT INTO step_logs (run_id, seq, attempt, at, level, logger, message) "
                "SELECT * FROM unnest($1::text[], $2::int[], $3::int[], $4::float8[], "
                "$5::int[], $6::text[], $7::text[])",
                [g.run_id for g in logs],
                [g.seq for g in logs],
                [g.attempt for g in logs],
                [g.at for g in logs],
                [g.level for g in logs],
                [g.logger for g in logs],
                [g.message for g in logs],
            )
            return None, ()

        await self._write(insert)

    async def read_logs(
        self, run_id: str, *, seq: int | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[StepLog]:
        """See `Store.read_logs`."""
        if seq is None:
            sql = (
                f"SELECT {_COLUMNS} FROM step_logs WHERE run_id = $1 AND id > $2 "
                "ORDER BY id LIMIT $3"
            )
            args: tuple[Any, ...] = (run_id, after_id, limit)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM step_logs WHERE run_id = $1 AND seq = $4 AND id > $2 "
                "ORDER BY id LIMIT $3"
            )
            args = (run_id, after_id, limit, seq)
        rows = await self._db.read(lambda conn: conn.fetch(sql, *args))
        return [StepLog(*row) for row in rows]
