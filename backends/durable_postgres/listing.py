"""The SQL of listing runs for people (`Store.list_runs`, `count_runs`, `queue_stats`):
filters built once, so the list and its counts always filter alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schema import tags_json

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
    """A ``WHERE`` clause over ``runs`` (empty for no filter) and its parameters ($1...)."""
    clauses: list[str] = []
    args: list[Any] = []
    checks: tuple[tuple[str, object], ...] = (
        ("tags @> ${}::jsonb", tags_json(tags) if tags else None),
        ("created_at >= ${}", created_after),
        ("created_at < ${}", created_before),
        ("status = ${}", status),
        ("name = ${}", name),
        # keyset paging: the runs after the given one, newest first
        ("(created_at, run_id) < (SELECT created_at, run_id FROM runs WHERE run_id = ${})", after),
    )
    for clause, value in checks:
        if value is not None:
            args.append(value)
            clauses.append(clause.format(len(args)))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


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
