"""The SQL of listing runs for people (`Store.list_runs`, `count_runs`, `queue_stats`):
filters built once, so the list and its counts always filter alike.

A tag filter reads the tag index (``run_tags``, kept in step with ``runs.tags`` by
triggers: see `durable_postgres.schema`): the first tag given is joined on
``run_tags_search_idx`` (key, value, created_at, run_id), which hands runs over newest
first, and the others are tested on each run row found (``tags @>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from durable.store import QueueStats, RunRecord, merge_queue_stats

from .schema import RUN_COLUMNS, prefixed, run_record, tags_json

if TYPE_CHECKING:
    from .connection import Database

__all__ = ["QUEUED_TASKS", "WAITING_RUNS", "Listing", "count_query", "filters", "list_query"]


def filters(
    *,
    status: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
    after: str | None = None,
) -> tuple[str, list[Any], str]:
    """``FROM ... [WHERE ...]`` over ``runs`` (joined to the tag index when ``tags`` are
    given), its parameters ($1...), and the alias whose ``created_at, run_id`` order it."""
    clauses: list[str] = []
    args: list[Any] = []
    source, by = "FROM runs", "runs"

    def add(clause: str, *values: object) -> None:
        args.extend(values)
        first = len(args) - len(values) + 1
        clauses.append(clause.format(*range(first, len(args) + 1)))

    if tags:
        (key, tag), *others = tags.items()
        source, by = "FROM run_tags t0 JOIN runs ON runs.run_id = t0.run_id", "t0"
        add("t0.key = ${} AND t0.value = ${}", key, tag)
        if others:
            # Checked on each run row the index hands over: one more join of run_tags
            # lets a planner short of statistics pick a nested loop over both tags' rows.
            add("runs.tags @> ${}::jsonb", tags_json(dict(others)))
    checks: tuple[tuple[str, object], ...] = (
        (f"{by}.created_at >= ${{}}", created_after),
        (f"{by}.created_at < ${{}}", created_before),
        ("runs.status = ${}", status),
        ("runs.name = ${}", name),
        # keyset paging: the runs after the given one, newest first
        (
            f"({by}.created_at, {by}.run_id) < "
            "(SELECT created_at, run_id FROM runs WHERE run_id = ${})",
            after,
        ),
    )
    for clause, value in checks:
        if value is not None:
            add(clause, value)
    return source + (f" WHERE {' AND '.join(clauses)}" if clauses else ""), args, by


def list_query(*, limit: int, **filtering: Any) -> tuple[str, list[Any]]:
    """The ``SELECT`` of `Store.list_runs` (`RUN_COLUMNS`, newest first; ``run_id``
    breaks ties, so equal times list in one order every time) and its arguments."""
    source, args, by = filters(**filtering)
    args.append(limit)
    sql = (
        f"SELECT {prefixed(RUN_COLUMNS, 'runs')} {source} "
        f"ORDER BY {by}.created_at DESC, {by}.run_id DESC LIMIT ${len(args)}"
    )
    return sql, args


def count_query(**filtering: Any) -> tuple[str, list[Any]]:
    """The ``SELECT status, n`` of `Store.count_runs` and its arguments."""
    source, args, _ = filters(**filtering)
    return f"SELECT runs.status, COUNT(*) AS n {source} GROUP BY runs.status", args


# Per queue: due tasks, since when the oldest is due, tasks delayed ($1: now).
QUEUED_TASKS = (
    "SELECT queue, COUNT(*) FILTER (WHERE visible_at <= $1), "
    "MIN(visible_at) FILTER (WHERE visible_at <= $1), "
    "COUNT(*) FILTER (WHERE visible_at > $1) "
    "FROM tasks WHERE status = 'queued' GROUP BY queue"
)
# Per queue: open runs a worker could claim now, and the oldest's last change ($1: now).
WAITING_RUNS = (
    "SELECT queue, COUNT(*), MIN(updated_at) FROM runs WHERE closed_at IS NULL AND "
    "NOT parked AND ((ready AND lease_owner IS NULL) OR "
    "(lease_owner IS NOT NULL AND lease_expires_at <= $1)) GROUP BY queue"
)


class Listing:
    """The listing methods of `PostgresStore`: runs by filter, counts, queue figures, a
    journal as plain rows."""

    if TYPE_CHECKING:
        _db: Database

    async def read_journal_rows(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[tuple[int, str, float, bytes]]:
        """See `Store.read_journal_rows`."""
        rows = await self._db.read(
            lambda conn: conn.fetch(
                "SELECT seq, kind, time, data FROM journal WHERE run_id = $1 AND seq > $2 "
                "ORDER BY seq LIMIT $3",
                run_id,
                after_seq,
                limit,  # NULL: no limit
            )
        )
        return [tuple(r) for r in rows]

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
        """See `Store.list_runs` (index-driven: ``runs_status_idx``, ``runs_name_idx``,
        ``runs_created_idx`` or, filtered by tags, ``run_tags_search_idx``)."""
        sql, args = list_query(
            limit=limit,
            status=status,
            name=name,
            tags=tags,
            created_after=created_after,
            created_before=created_before,
            after=after,
        )
        rows = await self._db.read(lambda conn: conn.fetch(sql, *args))
        return [run_record(row) for row in rows]

    async def count_runs(
        self, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """See `Store.count_runs` (``runs_status_idx`` covers it)."""
        sql, args = count_query(name=name, tags=tags)
        rows = await self._db.read(lambda conn: conn.fetch(sql, *args))
        return {row["status"]: row["n"] for row in rows}

    async def queue_stats(self, now: float) -> list[QueueStats]:
        """See `Store.queue_stats`."""

        async def read(conn: Any) -> tuple[list[Any], list[Any]]:
            tasks = await conn.fetch(QUEUED_TASKS, now)
            runs = await conn.fetch(WAITING_RUNS, now)
            return [tuple(r) for r in tasks], [tuple(r) for r in runs]

        tasks, runs = await self._db.read(read)
        stats: list[QueueStats] = merge_queue_stats(tasks, runs)
        return stats
