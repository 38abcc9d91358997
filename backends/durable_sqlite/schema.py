"""The SQLite schema, its version, the migrations, and the row ↔ record conversions.

Tables follow the logical schema of `durable.store`; SQLite spells booleans as 0/1
integers, times as REAL (POSIX seconds, stored exactly as the floats given), payloads as
BLOB. Inbox ids are ``INTEGER PRIMARY KEY AUTOINCREMENT``, so they only ever increase,
even after the newest item is deleted. There are no foreign keys: only the store writes
these rows, and runs are deleted only by retention (`durable_sqlite.retention`), which
deletes their rows in every table with them.

A run is closed exactly when ``closed_at`` is set, which is what the partial indexes test
(rather than listing the closed statuses). The indexes make every polling query a range
scan over the rows it may return:

- ``runs_current``: unique ``(workflow_id) WHERE is_current = 1``, at most one current run
  per workflow id (what makes concurrent creates race-free).
- ``runs_ready``: ``(queue, created_at) WHERE ready = 1 AND closed_at IS NULL AND parked
  = 0``, `claim_runs` of runs with work.
- ``runs_lease``: ``(lease_expires_at) WHERE lease_owner IS NOT NULL``, runs whose worker
  died.
- ``runs_parked``: ``(queue, name) WHERE parked = 1``, unparking by `register_worker`.
- ``runs_created`` / ``runs_status``: `list_runs`, newest first.
- ``tasks_queue``: ``(queue, visible_at) WHERE status = 'queued'``, `claim_tasks`;
  ``tasks_visible``: the earliest not-yet-visible task for `fire_timers`;
  ``tasks_lease``: running tasks whose lease expired; ``tasks_run``: a run's tasks.
- ``timers_due``: ``(due_at)``, due timers.
- ``runs_closed``: ``(closed_at) WHERE closed_at IS NOT NULL``, retention's oldest closed.
- ``run_tags_search``: ``run_tags (key, value, created_at, run_id)``, searches by tag
  newest first (``run_tags`` is kept in step with ``runs.tags`` by triggers).

`migrate` applies the missing steps of `MIGRATIONS` inside one ``BEGIN IMMEDIATE``
transaction: SQLite has one writer at a time, so processes opening an empty file together
queue up there and each step runs exactly once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiosqlite

from durable.errors import StoreError
from durable.store import InboxItem, JournalEntry, NewRun, RunRecord, TaskRecord, WorkerRecord

from . import logs, queries, updates

__all__ = [
    "EXTRA_COLUMNS",
    "EXTRA_INDEXES",
    "EXTRA_TABLES",
    "INBOX_COLUMNS",
    "MIGRATIONS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TASK_COLUMNS",
    "WORKER_COLUMNS",
    "inbox_item",
    "journal_entry",
    "migrate",
    "pending_record",
    "read_version",
    "run_record",
    "task_record",
    "worker_record",
]

logger = logging.getLogger(__name__)

_V1 = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        workflow_id TEXT NOT NULL,
        is_current INTEGER NOT NULL,
        name TEXT NOT NULL,
        queue TEXT NOT NULL,
        status TEXT NOT NULL,
        input BLOB NOT NULL,
        result BLOB,
        error BLOB,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        closed_at REAL,
        parent_id TEXT,
        parent_run_id TEXT,
        history_length INTEGER NOT NULL DEFAULT 0,
        ready INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        parked INTEGER NOT NULL DEFAULT 0,
        problem TEXT,
        continued_to TEXT,
        timeout REAL
    )""",
    "CREATE UNIQUE INDEX runs_current ON runs (workflow_id) WHERE is_current = 1",
    """CREATE INDEX runs_ready ON runs (queue, created_at)
        WHERE ready = 1 AND closed_at IS NULL AND parked = 0""",
    "CREATE INDEX runs_lease ON runs (lease_expires_at) WHERE lease_owner IS NOT NULL",
    "CREATE INDEX runs_parked ON runs (queue, name) WHERE parked = 1",
    "CREATE INDEX runs_created ON runs (created_at)",
    "CREATE INDEX runs_status ON runs (status, created_at)",
    """CREATE TABLE journal (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        time REAL NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
    """CREATE TABLE inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        time REAL NOT NULL,
        data BLOB NOT NULL
    )""",
    "CREATE INDEX inbox_run ON inbox (run_id, id)",
    """CREATE TABLE tasks (
        task_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        workflow_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        queue TEXT NOT NULL,
        data BLOB NOT NULL,
        attempt INTEGER NOT NULL,
        status TEXT NOT NULL,
        visible_at REAL NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        heartbeat_details BLOB,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        last_error BLOB,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX tasks_queue ON tasks (queue, visible_at) WHERE status = 'queued'",
    "CREATE INDEX tasks_visible ON tasks (visible_at) WHERE status = 'queued'",
    "CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'running'",
    "CREATE INDEX tasks_run ON tasks (run_id)",
    """CREATE TABLE timers (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        due_at REAL NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
    "CREATE INDEX timers_due ON timers (due_at)",
    """CREATE TABLE published (
        workflow_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        PRIMARY KEY (workflow_id, key)
    )""",
    """CREATE TABLE workers (
        worker_id TEXT PRIMARY KEY,
        queues TEXT NOT NULL,
        workflows TEXT NOT NULL,
        activities TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL
    )""",
)

#: Schema steps, oldest first: ``(version, statements)``. A later release appends
#: ``(2, (...))`` and thereby bumps `SCHEMA_VERSION`; never edit a step that has shipped.
MIGRATIONS: list[tuple[int, tuple[str, ...]]] = [(1, _V1)]

#: Indexes added since a schema version shipped that code of that version can work beside:
#: created if missing on open, without a version bump, so a rolling deploy never makes
#: older processes refuse the file.
EXTRA_INDEXES: tuple[tuple[str, str], ...] = (
    # client.list(name=...) newest first without reading every run of other names.
    ("runs_name", "runs (name, created_at)"),
    # client.prune(): the runs closed longest ago, without reading the open ones.
    ("runs_closed", "runs (closed_at) WHERE closed_at IS NOT NULL"),
    # claims of queued tasks by priority, then due time (durable.limits).
    ("tasks_ready", "tasks (queue, priority DESC, visible_at) WHERE status = 'queued'"),
)
#: Columns added the same way (``ALTER TABLE ... ADD COLUMN`` when missing): code that
#: predates one neither reads nor writes it.
EXTRA_COLUMNS: tuple[tuple[str, str, str], ...] = (
    # workflow name -> its parameters (JSON), for starts by name (durable.signature).
    ("workers", "signatures", "TEXT"),
    # a run's tags (a JSON object of strings), from client.start(..., tags=...).
    ("runs", "tags", "TEXT"),
    # the W3C traceparent a run's spans descend from (durable.tracing).
    ("runs", "trace", "TEXT"),
    # durable.call(..., key=, priority=): per-key concurrency and claim order (durable.limits).
    ("tasks", "key", "TEXT"),
    ("tasks", "priority", "INTEGER NOT NULL DEFAULT 0"),
)

#: The ``schedules`` table (`EXTRA_TABLES`; read and written by `durable_sqlite.schedules`).
SCHEDULES_TABLE = (
    """CREATE TABLE IF NOT EXISTS schedules (
        schedule_id TEXT PRIMARY KEY,
        workflow TEXT NOT NULL,
        queue TEXT NOT NULL,
        input BLOB NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        overlap TEXT NOT NULL,
        catchup_window REAL NOT NULL,
        jitter REAL NOT NULL,
        paused INTEGER NOT NULL,
        next_tick REAL,
        due_at REAL,
        buffered TEXT NOT NULL,
        latest TEXT,
        recent TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS schedules_due ON schedules (due_at) WHERE paused = 0",
)

_RUN_TAGS = (
    """CREATE TABLE IF NOT EXISTS run_tags (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS run_tags_search ON run_tags (key, value, created_at, run_id)",
    """CREATE TRIGGER IF NOT EXISTS run_tags_insert AFTER INSERT ON runs
        WHEN new.tags IS NOT NULL BEGIN
        INSERT OR REPLACE INTO run_tags (run_id, key, value, created_at)
        SELECT new.run_id, t.key, t.value, new.created_at FROM json_each(new.tags) AS t;
    END""",
    """CREATE TRIGGER IF NOT EXISTS run_tags_update AFTER UPDATE OF tags ON runs BEGIN
        DELETE FROM run_tags WHERE run_id = old.run_id;
        INSERT INTO run_tags (run_id, key, value, created_at)
        SELECT new.run_id, t.key, t.value, new.created_at FROM json_each(new.tags) AS t;
    END""",
    """CREATE TRIGGER IF NOT EXISTS run_tags_delete AFTER DELETE ON runs
        WHEN old.tags IS NOT NULL BEGIN
        DELETE FROM run_tags WHERE run_id = old.run_id;
    END""",
    """INSERT OR IGNORE INTO run_tags (run_id, key, value, created_at)
        SELECT runs.run_id, t.key, t.value, runs.created_at
        FROM runs, json_each(runs.tags) AS t WHERE runs.tags IS NOT NULL""",
)

#: Tables added the same way: ``(table, statements)``, the statements (``CREATE TABLE IF
#: NOT EXISTS`` and its ``CREATE INDEX IF NOT EXISTS``) run on open when the table is
#: missing. Code that predates one never touches it, so no version bump is needed.
EXTRA_TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    logs.TABLE,  # step logs (durable.steplogs)
    queries.TABLE,  # queries and their answers (durable.querybox)
    updates.TABLE,  # outcomes of updates (durable.updates)
    ("schedules", SCHEDULES_TABLE),  # durable.schedules
    # The tag index: one row per run and tag, so client.list(tags=...) reads runs newest
    # first by (key, value) instead of testing every run's JSON. Triggers keep it in step
    # with runs.tags whoever writes the run (a create, a child, a successor, set_tags, a
    # delete; also code that predates the table, during a rolling deploy); the last
    # statement indexes the runs tagged before the table existed, once.
    ("run_tags", _RUN_TAGS),
    # durable.limits: a queue's limits (NULL: none), and its recent starts (the sliding
    # window of its rate limit: one row per claim that started tasks, n of them).
    (
        "queue_limits",
        (
            """CREATE TABLE IF NOT EXISTS queue_limits (
                queue TEXT PRIMARY KEY,
                concurrency INTEGER,
                key_concurrency INTEGER,
                rate INTEGER,
                per REAL,
                updated_at REAL NOT NULL
            )""",
        ),
    ),
    (
        "queue_starts",
        (
            "CREATE TABLE IF NOT EXISTS queue_starts (queue TEXT NOT NULL, at REAL NOT NULL, "
            "n INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS queue_starts_at ON queue_starts (queue, at)",
        ),
    ),
)

#: The schema version this code reads and writes.
SCHEMA_VERSION = MIGRATIONS[-1][0]

# durable's tables, to tell a database with them but no version from someone else's.
_TABLES = frozenset({"runs", "journal", "inbox", "tasks", "timers", "published", "workers"})


async def read_version(conn: aiosqlite.Connection, name: str) -> int:
    """The database's schema version; 0 for an empty file.

    Raises `StoreError` naming the file ``name`` when the version is unreadable: ``meta``
    without a whole-number ``schema_version`` row, or durable's tables without ``meta``.
    """
    rows = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    tables = {row[0] for row in rows}
    if "meta" not in tables:
        ours = sorted(tables & _TABLES)
        if ours:
            found = ", ".join(ours)
            raise _unreadable(name, f"it has durable's table(s) {found} but no meta table")
        return 0
    rows = await conn.execute_fetchall("SELECT value FROM meta WHERE key = 'schema_version'")
    rows = list(rows)
    if not rows:
        raise _unreadable(name, "its meta table has no schema_version row")
    value = rows[0][0]
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _unreadable(name, f"its schema_version is {value!r}, not a whole number") from None


def _unreadable(name: str, what: str) -> StoreError:
    # Every version ever written is a whole number, written with the tables in one
    # transaction: this file was damaged, or edited by hand, or belongs to another program.
    return StoreError(
        f"Cannot tell which schema version the database {name!r} has: {what}. durable writes "
        "the version together with its tables, so the file was damaged or changed by "
        "something else. Restore it from a backup, or if it is another program's database, "
        "point the URL at a new file."
    )


def _too_new(found: int, name: str) -> StoreError:
    return StoreError(
        f"Database {name} has schema version {found}, newer than this durable-flow "
        f"(supports up to {SCHEMA_VERSION}). Upgrade durable-flow (pip install -U "
        "durable-flow) on every worker and client."
    )


async def migrate(conn: aiosqlite.Connection, name: str) -> int:
    """Bring the database to `SCHEMA_VERSION`; return the version found (0 if empty).

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises `StoreError`,
    having changed nothing, when the database is newer than this code.
    """
    # A cheap look first, so a too-new database is refused without taking the write lock.
    found = await read_version(conn, name)
    if found > SCHEMA_VERSION:
        raise _too_new(found, name)
    if found == SCHEMA_VERSION:
        present = {
            row[0]
            for row in await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'index'"
            )
        }
        if (
            all(name in present for name, _ in EXTRA_INDEXES)
            and not await _missing_tables(conn)
            and not await _missing_columns(conn)
        ):
            return found
    await conn.execute("BEGIN IMMEDIATE")
    try:
        found = await read_version(conn, name)  # another process may have migrated meanwhile
        if found > SCHEMA_VERSION:
            raise _too_new(found, name)
        for version, statements in MIGRATIONS:
            if version <= found:
                continue
            logger.info("Migrating %s to schema version %d", name, version)
            for statement in statements:
                await conn.execute(statement)
        # Columns first: an extra index or table may use an extra column.
        for table, column, kind in await _missing_columns(conn):
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for index, definition in EXTRA_INDEXES:
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {index} ON {definition}")
        # Columns first: a new table's statements may read one (run_tags reads runs.tags).
        for table, column, kind in await _missing_columns(conn):
            await conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for _table, statements in await _missing_tables(conn):
            for statement in statements:
                await conn.execute(statement)
        await conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        await conn.rollback()
        raise
    await conn.commit()
    return found


async def _missing_tables(conn: aiosqlite.Connection) -> list[tuple[str, tuple[str, ...]]]:
    rows = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    present = {row[0] for row in rows}
    return [(table, statements) for table, statements in EXTRA_TABLES if table not in present]


async def _missing_columns(conn: aiosqlite.Connection) -> list[tuple[str, str, str]]:
    missing = []
    for table, column, kind in EXTRA_COLUMNS:
        rows = await conn.execute_fetchall(f"SELECT name FROM pragma_table_info('{table}')")
        if column not in {row[0] for row in rows}:
            missing.append((table, column, kind))
    return missing


# ---- rows ↔ records ----------------------------------------------------------------------

#: Column lists in the field order of the record they become.
RUN_COLUMNS = (
    "workflow_id, run_id, name, queue, status, input, result, error, created_at, "
    "updated_at, closed_at, parent_id, parent_run_id, history_length, ready, lease_owner, "
    "lease_expires_at, parked, problem, continued_to, timeout, is_current, tags, trace"
)
TASK_COLUMNS = (
    "task_id, run_id, workflow_id, seq, name, queue, data, attempt, status, visible_at, "
    "lease_owner, lease_expires_at, heartbeat_details, cancel_requested, last_error, created_at, "
    "key, priority"
)
INBOX_COLUMNS = "id, run_id, kind, time, data"
WORKER_COLUMNS = (
    "worker_id, queues, workflows, activities, host, pid, started_at, heartbeat_at, signatures"
)


def run_record(row: Any) -> RunRecord:
    """A `RunRecord` from a row selected with `RUN_COLUMNS`."""
    return RunRecord(
        workflow_id=row[0],
        run_id=row[1],
        name=row[2],
        queue=row[3],
        status=row[4],
        input=row[5],
        result=row[6],
        error=row[7],
        created_at=row[8],
        updated_at=row[9],
        closed_at=row[10],
        parent_id=row[11],
        parent_run_id=row[12],
        history_length=row[13],
        ready=bool(row[14]),
        lease_owner=row[15],
        lease_expires_at=row[16],
        parked=bool(row[17]),
        problem=row[18],
        continued_to=row[19],
        timeout=row[20],
        is_current=bool(row[21]),
        tags=json.loads(row[22]) if row[22] else {},
        trace=row[23],
    )


def task_record(row: Any, status: str | None = None) -> TaskRecord:
    """A `TaskRecord` from a row selected with `TASK_COLUMNS` (``status`` overrides)."""
    return TaskRecord(
        task_id=row[0],
        run_id=row[1],
        workflow_id=row[2],
        seq=row[3],
        name=row[4],
        queue=row[5],
        data=row[6],
        attempt=row[7],
        status=row[8] if status is None else status,
        visible_at=row[9],
        lease_owner=row[10],
        lease_expires_at=row[11],
        heartbeat_details=row[12],
        cancel_requested=bool(row[13]),
        last_error=row[14],
        created_at=row[15],
        key=row[16],
        priority=row[17],
    )


def inbox_item(row: Any) -> InboxItem:
    """An `InboxItem` from a row selected with `INBOX_COLUMNS`."""
    return InboxItem(id=row[0], run_id=row[1], kind=row[2], time=row[3], data=row[4])


def journal_entry(row: Any) -> JournalEntry:
    """A `JournalEntry` from ``(seq, kind, time, data)``."""
    return JournalEntry(seq=row[0], kind=row[1], time=row[2], data=row[3])


def worker_record(row: Any) -> WorkerRecord:
    """A `WorkerRecord` from a row selected with `WORKER_COLUMNS` (lists stored as JSON)."""
    return WorkerRecord(
        worker_id=row[0],
        queues=tuple(json.loads(row[1])),
        workflows=tuple(json.loads(row[2])),
        activities=tuple(json.loads(row[3])),
        host=row[4],
        pid=row[5],
        started_at=row[6],
        heartbeat_at=row[7],
        signatures=json.loads(row[8]) if row[8] else {},
    )


def pending_record(run: NewRun) -> RunRecord:
    """The `RunRecord` that inserting ``run`` as new (pending, ready, current) stores."""
    return RunRecord(
        workflow_id=run.workflow_id,
        run_id=run.run_id,
        name=run.name,
        queue=run.queue,
        status="pending",
        input=run.input,
        result=None,
        error=None,
        created_at=run.created_at,
        updated_at=run.created_at,
        closed_at=None,
        parent_id=run.parent_id,
        parent_run_id=run.parent_run_id,
        history_length=0,
        ready=True,
        lease_owner=None,
        lease_expires_at=None,
        parked=False,
        problem=None,
        continued_to=None,
        timeout=run.timeout,
        is_current=True,
        tags=dict(run.tags or {}),
        trace=run.trace,
    )
