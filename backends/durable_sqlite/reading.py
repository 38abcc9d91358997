"""The listing methods of `SQLiteStore` (`Listing`): runs by filter, counts per status,
queue figures, a journal as plain rows; the queries are `durable_sqlite.listing`'s."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from durable.store import QueueStats, RunRecord, merge_queue_stats

from . import listing as _listing
from .schema import run_record

__all__ = ["Listing"]

T = TypeVar("T")


class Listing:
    """The listing methods of `SQLiteStore`."""

    if TYPE_CHECKING:

        async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

        async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    async def list_runs(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        after: str | None = None,
        tags: Mapping[str, str] | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> list[RunRecord]:
        """Every run (current or not), newest first, filtered; see `Store.list_runs`."""
        sql, params = _listing.list_query(
            limit=limit,
            status=status,
            name=name,
            tags=tags,
            created_after=created_after,
            created_before=created_before,
            after=after,
        )
        return [run_record(row) for row in await self._read(sql, params)]

    async def read_journal_rows(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[tuple[int, str, float, bytes]]:
        """See `Store.read_journal_rows`: the rows as the driver returns them."""
        return await self._read(
            "SELECT seq, kind, time, data FROM journal WHERE run_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (run_id, after_seq, -1 if limit is None else limit),
        )

    async def count_runs(
        self, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """Runs per status; see `Store.count_runs` (``runs_status`` covers it, the tag
        index or a scan by tags: `durable_sqlite.listing.count_runs`)."""
        return await self._call(lambda db: _listing.count_runs(db, name=name, tags=tags))

    async def queue_stats(self, now: float) -> list[QueueStats]:
        """See `Store.queue_stats` (``tasks_queue`` and ``runs_ready`` cover it)."""
        tasks = await self._read(_listing.QUEUED_TASKS, (now, now, now))
        runs = await self._read(_listing.WAITING_RUNS, (now,))
        return merge_queue_stats(tasks, runs)
