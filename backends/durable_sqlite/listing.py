"""The SQL of listing runs for people (`Store.list_runs`, `count_runs`, `queue_stats`):
filters built once, so the list and its counts always filter alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["QUEUED_TASKS", "WAITING_RUNS", "filters"]


def filters(
    *,
    status: str | None = None,
    name: str | None = None,
    tags: Mapping[str, str] | None = None,
    created_after: float | None = None,
    created_before: float | None = None,
    after: str | None = None,
) -> tuple[str, list[Any]]:
    """A ``WHERE`` clause over ``runs`` (empty for no filter) and its parameters."""
    where: list[str] = []
    params: list[Any] = []
    for key, tag in (tags or {}).items():
        where.append(
            "EXISTS (SELECT 1 FROM json_each(runs.tags) AS t WHERE t.key = ? AND t.value = ?)"
        )
        params += [key, tag]
    checks: tuple[tuple[str, str, object], ...] = (
        ("status", "=", status),
        ("name", "=", name),
        ("created_at", ">=", created_after),
        ("created_at", "<", created_before),
    )
    for column, op, value in checks:
        if value is not None:
            where.append(f"{column} {op} ?")
            params.append(value)
    if after is not None:
        # keyset paging: the runs after the given one, newest first
        where.append(
            "(created_at, run_id) < (SELECT created_at, run_id FROM runs WHERE run_id = ?)"
        )
        params.append(after)
    return (f"WHERE {' AND '.join(where)}" if where else ""), params


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
