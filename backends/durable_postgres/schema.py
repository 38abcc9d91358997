"""The PostgreSQL schema, its version, and the migrations that bring a database up to it.

Every table lives in one PostgreSQL schema (``durable`` unless the URL says
``?schema=name``), so several applications, or every test, can share one database.
`migrate` runs on every `PostgresStore.open`: inside one transaction it takes an
advisory lock derived from the schema name (so any number of processes opening an empty
database at once apply each migration exactly once), creates the schema if missing, reads
the version from ``meta`` and applies the missing steps of `MIGRATIONS` in order.
A database newer than this code is refused before anything is changed.

Conventions: times are POSIX seconds in ``double precision`` (the store contract's floats,
no time zone arithmetic in SQL); payloads are ``bytea``; inbox ids come from a
``bigserial`` so they increase in insertion order. There are no foreign keys: rows are
only written by the store, runs are deleted only by retention (`durable_postgres.retention`,
with their rows in every table), and a foreign key check would take a
``FOR KEY SHARE`` lock on the run row that queues every inbox insert behind a step commit.

Indexes (names are asserted by ``tests/test_postgres.py`` against ``EXPLAIN`` output):

- ``runs_current_key``: unique ``(workflow_id) WHERE is_current``, at most one current run.
- ``runs_ready_idx``: ``(queue, created_at) WHERE ready AND closed_at IS NULL AND NOT
  parked``, the claim of runs with work.
- ``runs_lease_idx``: ``(lease_expires_at) WHERE lease_owner IS NOT NULL``, the claim of
  runs whose worker died.
- ``runs_created_idx`` / ``runs_status_idx``: ``list_runs``, newest first.
- ``tasks_queue_idx``: ``(queue, visible_at) WHERE status = 'queued'``, task claims;
  ``tasks_lease_idx``: running tasks whose lease expired; ``tasks_visible_idx``: the
  earliest not-yet-visible task for `fire_timers`.
- ``timers_due_idx``: ``(due_at)``, due timers.
- ``runs_closed_idx``: ``(closed_at) WHERE closed_at IS NOT NULL``, retention's oldest
  closed runs first.
- ``run_tags_search_idx``: ``run_tags (key, value, created_at, run_id)``, searches by tag
  newest first (``run_tags`` is kept in step with ``runs.tags`` by triggers).

A closed run has ``closed_at`` set (and only a closed one), which is what the partial
indexes test instead of listing the closed statuses.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from durable.errors import StoreError
from durable.store import RunRecord, TaskRecord

from . import logs, queries, updates

__all__ = [
    "EXTRA_COLUMNS",
    "EXTRA_INDEXES",
    "EXTRA_TABLES",
    "MIGRATIONS",
    "RUN_COLUMNS",
    "SCHEMA_VERSION",
    "TASK_COLUMNS",
    "ensure_extra_indexes",
    "migrate",
    "prefixed",
    "quote_ident",
    "run_record",
    "tags_json",
    "task_record",
]

logger = logging.getLogger(__name__)

# durable's tables, to tell a schema with them but no version from someone else's.
_TABLES = frozenset({"runs", "journal", "inbox", "tasks", "timers", "published", "workers"})

_V1 = [
    """CREATE TABLE meta (
        key text PRIMARY KEY,
        value text NOT NULL
    )""",
    # fillfactor leaves room on each page so the per-step update of history_length and
    # updated_at (no indexed column changes) can stay a HOT update.
    """CREATE TABLE runs (
        run_id text PRIMARY KEY,
        workflow_id text NOT NULL,
        is_current boolean NOT NULL,
        name text NOT NULL,
        queue text NOT NULL,
        status text NOT NULL,
        input bytea NOT NULL,
        result bytea,
        error bytea,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        closed_at double precision,
        parent_id text,
        parent_run_id text,
        history_length bigint NOT NULL DEFAULT 0,
        ready boolean NOT NULL,
        lease_owner text,
        lease_expires_at double precision,
        parked boolean NOT NULL DEFAULT false,
        problem text,
        continued_to text,
        timeout double precision
    ) WITH (fillfactor = 80)""",
    "CREATE UNIQUE INDEX runs_current_key ON runs (workflow_id) WHERE is_current",
    """CREATE INDEX runs_ready_idx ON runs (queue, created_at)
        WHERE ready AND closed_at IS NULL AND NOT parked""",
    "CREATE INDEX runs_lease_idx ON runs (lease_expires_at) WHERE lease_owner IS NOT NULL",
    "CREATE INDEX runs_created_idx ON runs (created_at DESC)",
    "CREATE INDEX runs_status_idx ON runs (status, created_at DESC)",
    "CREATE INDEX runs_parked_idx ON runs (queue, name) WHERE parked",
    """CREATE TABLE journal (
        run_id text NOT NULL,
        seq bigint NOT NULL,
        kind text NOT NULL,
        time double precision NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
    """CREATE TABLE inbox (
        id bigserial PRIMARY KEY,
        run_id text NOT NULL,
        kind text NOT NULL,
        time double precision NOT NULL,
        data bytea NOT NULL
    )""",
    "CREATE INDEX inbox_run_idx ON inbox (run_id, id)",
    """CREATE TABLE tasks (
        task_id text PRIMARY KEY,
        run_id text NOT NULL,
        workflow_id text NOT NULL,
        seq bigint NOT NULL,
        name text NOT NULL,
        queue text NOT NULL,
        data bytea NOT NULL,
        attempt integer NOT NULL,
        status text NOT NULL,
        visible_at double precision NOT NULL,
        lease_owner text,
        lease_expires_at double precision,
        heartbeat_details bytea,
        cancel_requested boolean NOT NULL DEFAULT false,
        last_error bytea,
        created_at double precision NOT NULL
    )""",
    "CREATE INDEX tasks_queue_idx ON tasks (queue, visible_at) WHERE status = 'queued'",
    "CREATE INDEX tasks_visible_idx ON tasks (visible_at) WHERE status = 'queued'",
    "CREATE INDEX tasks_lease_idx ON tasks (lease_expires_at) WHERE status = 'running'",
    "CREATE INDEX tasks_run_idx ON tasks (run_id)",
    """CREATE TABLE timers (
        run_id text NOT NULL,
        seq bigint NOT NULL,
        due_at double precision NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
    "CREATE INDEX timers_due_idx ON timers (due_at)",
    """CREATE TABLE published (
        workflow_id text NOT NULL,
        key text NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (workflow_id, key)
    )""",
    """CREATE TABLE workers (
        worker_id text PRIMARY KEY,
        queues text[] NOT NULL,
        workflows text[] NOT NULL,
        activities text[] NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at double precision NOT NULL,
        heartbeat_at double precision NOT NULL
    )""",
]

#: Schema steps, oldest first: ``(version, statements)``. A later release appends
#: ``(2, [...])`` and bumps `SCHEMA_VERSION`; never edit a step that has shipped.
MIGRATIONS: list[tuple[int, list[str]]] = [(1, _V1)]

#: Indexes added since a schema version shipped that code of that version can work beside
#: (it neither needs nor minds them): created with a new schema, and on open when missing,
#: without a version bump, so a rolling deploy never makes older processes refuse the
#: database. On an existing table they are built CONCURRENTLY (writes go on meanwhile).
EXTRA_INDEXES: list[tuple[str, str]] = [
    # client.list(name=...) newest first without reading every run of other names.
    ("runs_name_idx", "runs (name, created_at DESC)"),
    # client.prune(): the runs closed longest ago, without reading the open ones.
    ("runs_closed_idx", "runs (closed_at) WHERE closed_at IS NOT NULL"),
    # claims of queued tasks by priority, then due time (durable.limits).
    ("tasks_ready_idx", "tasks (queue, priority DESC, visible_at) WHERE status = 'queued'"),
]
#: Columns added the same way, under the migration lock (``ADD COLUMN`` only touches the
#: catalogue): code that predates one neither reads nor writes it.
EXTRA_COLUMNS: list[tuple[str, str, str]] = [
    # workflow name -> its parameters (JSON), for starts by name (durable.signature).
    ("workers", "signatures", "text"),
    # a run's tags (a JSON object of strings), from client.start(..., tags=...).
    ("runs", "tags", "jsonb"),
    # the W3C traceparent a run's spans descend from (durable.tracing).
    ("runs", "trace", "text"),
    # durable.call(..., key=, priority=): per-key concurrency and claim order (durable.limits).
    ("tasks", "key", "text"),
    ("tasks", "priority", "integer NOT NULL DEFAULT 0"),
]

#: The ``schedules`` table (`EXTRA_TABLES`; read and written by `durable_postgres.schedules`).
SCHEDULES_TABLE = [
    """CREATE TABLE IF NOT EXISTS schedules (
        schedule_id text PRIMARY KEY,
        workflow text NOT NULL,
        queue text NOT NULL,
        input bytea NOT NULL,
        cron text NOT NULL,
        timezone text NOT NULL,
        overlap text NOT NULL,
        catchup_window double precision NOT NULL,
        jitter double precision NOT NULL,
        paused boolean NOT NULL,
        next_tick double precision,
        due_at double precision,
        buffered jsonb NOT NULL,
        latest text,
        recent jsonb NOT NULL,
        version bigint NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS schedules_due_idx ON schedules (due_at) WHERE NOT paused",
]

_RUN_TAGS = [
    """CREATE TABLE IF NOT EXISTS run_tags (
        run_id text NOT NULL,
        key text NOT NULL,
        value text NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (run_id, key)
    )""",
    "CREATE INDEX IF NOT EXISTS run_tags_search_idx ON run_tags (key, value, created_at, run_id)",
    # search_path FROM CURRENT: the function finds this schema's run_tags whatever the
    # search_path of the session that fires it.
    """CREATE OR REPLACE FUNCTION run_tags_sync() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            DELETE FROM run_tags WHERE run_id = OLD.run_id;
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.tags IS NOT NULL THEN
            INSERT INTO run_tags (run_id, key, value, created_at)
            SELECT NEW.run_id, t.key, t.value, NEW.created_at FROM jsonb_each_text(NEW.tags) t
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER run_tags_insert AFTER INSERT ON runs FOR EACH ROW
        WHEN (NEW.tags IS NOT NULL) EXECUTE FUNCTION run_tags_sync()""",
    """CREATE TRIGGER run_tags_update AFTER UPDATE OF tags ON runs FOR EACH ROW
        WHEN (OLD.tags IS DISTINCT FROM NEW.tags) EXECUTE FUNCTION run_tags_sync()""",
    """CREATE TRIGGER run_tags_delete AFTER DELETE ON runs FOR EACH ROW
        WHEN (OLD.tags IS NOT NULL) EXECUTE FUNCTION run_tags_sync()""",
    """INSERT INTO run_tags (run_id, key, value, created_at)
        SELECT r.run_id, t.key, t.value, r.created_at FROM runs r, jsonb_each_text(r.tags) t
        ON CONFLICT DO NOTHING""",
    # Statistics at once, rather than at autovacuum's next look: without them the planner
    # takes a big tag for a rare one.
    "ANALYZE run_tags",
]

#: Tables added the same way: ``(table, statements)``, the statements (``CREATE TABLE IF
#: NOT EXISTS`` and its ``CREATE INDEX IF NOT EXISTS``, unqualified: they run with the
#: schema as search_path) run under the migration lock when the table is missing. Code
#: that predates one never touches it, so no version bump is needed.
EXTRA_TABLES: list[tuple[str, list[str]]] = [
    logs.TABLE,  # step logs (durable.steplogs)
    queries.TABLE,  # queries and their answers (durable.querybox)
    updates.TABLE,  # outcomes of updates (durable.updates)
    ("schedules", SCHEDULES_TABLE),  # durable.schedules
    # The tag index: one row per run and tag, so client.list(tags=...) reads runs newest
    # first by (key, value) instead of testing every run's jsonb. Triggers keep it in step
    # with runs.tags whoever writes the run (a create, a child, a successor, set_tags, a
    # delete; also code that predates the table, during a rolling deploy); the last
    # statement indexes the runs tagged before the table existed, once.
    ("run_tags", _RUN_TAGS),
    # durable.limits: a queue's limits (NULL: none), and its recent starts (the sliding
    # window of its rate limit: one row per claim that started tasks, n of them).
    (
        "queue_limits",
        [
            """CREATE TABLE IF NOT EXISTS queue_limits (
                queue text PRIMARY KEY,
                concurrency integer,
                key_concurrency integer,
                rate integer,
                per double precision,
                updated_at double precision NOT NULL
            )""",
        ],
    ),
    (
        "queue_starts",
        [
            "CREATE TABLE IF NOT EXISTS queue_starts (queue text NOT NULL, "
            "at double precision NOT NULL, n integer NOT NULL)",
            "CREATE INDEX IF NOT EXISTS queue_starts_at_idx ON queue_starts (queue, at)",
        ],
    ),
]

#: The schema version this code reads and writes.
SCHEMA_VERSION = MIGRATIONS[-1][0]


#: Column lists in the field order of the record they become.
RUN_COLUMNS = """workflow_id, run_id, name, queue, status, input, result, error, created_at,
    updated_at, closed_at, parent_id, parent_run_id, history_length, ready, lease_owner,
    lease_expires_at, parked, problem, continued_to, timeout, is_current, tags, trace"""
TASK_COLUMNS = """task_id, run_id, workflow_id, seq, name, queue, data, attempt, status,
    visible_at, lease_owner, lease_expires_at, heartbeat_details, cancel_requested,
    last_error, created_at, key, priority"""


def prefixed(columns: str, alias: str) -> str:
    """``columns`` (a comma-separated list) each qualified with ``alias``."""
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


def tags_json(tags: Mapping[str, str] | None) -> str | None:
    """How ``runs.tags`` is written: a JSON object (jsonb); NULL for none."""
    return json.dumps(dict(tags), sort_keys=True, separators=(",", ":")) if tags else None


def run_record(row: Any) -> RunRecord:
    """A `RunRecord` from a row with `RUN_COLUMNS`."""
    fields = dict(row)
    tags = fields.pop("tags")
    return RunRecord(**fields, tags=json.loads(tags) if tags else {})


def task_record(row: Any) -> TaskRecord:
    """A `TaskRecord` from a row with `TASK_COLUMNS`."""
    return TaskRecord(**dict(row))


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _lock_key(schema: str) -> int:
    # A signed 64-bit advisory lock key per schema: two schemas migrate independently.
    digest = hashlib.sha256(b"durable-flow migrate:" + schema.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def ensure_extra_indexes(conn: Any, schema: str, *, url: str) -> None:
    """Build any of `EXTRA_INDEXES` missing (or left invalid by an interrupted build) on
    ``conn``, outside a transaction. One process builds, the others go on without waiting
    (a session advisory lock, tried, not awaited: a waiter would hold up the build)."""
    q = quote_ident(schema)
    rows = await conn.fetch(
        "SELECT c.relname, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        schema,
    )
    valid = {r["relname"]: r["indisvalid"] for r in rows}
    todo = [(name, d) for name, d in EXTRA_INDEXES if not valid.get(name, False)]
    if not todo:
        return
    key = _lock_key(schema) ^ 1
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
        return  # another process is building them
    try:
        for name, definition in todo:
            logger.info("Building index %s of %s", name, url)
            if name in valid:  # present but invalid: an earlier build was interrupted
                await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {q}.{name}")
            await conn.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {q}.{definition}"
            )
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def _read_version(conn: Any, schema: str, *, url: str) -> int:
    """The schema's version (0 if it has no tables of ours), or `StoreError` naming the
    database and schema when it cannot be read."""
    tables = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
            schema,
        )
    }
    if "meta" not in tables:
        ours = sorted(tables & _TABLES)
        if ours:
            found = ", ".join(ours)
            raise _unreadable(url, schema, f"it has durable's table(s) {found} but no meta table")
        return 0
    value = await conn.fetchval(
        f"SELECT value FROM {quote_ident(schema)}.meta WHERE key = 'schema_version'"
    )
    if value is None:
        raise _unreadable(url, schema, "its meta table has no schema_version row")
    try:
        return int(value)
    except ValueError:
        what = f"its schema_version is {value!r}, not a whole number"
        raise _unreadable(url, schema, what) from None


