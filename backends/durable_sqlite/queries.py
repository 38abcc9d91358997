"""Queries on SQLite (`durable.querybox.QueryBox`): `QueryRows`, a part of `SQLiteStore`,
over the ``queries`` table (`durable_sqlite.schema.EXTRA_TABLES`).

Another process's query or answer is noticed the way other work is (`durable_sqlite.wakeups`):
`TOPIC_QUERIES` and `TOPIC_ANSWERS` are work topics, whose waits watch ``PRAGMA
data_version`` from the value read by the query that fed them (`pending_queries` for the
first, `post_query` and `read_answer` for the second).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from durable.querybox import QUERY_ROW_TTL, NewQuery, QueryRequest
from durable.topics import TOPIC_ANSWERS, TOPIC_QUERIES

from . import transact as _tx

if TYPE_CHECKING:
    from durable.notify import Hub

__all__ = ["TABLE", "QueryRows"]

T = TypeVar("T")

#: The table, created on open when missing.
TABLE: tuple[str, tuple[str, ...]] = (
    "queries",
    (
        """CREATE TABLE IF NOT EXISTS queries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            workflow_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            query TEXT NOT NULL,
            args BLOB NOT NULL,
            created_at REAL NOT NULL,
            taken_by TEXT,
            answer BLOB
        )""",
    ),
)

_PENDING = """
    SELECT q.id, q.workflow_id, q.run_id, q.query, q.args, q.created_at, r.name, r.status,
           r.history_length, r.lease_owner, r.lease_expires_at
    FROM queries q JOIN runs r ON r.run_id = q.run_id
    WHERE q.answer IS NULL AND q.taken_by IS NULL
      AND r.name IN (SELECT value FROM json_each(?))
    ORDER BY q.id LIMIT ?
"""


class QueryRows:
    """The query methods of `SQLiteStore`."""

    hub: Hub
    _seen: dict[str, int]

    if TYPE_CHECKING:

        async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

        async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def post_query(self, query: NewQuery) -> int:
        """See `QueryBox.post_query`."""

        def insert(db: sqlite3.Connection) -> tuple[int, int]:
            # The data version first: an answer another process commits after it wakes
            # this client's wait (see the module docstring).
            version = _tx.data_version(db)

            def body(db: sqlite3.Connection) -> int:
                db.execute(
                    "DELETE FROM queries WHERE created_at < ?",
                    (query.created_at - QUERY_ROW_TTL,),
                )
                cursor = db.execute(
                    "INSERT INTO queries (workflow_id, run_id, query, args, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (query.workflow_id, query.run_id, query.query, query.args, query.created_at),
                )
                assert cursor.lastrowid is not None
                return cursor.lastrowid

            return version, _tx.transaction(db, body)

        self._seen[TOPIC_ANSWERS], query_id = await self._call(insert)
        self.hub.notify([TOPIC_QUERIES])
        return query_id

    async def pending_queries(self, names: Collection[str], limit: int) -> list[QueryRequest]:
        """See `QueryBox.pending_queries`."""
        params = (json.dumps(sorted(names)), limit)

        def read(db: sqlite3.Connection) -> tuple[int, list[Any]]:
            return _tx.data_version(db), db.execute(_PENDING, params).fetchall()

        self._seen[TOPIC_QUERIES], rows = await self._call(read)
        return [QueryRequest(*row) for row in rows]

    async def take_query(self, query_id: int, worker_id: str) -> bool:
        """See `QueryBox.take_query`."""
        count = await self._write(
            lambda db: (
                db.execute(
                    "UPDATE queries SET taken_by = ? "
                    "WHERE id = ? AND answer IS NULL AND (taken_by IS NULL OR taken_by = ?)",
                    (worker_id, query_id, worker_id),
                ).rowcount
            )
        )
        return count == 1

    async def answer_query(self, query_id: int, worker_id: str, answer: bytes) -> bool:
        """See `QueryBox.answer_query`."""
        count = await self._write(
            lambda db: (
                db.execute(
                    "UPDATE queries SET answer = ?, taken_by = ? WHERE id = ? AND answer IS NULL "
                    "AND (taken_by IS NULL OR taken_by = ?)",
                    (answer, worker_id, query_id, worker_id),
                ).rowcount
            )
        )
        if count:
            self.hub.notify([TOPIC_ANSWERS])
        return count == 1

    async def read_answer(self, query_id: int) -> bytes | None:
        """See `QueryBox.read_answer`."""

        def read(db: sqlite3.Connection) -> tuple[int, list[Any]]:
            version = _tx.data_version(db)  # before the read: a later answer moves it
            rows = db.execute("SELECT answer FROM queries WHERE id = ?", (query_id,)).fetchall()
            return version, rows

        self._seen[TOPIC_ANSWERS], rows = await self._call(read)
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    async def delete_query(self, query_id: int) -> None:
        """See `QueryBox.delete_query`."""
        await self._write(lambda db: db.execute("DELETE FROM queries WHERE id = ?", (query_id,)))
