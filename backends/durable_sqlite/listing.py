"""The SQL of listing runs for people (`Store.list_runs`, `count_runs`, `queue_stats`):
filters built once, so the list and its counts always filter alike.

A tag filter reads the tag index (``run_tags``, kept in step with ``runs.tags`` by
triggers: see `durable_sqlite.schema`): the first tag given drives the scan, newest first
along ``run_tags_search`` (key, value, created_at, run_id), and each further tag is one
primary-key probe per run found. ``CROSS JOIN`` makes SQLite keep that order (the index
first, then the run row by its key) rather than scan runs and test every one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from .schema import RUN_COLUMNS

__all__ = [
    "COUNT_BY_INDEX",
    "QUEUED_TASKS",
    "WAITING_RUNS",
    "count_query",
    "count_runs",
    "filters",
    "list_query",
]

_COLUMNS = ", ".join(f"runs.{c.strip()}" for c in RUN_COLUMNS.split(","))


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
    given), its parameters, and the table alias whose ``created_at, run_id`` order it."""
    where: list[str] = []
    params: list[Any] = []
    source, by = "FROM runs", "runs"
    for i, (key, tag) in enumerate((tags or {}).items()):
        if i == 0:
            source, by = "FROM run_tags AS t0 CROSS JOIN runs ON runs.run_id = t0.run_id", "t0"
            where.append("t0.key = ? AND t0.value = ?")
        else:
            where.append(
                f"EXISTS (SELECT 1 FROM run_tags AS t{i} WHERE t{i}.run_id = runs.run_id "
                f"AND t{i}.key = ? AND t{i}.value = ?)"
            )
        params += [key, tag]
    checks: tuple[tuple[str, str, object], ...] = (
        ("runs.status", "=", status),
        ("runs.name", "=", name),
        (f"{by}.created_at", ">=", created_after),
        (f"{by}.created_at", "<", created_before),
    )
    for column, op, value in checks:
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    if after is not None:
        # keyset paging: the runs after the given one, newest first
        where.append(
            f"({by}.created_at, {by}.run_id) < "
            "(SELECT created_at, run_id FROM runs WHERE run_id = ?)"
        )
        params.append(after)
    return source + (f" WHERE {' AND '.join(where)}" if where else ""), params, by


def list_query(*, limit: int, **filtering: Any) -> tuple[str, list[Any]]:
    """The ``SELECT`` of `Store.list_runs` (`RUN_COLUMNS`, newest first) and its
    parameters; ``filtering`` as `filters` takes it."""
    source, params, by = filters(**filtering)
    sql = f"SELECT {_COLUMNS} {source} ORDER BY {by}.created_at DESC, {by}.run_id DESC LIMIT ?"
    return sql, [*params, limit]


def count_query(**filtering: Any) -> tuple[str, list[Any]]:
    """The ``SELECT status, count`` of `Store.count_runs` through the tag index, and its
    parameters (see `count_runs` for when it is not the way)."""
    source, params, _ = filters(**filtering)
    return f"SELECT runs.status, COUNT(*) {source} GROUP BY runs.status", params


COUNT_BY_INDEX = 10_000  # most runs of the first tag counted through the index (see below)


def count_runs(
    conn: sqlite3.Connection, *, name: str | None, tags: Mapping[str, str] | None
) -> dict[str, int]:
    """`Store.count_runs` on ``conn``. Counting through the tag index costs a lookup of
    the run row per run the first tag has: far less than reading every run for a rare tag,
    several times more for a tag most runs have. So the index rows of the first tag are
    counted first, up to `COUNT_BY_INDEX`; past that every run is read and its tags tested
    (what a count cost before the index: about 60 ms per 100,000 runs)."""
    if tags:
        key, value = next(iter(tags.items()))
        probe = "SELECT COUNT(*) FROM (SELECT 1 FROM run_tags WHERE key = ? AND value = ? LIMIT ?)"
        many = conn.execute(probe, (key, value, COUNT_BY_INDEX + 1)).fetchone()[0]
        if many > COUNT_BY_INDEX:
            where = [
                "EXISTS (SELECT 1 FROM json_each(runs.tags) AS t WHERE t.key = ? AND t.value = ?)"
            ] * len(tags)
            params: list[Any] = [x for pair in tags.items() for x in pair]
            if name is not None:
                where.append("runs.name = ?")
                params.append(name)
            sql = f"SELECT status, COUNT(*) FROM runs WHERE {' AND '.join(where)} GROUP BY status"
            return {str(row[0]): int(row[1]) for row in conn.execute(sql, params)}
    sql, params = count_query(name=name, tags=tags)
    return {str(row[0]): int(row[1]) for row in conn.execute(sql, params)}


# Per queue: due tasks, since when the oldest is due, tasks delayed (params: now x3).
QUEUED_TASKS = (
    "SELECT queue, SUM(visible_at <= ?), MIN(CASE WHEN visible_at <= ? THEN visible_at END), "
    "SUM(visible_at > ?) FROM tasks WHERE status = 'queued' GROUP BY queue"
)
# Per queue: open runs a worker could claim now, and the oldest's last change (params: now).
WAITING_RUNS = (
    "SELECT queue, COUNT(*), MIN(updated_at) FROM runs WHERE closed_at IS NULL AND "
    "parked = 0 AND ((ready = 1 AND lease_owner IS NULL) OR "
    "(lease_owner IS NOT NULL AND lease_expires_at <= ?)) GROUP BY queue"
)
