"""`Store` schedule operations on PostgreSQL (`durable.schedules`): functions taking a
connection inside the store's transactions; the store's methods delegate here.

A firing is one transaction: the compare-and-set of the schedule's version (an ``UPDATE
... WHERE version = $n``: under READ COMMITTED a concurrent writer waits for the row lock,
then finds the version moved and updates nothing) and the insert of its runs, so two
workers racing for one tick cannot both write.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

from durable.errors import WorkflowAlreadyExists
from durable.store import (
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TIMERS,
    IfExists,
    NewRun,
    RunRecord,
    ScheduleRecord,
    run_topic,
)

from .connection import Database

__all__ = ["SCHEDULE_COLUMNS", "Schedules", "delete", "due", "get", "list_all", "record", "save"]

T = TypeVar("T")

#: Creates one run inside the caller's transaction (`durable_postgres.store._create_one`).
CreateRun = Callable[
    [Any, NewRun, IfExists], Awaitable[tuple[RunRecord, bool] | WorkflowAlreadyExists]
]

#: Column list in `ScheduleRecord` field order.
SCHEDULE_COLUMNS = (
    "schedule_id, workflow, queue, input, cron, timezone, overlap, catchup_window, jitter, "
    "paused, next_tick, due_at, buffered, latest, recent, version, created_at, updated_at"
)
_COLUMNS = SCHEDULE_COLUMNS.split(", ")
_INSERT = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES "
    f"({', '.join(f'${i}' for i in range(1, 19))}) ON CONFLICT (schedule_id) DO NOTHING"
)
_UPDATE = (
    "UPDATE schedules SET "
    + ", ".join(f"{column} = ${i}" for i, column in enumerate(_COLUMNS[1:], start=2))
    + " WHERE schedule_id = $1 AND version = $19"
)
# Not paused, and due by time, or holding ticks while its latest run is no longer open.
_DUE = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules AS s WHERE NOT s.paused AND (
    s.due_at <= $1 OR (s.buffered <> '[]'::jsonb AND NOT EXISTS (
        SELECT 1 FROM runs AS r
        WHERE r.workflow_id = s.latest AND r.is_current AND r.closed_at IS NULL)))
ORDER BY s.due_at LIMIT $2
"""
_NEXT_DUE = "SELECT MIN(due_at) FROM schedules WHERE NOT paused AND due_at > $1"


def record(row: Any) -> ScheduleRecord:
    """A ``schedules`` row as a `ScheduleRecord`."""
    return ScheduleRecord(
        schedule_id=row["schedule_id"],
        workflow=row["workflow"],
        queue=row["queue"],
        input=bytes(row["input"]),
        cron=row["cron"],
        timezone=row["timezone"],
        overlap=row["overlap"],
        catchup_window=row["catchup_window"],
        jitter=row["jitter"],
        paused=row["paused"],
        next_tick=row["next_tick"],
        due_at=row["due_at"],
        buffered=tuple(json.loads(row["buffered"])),
        latest=row["latest"],
        recent=tuple(json.loads(row["recent"])),
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _values(s: ScheduleRecord) -> tuple[Any, ...]:
    return (
        s.schedule_id, s.workflow, s.queue, s.input, s.cron, s.timezone, s.overlap,
        s.catchup_window, s.jitter, s.paused, s.next_tick, s.due_at,
        json.dumps(list(s.buffered)), s.latest, json.dumps(list(s.recent)), s.version,
        s.created_at, s.updated_at,
    )  # fmt: skip


async def save(
    conn: Any,
    schedule: ScheduleRecord,
    expected_version: int | None,
    runs: Sequence[NewRun],
    create: CreateRun,
) -> list[NewRun] | None:
    """`Store.save_schedule` inside a transaction: the runs it created, or ``None`` when
    the compare-and-set failed (nothing written)."""
    if expected_version is None:
        status = await conn.execute(_INSERT, *_values(schedule))
    else:
        status = await conn.execute(_UPDATE, *_values(schedule), expected_version)
    if not status.endswith(" 1"):
        return None
    created = []
    for run in runs:
        result = await create(conn, run, "return")
        if isinstance(result, tuple) and result[1]:
            created.append(run)
    return created


async def get(conn: Any, schedule_id: str) -> ScheduleRecord | None:
    """The schedule, or ``None``."""
    row = await conn.fetchrow(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = $1", schedule_id
    )
    return record(row) if row is not None else None


async def list_all(conn: Any) -> list[ScheduleRecord]:
    """Every schedule, by id."""
    rows = await conn.fetch(f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY schedule_id")
    return [record(row) for row in rows]


async def delete(conn: Any, schedule_id: str) -> bool:
    """Delete the schedule; whether there was one."""
    status = await conn.execute("DELETE FROM schedules WHERE schedule_id = $1", schedule_id)
    return bool(status.endswith(" 1"))


async def due(conn: Any, now: float, limit: int) -> tuple[list[ScheduleRecord], float | None]:
    """`Store.due_schedules`: the due schedules and the next due time of the others."""
    rows = await conn.fetch(_DUE, now, limit)
    next_due = await conn.fetchval(_NEXT_DUE, now)
    return [record(row) for row in rows], next_due


class Schedules:
    """The `Store` schedule methods, mixed into `PostgresStore` (which provides `_db`,
    `_write` and `_create_run`)."""

    _db: Database

    async def _write(self, op: Callable[[Any], Awaitable[tuple[T, Collection[str]]]]) -> T:
        raise NotImplementedError  # PostgresStore's

    _create_run: CreateRun  # one create_run inside the caller's transaction

    async def save_schedule(
        self,
        schedule: ScheduleRecord,
        *,
        expected_version: int | None,
        runs: Sequence[NewRun] = (),
    ) -> bool:
        """See `Store.save_schedule`."""

        async def op(conn: Any) -> tuple[bool, Collection[str]]:
            created = await save(conn, schedule, expected_version, runs, self._create_run)
            if created is None:
                return False, ()
            topics = {TOPIC_TIMERS}
            for run in created:
                topics.update((TOPIC_RUNS, TOPIC_STATUS, run_topic(run.workflow_id)))
            return True, topics

        return await self._write(op)

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """See `Store.get_schedule`."""
        return await self._db.read(lambda conn: get(conn, schedule_id))

    async def list_schedules(self) -> list[ScheduleRecord]:
        """See `Store.list_schedules`."""
        return await self._db.read(list_all)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """See `Store.delete_schedule`."""

        async def op(conn: Any) -> tuple[bool, Collection[str]]:
            deleted = await delete(conn, schedule_id)
            return deleted, (TOPIC_TIMERS,) if deleted else ()

        return await self._write(op)

    async def due_schedules(
        self, now: float, limit: int
    ) -> tuple[list[ScheduleRecord], float | None]:
        """See `Store.due_schedules`."""
        return await self._db.read(lambda conn: due(conn, now, limit))
