"""Queries on PostgreSQL (`durable.querybox.QueryBox`): `QueryRows`, a part of
`PostgresStore`, over the ``queries`` table (`durable_postgres.schema.EXTRA_TABLES`).

A new query NOTIFYs `TOPIC_QUERIES` and an answer `TOPIC_ANSWERS` as they commit (the
listener of every other process feeds its hub), so neither a worker nor a client polls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

from durable.querybox import QUERY_ROW_TTL, NewQuery, QueryRequest
from durable.topics import TOPIC_ANSWERS, TOPIC_QUERIES

if TYPE_CHECKING:
    from .connection import Database

__all__ = ["TABLE", "QueryRows"]

T = TypeVar("T")

#: The table, created on open when missing.
TABLE: tuple[str, list[str]] = (
    "queries",
    [
        """CREATE TABLE IF NOT EXISTS queries (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            workflow_id text NOT NULL,
            run_id text NOT NULL,
            query text NOT NULL,
            args bytea NOT NULL,
            created_at double precision NOT NULL,
            taken_by text,
            answer bytea
        )""",
    ],
)

_PENDING = """
    SELECT q.id, q.workflow_id, q.run_id, q.query, q.args, q.created_at, r.name, r.status,
           r.history_length, r.lease_owner, r.lease_expires_at
    FROM queries q JOIN runs r ON r.run_id = q.run_id
    WHERE q.answer IS NULL AND q.taken_by IS NULL AND r.name = ANY($1::text[])
    ORDER BY q.id LIMIT $2
"""


class QueryRows:
    """The query methods of `PostgresStore`."""

    if TYPE_CHECKING:

        async def _write(self, op: Callable[[Any], Awaitable[tuple[T, Collection[str]]]]) -> T: ...

        _db: Database

    async def post_query(self, query: NewQuery) -> int:
        """See `QueryBox.post_query`."""

        async def insert(conn: Any) -> tuple[int, Collection[str]]:
            await conn.execute(
                "DELETE FROM queries WHERE created_at < $1", query.created_at - QUERY_ROW_TTL
            )
            query_id = await conn.fetchval(
                "INSERT INTO queries (workflow_id, run_id, query, args, created_at) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                query.workflow_id,
                query.run_id,
                query.query,
                query.args,
                query.created_at,
            )
            return int(query_id), (TOPIC_QUERIES,)

        return await self._write(insert)

    async def pending_queries(self, names: Collection[str], limit: int) -> list[QueryRequest]:
        """See `QueryBox.pending_queries`."""
        wanted = sorted(names)
        rows = await self._db.read(lambda conn: conn.fetch(_PENDING, wanted, limit))
        return [QueryRequest(*row) for row in rows]

    async def take_query(self, query_id: int, worker_id: str) -> bool:
        """See `QueryBox.take_query`."""

        async def take(conn: Any) -> tuple[bool, Collection[str]]:
            status = await conn.execute(
                "UPDATE queries SET taken_by = $1 "
                "WHERE id = $2 AND answer IS NULL AND (taken_by IS NULL OR taken_by = $1)",
                worker_id,
                query_id,
            )
            return status == "UPDATE 1", ()

        return await self._write(take)

    async def answer_query(self, query_id: int, worker_id: str, answer: bytes) -> bool:
        """See `QueryBox.answer_query`."""

        async def store(conn: Any) -> tuple[bool, Collection[str]]:
            status = await conn.execute(
                "UPDATE queries SET answer = $1, taken_by = $2 WHERE id = $3 AND answer IS NULL "
                "AND (taken_by IS NULL OR taken_by = $2)",
                answer,
                worker_id,
                query_id,
            )
            done = status == "UPDATE 1"
            return done, (TOPIC_ANSWERS,) if done else ()

        return await self._write(store)

    async def read_answer(self, query_id: int) -> bytes | None:
        """See `QueryBox.read_answer`."""
        value = await self._db.read(
            lambda conn: conn.fetchval("SELECT answer FROM queries WHERE id = $1", query_id)
        )
        return None if value is None else bytes(value)

    async def delete_query(self, query_id: int) -> None:
        """See `QueryBox.delete_query`."""

        async def delete(conn: Any) -> tuple[None, Collection[str]]:
            await conn.execute("DELETE FROM queries WHERE id = $1", query_id)
            return None, ()

        await self._write(delete)