def _unreadable(url: str, schema: str, what: str) -> StoreError:
    # Every version ever written is a whole number, written with the tables in one
    # transaction: someone changed it, or the schema belongs to another program.
    return StoreError(
        f"Cannot tell which schema version schema {schema!r} of {url} has: {what}. durable "
        "writes the version together with its tables, so something else changed them. "
        "Restore the schema from a backup, or, if it is another program's, give durable its "
        "own with ?schema=name in the URL."
    )


async def migrate(conn: Any, schema: str, *, url: str) -> int:
    """Bring ``schema`` to `SCHEMA_VERSION` on ``conn`` (an asyncpg connection).

    Returns the version found before migrating (0 for an empty schema). Raises
    `StoreError`, having changed nothing, when the database is newer than this code.
    """
    role = await conn.fetchval("SELECT current_user")
    try:
        return await _migrate(conn, schema, url=url)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise StoreError(
            f"Cannot open schema {schema!r} of {url}: role {role!r} may not create or "
            f"change durable's tables there ({exc}). durable creates its schema and "
            "migrates it when a store opens. Open it once with a role that may (the "
            "schema's owner, or one with CREATE on the database), then grant this role "
            "USAGE on the schema, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on "
            "its sequences (SELECT alone for a client that only reads)."
        ) from exc


