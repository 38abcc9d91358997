"""The storage of queries: the requests clients leave and the answers workers write.

A part of the storage contract (`durable.store.Store` inherits `QueryBox`), kept apart for
size. Each backend keeps a ``queries`` table (in its ``EXTRA_TABLES``): an increasing
``id`` → ``workflow_id``, ``run_id``, ``query`` (the name asked), ``args`` (encoded),
``created_at``, ``taken_by`` (the worker that took it to answer by replay, or NULL) and
``answer`` (NULL until answered; `durable.queries.Answer.encode`).

A row lives for one ``handle.query()`` call (`durable.asking`):

1. the client `QueryBox.post_query`s it, which notifies `TOPIC_QUERIES`;
2. workers serving the run's workflow read `QueryBox.pending_queries` (each request with
   what the worker needs to tell who should answer: the run's lease and journal length),
   and answer (`durable.answering`): from memory with `QueryBox.answer_query` at once, or,
   after `QueryBox.take_query` (so that one worker replays, not all), by replay;
3. the answer notifies `TOPIC_ANSWERS`; the client reads it (`QueryBox.read_answer`) and
   `QueryBox.delete_query`s the row, answered or not.

Nothing here touches a run: a query never writes to its journal, inbox or lease.
"""

from __future__ import annotations

import abc
from collections.abc import Collection
from dataclasses import dataclass

__all__ = ["QUERY_ROW_TTL", "NewQuery", "QueryBox", "QueryRequest"]

QUERY_ROW_TTL = 3600.0  # seconds after which a row nobody deleted (its client died) goes


@dataclass(frozen=True, slots=True)
class NewQuery:
    """A query a client leaves for the workers: ``query`` of run ``run_id``."""

    workflow_id: str
    run_id: str
    query: str
    args: bytes  # encoded as `durable.payload.encode_args` does: {"args": [...], "kwargs": {}}
    created_at: float


@dataclass(frozen=True, slots=True)
class QueryRequest:
    """A query waiting for an answer, with what a worker needs to tell who answers it:
    its run's workflow ``name``, ``status``, ``history_length`` and lease."""

    id: int
    workflow_id: str
    run_id: str
    query: str
    args: bytes
    created_at: float
    name: str
    status: str
    history_length: int
    lease_owner: str | None
    lease_expires_at: float | None


class QueryBox(abc.ABC):
    """The query methods of the storage contract (see the module docstring)."""

    @abc.abstractmethod
    async def post_query(self, query: NewQuery) -> int:
        """Store ``query`` unanswered and return its id; notify `TOPIC_QUERIES`.

        Also deletes rows created more than `QUERY_ROW_TTL` seconds before it (left by
        clients that died while waiting).
        """

    @abc.abstractmethod
    async def pending_queries(self, names: Collection[str], limit: int) -> list[QueryRequest]:
        """Up to ``limit`` queries neither answered nor taken whose run is of one of the
        workflow ``names``, oldest first (a query whose run is gone is not listed)."""

    @abc.abstractmethod
    async def take_query(self, query_id: int, worker_id: str) -> bool:
        """Take the query to answer it (by replay): ``True`` for one worker only, while the
        query is unanswered (again for that worker: a retry after a lost commit)."""

    @abc.abstractmethod
    async def answer_query(self, query_id: int, worker_id: str, answer: bytes) -> bool:
        """Store ``answer`` unless the query was answered, deleted, or taken by another
        worker; whether it was stored. Notifies `TOPIC_ANSWERS` when it was."""

    @abc.abstractmethod
    async def read_answer(self, query_id: int) -> bytes | None:
        """The query's answer; ``None`` while unanswered (or once deleted)."""

    @abc.abstractmethod
    async def delete_query(self, query_id: int) -> None:
        """Delete the query's row, answered or not. No-op if it is gone."""
