"""Update outcomes on SQLite (`Store.read_update`): `Updates`, a part of `SQLiteStore`,
over the ``updates`` table (`durable_sqlite.schema.EXTRA_TABLES`). Rows are written by
step commits (`durable_sqlite.steps`, `StepCommit.updates`) and go with their workflow's
current run when it is pruned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

__all__ = ["TABLE", "UPSERT", "Updates"]

#: The table, created on open when missing: one row per update answered.
TABLE: tuple[str, tuple[str, ...]] = (
    "updates",
    (
        """CREATE TABLE IF NOT EXISTS updates (
            workflow_id TEXT NOT NULL,
            update_id TEXT NOT NULL,
            outcome BLOB NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (workflow_id, update_id)
        ) WITHOUT ROWID""",
    ),
)

#: Writes one outcome: (workflow_id, update_id, outcome, at). The first answer stays.
UPSERT = (
    "INSERT INTO updates (workflow_id, update_id, outcome, at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (workflow_id, update_id) DO NOTHING"
)


class Updates:
    """The update-outcome method of `SQLiteStore`."""

    if TYPE_CHECKING:

        async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def read_update(self, workflow_id: str, update_id: str) -> bytes | None:
        """See `Store.read_update`."""
        rows = await self._read(
            "SELECT outcome FROM updates WHERE workflow_id = ? AND update_id = ?",
            (workflow_id, update_id),
        )
        return bytes(rows[0][0]) if rows else None