async def _migrate(conn: Any, schema: str, *, url: str) -> int:
    async with conn.transaction():
        # Held until commit: a second process blocks here, then sees the finished schema.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(schema))
        # Only when missing: CREATE SCHEMA IF NOT EXISTS asks for the right to create one
        # even when it exists, which a role that only uses the schema lacks.
        if not await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        meta = f"{quote_ident(schema)}.meta"
        found = await _read_version(conn, schema, url=url)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"Database {url} has schema version {found}, newer than this "
                f"durable-flow (supports up to {SCHEMA_VERSION}). Upgrade durable-flow "
                "(pip install -U durable-flow) on every worker and client."
            )
        if found == SCHEMA_VERSION:
            # Columns first: a new table's statements may read one (run_tags: runs.tags).
            await _add_missing_columns(conn, schema)
            await _add_missing_tables(conn, schema)
            return found
        # Every statement is schema-qualified by search_path, set for this transaction only.
        await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
        for version, statements in MIGRATIONS:
            if version <= found:
                continue
            logger.info("Migrating %s to schema version %d", url, version)
            for statement in statements:
                await conn.execute(statement)
        if found == 0:  # a new schema: its tables are empty, the extras cost nothing now
            await _add_missing_columns(conn, schema)  # first: an extra index may use one
            for name, definition in EXTRA_INDEXES:
                await conn.execute(f"CREATE INDEX {name} ON {definition}")
        await conn.execute(
            f"INSERT INTO {meta} (key, value) VALUES ('schema_version', $1) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            str(SCHEMA_VERSION),
        )
        await _add_missing_columns(conn, schema)
        await _add_missing_tables(conn, schema)
        return found


async def _add_missing_tables(conn: Any, schema: str) -> None:
    """Create any of `EXTRA_TABLES` the schema lacks (inside the migration transaction)."""
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')",
        schema,
    )
    present = {r["relname"] for r in rows}
    missing = [statements for table, statements in EXTRA_TABLES if table not in present]
    if not missing:
        return
    await conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
    for statements in missing:
        for statement in statements:
            await conn.execute(statement)


async def _add_missing_columns(conn: Any, schema: str) -> None:
    """Add any of `EXTRA_COLUMNS` the schema lacks (a catalogue look first, so the common
    case takes no lock on the table)."""
    rows = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = $1",
        schema,
    )
    present = {(r["table_name"], r["column_name"]) for r in rows}
    for table, column, kind in EXTRA_COLUMNS:
        if (table, column) not in present:
            target = f"{quote_ident(schema)}.{table}"
            await conn.execute(f"ALTER TABLE {target} ADD COLUMN IF NOT EXISTS {column} {kind}")
