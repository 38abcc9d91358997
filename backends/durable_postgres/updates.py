"""Update outcomes on PostgreSQL (`Store.read_update`): `Updates`, a part of
`PostgresStore`, over the ``updates`` table (`durable_postgres.schema.EXTRA_TABLES`). Rows
are written by step commits (`durable_postgres.commit`, `StepCommit.updates`) and go with
their workflow's current run when it is pruned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Database

__all__ = ["TABLE", "UPSERT", "Updates"]

#: The table, created on open when missing: one row per update answered.
TABLE: tuple[str, list[str]] = (
    "updates",
    [
        """CREATE TABLE IF NOT EXISTS updates (
            workflow_id text NOT NULL,
            update_id text NOT NULL,
            outcome bytea NOT NULL,
            at double precision NOT NULL,
            PRIMARY KEY (workflow_id, update_id)
        )""",
    ],
)

#: Writes outcomes: arrays of workflow ids, update ids, outcomes, and the time. The first
#: answer stays.
UPSERT = """
INSERT INTO updates (workflow_id, update_id, outcome, at)
SELECT w, u, o, $4 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS t(w, u, o)
ON CONFLICT (workflow_id, update_id) DO NOTHING
"""


class Updates:
    """The update-outcome method of `PostgresStore`."""

    if TYPE_CHECKING:
        _db: Database

    async def read_update(self, workflow_id: str, update_id: str) -> bytes | None:
        """See `Store.read_update`."""

        async def op(conn: Any) -> Any:
            return await conn.fetchval(
                "SELECT outcome FROM updates WHERE workflow_id = $1 AND update_id = $2",
                workflow_id,
                update_id,
            )

        value = await self._db.read(op)
        return None if value is None else bytes(value)
