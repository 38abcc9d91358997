"""`Store` schedule operations on SQLite (`durable.schedules`): functions taking the
connection, inside the store's transactions; the store's methods delegate here.

A firing is one ``BEGIN IMMEDIATE`` transaction: the compare-and-set of the schedule's
version and the insert of its runs, so a tick's run exists exactly when its schedule says
it was handled, and two workers racing for one tick cannot both write.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite

from durable.notify import Hub
from durable.store import TOPIC_RUNS, TOPIC_STATUS, TOPIC_TIMERS, NewRun, ScheduleRecord, run_topic

from . import steps as _steps
from . import transact as _tx

__all__ = [
    "SCHEDULE_COLUMNS",
    "Schedules",
    "delete",
    "due",
    "get",
    "list_all",
    "save",
    "schedules_due",
]

T = TypeVar("T")

#: Column list in `ScheduleRecord` field order.
SCHEDULE_COLUMNS = (
    "schedule_id, workflow, queue, input, cron, timezone, overlap, catchup_window, jitter, "
    "paused, next_tick, due_at, buffered, latest, recent, version, created_at, updated_at"
)
_PLACEHOLDERS = ", ".join("?" * 18)

# Not paused, and due by time, or holding ticks while its latest run is no longer open.
_DUE = f"""
SELECT {SCHEDULE_COLUMNS} FROM schedules AS s WHERE s.paused = 0 AND (
    s.due_at <= ? OR (s.buffered <> '[]' AND NOT EXISTS (
        SELECT 1 FROM runs AS r
        WHERE r.workflow_id = s.latest AND r.is_current = 1 AND r.closed_at IS NULL)))
ORDER BY s.due_at LIMIT ?
"""
_NEXT_DUE = "SELECT MIN(due_at) FROM schedules WHERE paused = 0 AND due_at > ?"


def record(row: Sequence[Any]) -> ScheduleRecord:
    """A ``schedules`` row (`SCHEDULE_COLUMNS`) as a `ScheduleRecord`."""
    return ScheduleRecord(
        schedule_id=row[0],
        workflow=row[1],
        queue=row[2],
        input=bytes(row[3]),
        cron=row[4],
        timezone=row[5],
        overlap=row[6],
        catchup_window=row[7],
        jitter=row[8],
        paused=bool(row[9]),
        next_tick=row[10],
        due_at=row[11],
        buffered=tuple(json.loads(row[12])),
        latest=row[13],
        recent=tuple(json.loads(row[14])),
        version=row[15],
        created_at=row[16],
        updated_at=row[17],
    )


def _values(s: ScheduleRecord) -> tuple[Any, ...]:
    return (
        s.schedule_id, s.workflow, s.queue, s.input, s.cron, s.timezone, s.overlap,
        s.catchup_window, s.jitter, int(s.paused), s.next_tick, s.due_at,
        json.dumps(list(s.buffered)), s.latest, json.dumps(list(s.recent)), s.version,
        s.created_at, s.updated_at,
    )  # fmt: skip


def save(
    db: sqlite3.Connection,
    schedule: ScheduleRecord,
    expected_version: int | None,
    runs: Sequence[NewRun],
) -> list[NewRun] | None:
    """`Store.save_schedule` inside a write transaction: the runs it created, or ``None``
    when the compare-and-set failed (nothing written)."""
    if expected_version is None:
        cursor = db.execute(
            f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ({_PLACEHOLDERS}) "
            "ON CONFLICT (schedule_id) DO NOTHING",
            _values(schedule),
        )
    else:
        columns = SCHEDULE_COLUMNS.split(", ")[1:]
        sets = ", ".join(f"{c} = ?" for c in columns)
        cursor = db.execute(
            f"UPDATE schedules SET {sets} WHERE schedule_id = ? AND version = ?",
            (*_values(schedule)[1:], schedule.schedule_id, expected_version),
        )
    if cursor.rowcount != 1:
        return None
    created = []
    for run in runs:
        exists = db.execute(
            "SELECT 1 FROM runs WHERE workflow_id = ? AND is_current = 1", (run.workflow_id,)
        ).fetchone()
        if exists is None:  # a tick's run is created once: the run id is the second guard
            _steps.insert_runs(db, [run])
            created.append(run)
    return created


def get(db: sqlite3.Connection, schedule_id: str) -> ScheduleRecord | None:
    """The schedule, or ``None``."""
    row = db.execute(
        f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE schedule_id = ?", (schedule_id,)
    ).fetchone()
    return record(row) if row is not None else None


def list_all(db: sqlite3.Connection) -> list[ScheduleRecord]:
    """Every schedule, by id."""
    rows = db.execute(f"SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY schedule_id")
    return [record(row) for row in rows.fetchall()]


def delete(db: sqlite3.Connection, schedule_id: str) -> bool:
    """Delete the schedule; whether there was one."""
    return db.execute("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,)).rowcount == 1


def due(
    db: sqlite3.Connection, now: float, limit: int
) -> tuple[list[ScheduleRecord], float | None]:
    """`Store.due_schedules`: the due schedules and the next due time of the others."""
    rows = db.execute(_DUE, (now, limit)).fetchall()
    (next_due,) = db.execute(_NEXT_DUE, (now,)).fetchone()
    return [record(row) for row in rows], next_due


async def schedules_due(db: aiosqlite.Connection, now: float) -> tuple[bool, float | None]:
    """For time skipping (`durable.testing`): whether a schedule is due at ``now``, and
    the next due time of the others, in one hop on an aiosqlite connection (read only)."""

    def read(conn: sqlite3.Connection) -> tuple[bool, float | None]:
        found, next_due = due(conn, now, 1)
        return bool(found), next_due

    return await _tx.call(db, read)


class Schedules:
    """The `Store` schedule methods, mixed into `SQLiteStore` (which provides `hub`,
    `_call` and `_write`)."""

    hub: Hub

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SQLiteStore's

    async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SQLiteStore's

    async def save_schedule(
        self,
        schedule: ScheduleRecord,
        *,
        expected_version: int | None,
        runs: Sequence[NewRun] = (),
    ) -> bool:
        """See `Store.save_schedule`."""
        runs = list(runs)
        created = await self._write(lambda db: save(db, schedule, expected_version, runs))
        if created is None:
            return False
        topics = {TOPIC_TIMERS}
        for run in created:
            topics.update((TOPIC_RUNS, TOPIC_STATUS, run_topic(run.workflow_id)))
        self.hub.notify(topics)
        return True

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """See `Store.get_schedule`."""
        return await self._call(lambda db: get(db, schedule_id))

    async def list_schedules(self) -> list[ScheduleRecord]:
        """See `Store.list_schedules`."""
        return await self._call(list_all)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """See `Store.delete_schedule`."""
        deleted = await self._write(lambda db: delete(db, schedule_id))
        if deleted:
            self.hub.notify([TOPIC_TIMERS])
        return deleted

    async def due_schedules(
        self, now: float, limit: int
    ) -> tuple[list[ScheduleRecord], float | None]:
        """See `Store.due_schedules`."""
        return await self._call(lambda db: due(db, now, limit))
