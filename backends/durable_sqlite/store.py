"""`SQLiteStore`: the storage contract on one SQLite file, shared by processes on one machine.

URL: ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``, optionally with
``?synchronous=full`` (the default: every commit is fsynced before it returns, so a
committed step survives a power cut) or ``?synchronous=normal`` (WAL is synced only at
checkpoints: a commit survives the process dying but the last ones may be lost with the
machine; several times faster on slow disks). Claims always commit as ``normal`` does
(`durable_sqlite.transact.transaction` says why that is safe). With ``full``, an
attempt's end (`finish_task`) commits as ``normal`` too, wakes its run's worker, then
syncs the log before it returns (`SQLiteStore._sync_log`): the worker steps while the
disk writes, and the end's caller hears back only once it is durable. ``sqlite:///:memory:`` is
refused: workers and clients are separate connections, and they must share a file.

Schema: see `durable_sqlite.schema` (tables, indexes, migrations).

Concurrency model:

- **Across processes** SQLite allows one writer at a time. The file is in WAL mode, so
  readers never block the writer nor it them. Every write transaction starts with
  ``BEGIN IMMEDIATE``: it takes the write lock up front (waiting up to `BUSY_TIMEOUT`),
  which is what makes "read, decide, write" race-free across processes (two claims cannot
  both pick one run, one timer fires once) and avoids the deadlock of two readers both
  upgrading to writers.
- **Within a store** there is one aiosqlite connection (one database thread), and each
  operation is one function run whole on that thread: one thread hop per read, one per
  transaction, ``BEGIN IMMEDIATE`` to ``COMMIT`` (see `durable_sqlite.transact`). The
  thread runs them one at a time, in order, so the statements of concurrent coroutines
  never interleave inside a transaction and a read never sees another coroutine's
  uncommitted writes; a cancelled caller's transaction still ends, committed or rolled
  back, before the next operation starts.
- **Wake-ups**: after a commit the store notifies its in-process `Hub` (shared by every
  store of this file in this process): a waiter in this process wakes from that alone,
  with no query in between. Commits by other processes are seen by `wait` polling
  ``PRAGMA data_version`` while it waits for work: first after `POLL_FIRST`, the delay
  doubling up to `POLL_INTERVAL` while nothing changes, so a busy neighbour is noticed
  within milliseconds and an idle wait costs about 20 checks a second. Where the other
  processes ring this one's doorbell (`durable_sqlite.doorbell`) the ring wakes the wait,
  and the first check comes only after `POLL_INTERVAL`: a neighbour's commits that concern
  no waiter here (its claims) no longer cost a query each. Waits on a
  workflow's topic (``result()``, ``read()``) share one watcher task per store: while any
  are waiting it checks ``data_version`` the same way and, when another connection has
  committed, reads the watched workflows' current runs in the same hop and notifies
  those whose (run, status, journal length) changed since this store last saw them (in
  that query or in `get_run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sqlite3
from collections.abc import Callable, Collection, Sequence
from typing import Any, Literal, TypeVar

import aiosqlite

from durable.errors import StepDataError, StoreError, WorkflowAlreadyExists, WorkflowNotFound
from durable.grouping import Grouped
from durable.notify import hub_for
from durable.store import (
    CLOSED_STATUSES,
    TOPIC_LIMITS,
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    ClaimedRun,
    IfExists,
    InboxItem,
    JournalEntry,
    NewRun,
    QueueLimits,
    RunExtras,
    RunRecord,
    StepCommit,
    Store,
    TaskOutcome,
    TaskRecord,
    redact_url,
    run_topic,
)

from . import claims as _claims
from . import doorbell as _doorbell
from . import guard as _guard
from . import limits as _limits
from . import retention as _retention
from . import steps as _steps
from . import transact as _tx
from .logs import Logs
from .opening import bind_plainly, check_directory, enable_wal, parse_url
from .queries import QueryRows
from .reading import Listing
from .schedules import Schedules
from .schema import (
    INBOX_COLUMNS,
    RUN_COLUMNS,
    TASK_COLUMNS,
    inbox_item,
    journal_entry,
    migrate,
    pending_record,
    read_version,
    run_record,
    task_record,
)
from .steering import Steering
from .updates import Updates
from .wakeups import POLL_FIRST, POLL_INTERVAL, Wakeups, _Seen, local_writes
from .workers import WORKER_GONE_SECONDS, Registry

__all__ = ["BUSY_TIMEOUT", "POLL_FIRST", "POLL_INTERVAL", "WORKER_GONE_SECONDS", "SQLiteStore"]

logger = logging.getLogger(__name__)

# Driver errors a commit raises on what a step holds, not on the database being out of reach.
_DATA_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
)
BUSY_TIMEOUT = 10.0  # seconds a transaction waits for another process's write lock
FINISH_BATCH = 500  # most finish_task calls one transaction takes (see finish_task)

T = TypeVar("T")

# What SQLite calls to sync a file at commit on Linux (fsync where there is no fdatasync).
_sync_file: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class SQLiteStore(Listing, Logs, QueryRows, Updates, Wakeups, Schedules, Steering, Registry, Store):
    """The `Store` for one SQLite file.

        async with SQLiteStore("sqlite:///app.db") as store:
            run, created = await store.create_run(new_run, if_exists="return")

    Users reach it through ``durable.connect("sqlite:///app.db")``; see the module
    docstring for the URL options and the concurrency model.
    """

    def __init__(self, url: str) -> None:
        self.url = redact_url(url)  # as messages show it: no secret, even one given by mistake
        self.path, self._synchronous = parse_url(url)
        self.hub = hub_for(os.path.realpath(self.path))
        self._db: aiosqlite.Connection | None = None
        self._file: _guard.FileIdentity | None = None  # notices the file deleted or replaced
        self._state: Literal["new", "open", "closed"] = "new"
        # data_version read at the start of the last query feeding each work topic: a wait
        # on that topic returns once another process has committed since.
        self._seen: dict[str, int] = {}
        # Workflow topics: waiters per workflow id, the state last seen of each, and the
        # task that watches for other processes' commits while anyone waits.
        self._watched: dict[str, int] = {}
        self._newly_watched = False  # the watcher must look even if nothing changed since
        self._observed: dict[str, _Seen] = {}
        self._local = local_writes(self.hub)  # what this process's steps wrote, per workflow
        self._watcher: asyncio.Task[None] | None = None
        # finish_task calls written together (see finish_task).
        self._finishes = Grouped(self._finish_group, FINISH_BATCH)
        self._bell: _doorbell.Doorbell | None = None  # its process's doorbell of the file
        self._wal: int | None = None  # a descriptor of the -wal file, for `_sync_log`
        self._wal_path = os.path.abspath(self.path) + "-wal"
        self._syncing = 0  # `_sync_log` calls under way (the last closes ``_wal`` late)

    # ---- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open the file (creating it), switch it to WAL, and migrate the schema."""
        if self._state != "new":
            raise StoreError(
                f"Cannot open this store of {self.url} twice: it is {self._state}. "
                "Create a new one with durable.store.open_store(url)."
            )
        check_directory(self.path)
        bind_plainly()
        _guard.create_private(self.path)
        _guard.check_writable(self.path)
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            # aiosqlite stops its thread in the background and reports back to this loop:
            # let it, so it does not find the loop closed.
            await asyncio.sleep(0.01)
            raise StoreError(f"Cannot open the SQLite database {self.path!r}: {exc}.") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            try:
                await read_version(db, self.path)  # fails here if the file is not a database
                await db.execute_fetchall("SELECT json_array()")
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"Cannot use {self.path!r} as a durable database: {exc}. Is it an SQLite "
                    "file (version 3.38 or later, with the JSON functions)?"
                ) from exc
            await db.execute(f"PRAGMA synchronous = {self._synchronous.upper()}")
            await migrate(db, self.path)  # refuses a newer schema before changing anything
            await enable_wal(db, BUSY_TIMEOUT)
            file = _guard.FileIdentity(self.path)
        except BaseException:
            await db.close()
            raise
        self._db, self._file = db, file
        self._state = "open"
        self._bell = _doorbell.attach(self.hub, self.path)

    async def aclose(self) -> None:
        """Close the connection. Idempotent."""
        if self._bell is not None:
            self._bell = None
            _doorbell.detach(self.hub)
        self._state = "closed"  # no new watcher from here on
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            if watcher.get_loop() is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        db, self._db = self._db, None
        if db is not None:
            await db.close()  # after the operations already queued on its thread
        if not self._syncing:
            self._close_wal()

    def _conn(self) -> aiosqlite.Connection:
        if self._db is None:
            if self._state == "closed":
                raise StoreError(
                    f"This store of {self.url} has been closed; open a new one with "
                    "durable.store.open_store(url)."
                )
            raise StoreError(
                f"This store of {self.url} is not open yet: use 'async with store:' or "
                "'await store.open()' first."
            )
        if self._file is not None:
            self._file.check()  # deleted or replaced: every operation refuses from here on
        return self._db

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the database thread, in one hop: a read, or a whole
        transaction (`_write`). Words the errors of a file locked or read-only."""
        db = self._conn()
        try:
            return await _tx.call(db, fn)
        except sqlite3.OperationalError as exc:
            if _guard.is_read_only(exc):
                raise _guard.read_only_error(self.path, exc) from exc
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise StoreError(
                f"{self.path!r} stayed locked by another process for {BUSY_TIMEOUT:g} s "
                f"({exc}); is a process stuck inside a write transaction?"
            ) from exc

    async def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``body`` in a ``BEGIN IMMEDIATE`` transaction, committed if it returns, rolled
        back if it raises, in one hop (see `durable_sqlite.transact` on cancellation)."""
        return await self._call(lambda conn: _tx.transaction(conn, body))

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return await self._call(lambda conn: conn.execute(sql, params).fetchall())

    # ---- client side -------------------------------------------------------------------

    async def create_runs(
        self, runs: Sequence[tuple[NewRun, IfExists]]
    ) -> list[tuple[RunRecord, bool] | WorkflowAlreadyExists]:
        """Create runs as current, pending and ready, in one transaction; see
        `Store.create_runs`."""
        topics: set[str] = set()
        runs = list(runs)  # the body runs later on the database thread: a snapshot

        def body(db: sqlite3.Connection) -> list[tuple[RunRecord, bool] | WorkflowAlreadyExists]:
            results: list[tuple[RunRecord, bool] | WorkflowAlreadyExists] = []
            for run, if_exists in runs:
                rows = db.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ? AND is_current = 1",
                    (run.workflow_id,),
                ).fetchall()
                if rows:
                    existing = run_record(rows[0])
                    if if_exists == "error":
                        results.append(
                            WorkflowAlreadyExists(
                                f"Workflow {run.workflow_id!r} already exists (run "
                                f"{existing.run_id!r}, {existing.status}). Pass "
                                "if_exists='return' to get its handle, or 'restart' to start it "
                                "again once it has closed."
                            )
                        )
                        continue
                    if if_exists == "return" or existing.status not in CLOSED_STATUSES:
                        results.append((existing, False))
                        continue
                    db.execute(
                        "UPDATE runs SET is_current = 0 WHERE run_id = ?", (existing.run_id,)
                    )
                    # A new execution: the old one's published values and update outcomes
                    # are not its own.
                    db.execute("DELETE FROM published WHERE workflow_id = ?", (run.workflow_id,))
                    db.execute("DELETE FROM updates WHERE workflow_id = ?", (run.workflow_id,))
                _steps.insert_runs(db, [run])
                results.append((pending_record(run), True))
                topics.update((TOPIC_RUNS, TOPIC_STATUS, run_topic(run.workflow_id)))
            return results

        results = await self._write(body)
        if topics:
            self.hub.notify(topics)
        return results

    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        """The workflow's current run, or its run ``run_id``; ``None`` if there is none."""
        if run_id is None:
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = ? AND is_current = 1"
            rows = await self._read(sql, (workflow_id,))
            run = run_record(rows[0]) if rows else None
            self._observe(
                workflow_id, (run.run_id, run.status, run.history_length) if run else None
            )
            return run
        else:
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ? AND workflow_id = ?"
            rows = await self._read(sql, (run_id, workflow_id))
        return run_record(rows[0]) if rows else None

    async def read_journal(self, run_id: str, after_seq: int = 0) -> list[JournalEntry]:
        """The run's journal entries after ``after_seq``, in order."""
        rows = await self._read(
            "SELECT seq, kind, time, data FROM journal WHERE run_id = ? AND seq > ? ORDER BY seq",
            (run_id, after_seq),
        )
        return [journal_entry(row) for row in rows]

    async def read_extras(self, workflow_id: str, run_id: str) -> RunExtras:
        """The workflow's published values, the run's activity tasks and pending timers."""

        def read(db: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]]:
            published = db.execute(
                "SELECT key, value FROM published WHERE workflow_id = ?", (workflow_id,)
            ).fetchall()
            tasks = db.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            timers = db.execute(
                "SELECT seq, due_at FROM timers WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
            return published, tasks, timers

        published, tasks, timers = await self._call(read)
        return RunExtras(
            {row[0]: row[1] for row in published},
            [task_record(row) for row in tasks],
            {int(row[0]): float(row[1]) for row in timers},
        )

    async def send(
        self, workflow_id: str, kind: str, data: bytes, now: float, *, run_id: str | None = None
    ) -> str | None:
        """Append an inbox item to the current run (or ``run_id``) and mark it ready."""

        def body(db: sqlite3.Connection) -> str | None:
            if run_id is None:
                sql = "SELECT run_id, closed_at FROM runs WHERE workflow_id = ? AND is_current = 1"
                rows = db.execute(sql, (workflow_id,)).fetchall()
            else:
                sql = "SELECT run_id, closed_at FROM runs WHERE run_id = ? AND workflow_id = ?"
                rows = db.execute(sql, (run_id, workflow_id)).fetchall()
            if not rows:
                which = "" if run_id is None else f" (run {run_id!r})"
                raise WorkflowNotFound(f"No workflow {workflow_id!r}{which} in {self.url}.")
            target, closed_at = rows[0]
            if closed_at is not None:
                return None
            db.execute(
                "INSERT INTO inbox (run_id, kind, time, data) VALUES (?, ?, ?, ?)",
                (target, kind, now, data),
            )
            db.execute("UPDATE runs SET ready = 1 WHERE run_id = ?", (target,))
            return str(target)

        target = await self._write(body)
        if target is not None:
            self.hub.notify([TOPIC_RUNS])
        return target

    async def claim_runs(
        self,
        owner: str,
        *,
        queues: Collection[str],
        names: Collection[str],
        now: float,
        lease_until: float,
        limit: int,
    ) -> list[ClaimedRun]:
        """Lease up to ``limit`` runs with work, oldest first, with their inbox."""
        if limit <= 0 or not queues or not names:
            return []
        queues, names = list(queues), list(names)

        def claim(db: sqlite3.Connection) -> list[ClaimedRun]:
            return _claims.claim_runs(
                db, owner, queues=queues, names=names, now=now, lease_until=lease_until, limit=limit
            )

        def check(db: sqlite3.Connection) -> bool:
            return _claims.check_runs(db, owner, queues=queues, names=names, now=now)

        return await self._claim(TOPIC_RUNS, check, claim, [], relaxed=True)

    async def _claim(
        self,
        topic: str,
        check: Callable[[sqlite3.Connection], bool],
        claim: Callable[[sqlite3.Connection], T],
        nothing: T,
        relaxed: bool = False,
    ) -> T:
        """``claim`` in a write transaction if the read-only ``check`` finds work, else
        ``nothing``: one hop either way. Records the data_version the result was read at,
        for `wait` on ``topic``.

        The check runs outside the write lock, so an idle worker polling a busy file costs
        readers (which WAL never blocks), not writers queueing for the one lock. A
        ``relaxed`` claim commits without waiting for the disk (see `_tx.transaction`).
        """

        restore = self._synchronous.upper() if relaxed else None

        def operation(db: sqlite3.Connection) -> tuple[int, T]:
            version = _tx.data_version(db)
            if not check(db):
                return version, nothing
            return _tx.transaction(db, lambda db: (_tx.data_version(db), claim(db)), restore)

        self._seen[topic], result = await self._call(operation)
        return result

    async def commit_steps(self, steps: Sequence[StepCommit], now: float) -> list[bool]:
        """Commit many runs' steps in one transaction (group commit); see `StepCommit`."""
        if not steps:
            return []
        steps = list(steps)

        def operation(db: sqlite3.Connection) -> tuple[list[bool], set[str]]:
            accepted, topics, written = _tx.transaction(
                db, lambda db: _steps.commit_steps(db, steps, now)
            )
            # Recorded before the hop returns, so that a store of this process reading the
            # new state (on its own thread) finds it recorded by the time it looks.
            self._wrote(written)
            return accepted, topics

        try:
            accepted, topics = await self._call(operation)
        except _DATA_ERRORS as exc:
            # What a step holds breaks a constraint: the same batch would fail again.
            raise StepDataError(f"a step's data breaks the database's rules: {exc}") from exc
        if topics:
            self.hub.notify(topics)
        return accepted

    async def park(self, run_id: str, owner: str, problem: str) -> None:
        """Park the owner's run with ``problem`` and release its lease."""
        await self._write(
            lambda db: db.execute(
                "UPDATE runs SET parked = 1, problem = ?, lease_owner = NULL, "
                "lease_expires_at = NULL WHERE run_id = ? AND lease_owner = ?",
                (problem, run_id, owner),
            )
        )

    async def claim_tasks(
        self,
        owner: str,
        *,
        queues: Collection[str] | None,
        names: Collection[str] | None,
        now: float,
        lease_until: float,
        limit: int,
        exclude: Collection[str] = (),
        expired_only: bool = False,
    ) -> list[TaskRecord]:
        """Lease up to ``limit`` activity tasks, earliest ``visible_at`` first.

        Each is returned with its new lease but the status it had before this claim:
        ``"queued"``, or ``"running"`` when its previous worker's lease had expired (that
        attempt was lost with its worker). None of ``exclude`` is claimed.
        """
        if limit <= 0 or (queues is not None and not queues) or (names is not None and not names):
            return []
        queues = None if queues is None else list(queues)
        names = None if names is None else list(names)
        exclude = list(exclude)  # the worker's running tasks: it changes as they end

        def claim(db: sqlite3.Connection) -> list[TaskRecord]:
            return _claims.claim_tasks(
                db, owner, queues=queues, names=names, now=now, lease_until=lease_until,
                limit=limit, exclude=exclude, expired_only=expired_only,
            )  # fmt: skip

        def check(db: sqlite3.Connection) -> bool:
            return _claims.check_tasks(
                db, queues=queues, names=names, now=now, exclude=exclude, expired_only=expired_only
            )

        return await self._claim(TOPIC_TASKS, check, claim, [], relaxed=True)

    async def read_task(self, task_id: str) -> TaskRecord | None:
        """The task row, or ``None``."""
        rows = await self._read(f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?", (task_id,))
        return task_record(rows[0]) if rows else None

    async def read_inbox(self, run_id: str) -> list[InboxItem]:
        """The run's inbox items, in id order."""
        sql = f"SELECT {INBOX_COLUMNS} FROM inbox WHERE run_id = ? ORDER BY id"
        return [inbox_item(row) for row in await self._read(sql, (run_id,))]

    async def finish_task(
        self, task_id: str, owner: str, attempt: int, outcome: TaskOutcome, now: float
    ) -> bool:
        """End an attempt (see `TaskOutcome`), fenced by the task's lease and attempt.

        A retry or release of a task whose run has closed deletes the task instead.
        Concurrent calls on this store are written together, in one transaction, each
        judged in turn (group commit: many remote workers completing tasks at once pay one
        durable write per batch, not one per task).
        """
        if outcome.kind not in ("done", "retry", "release"):
            raise ValueError(f"Unknown TaskOutcome kind {outcome.kind!r}")
        return await self._finishes((task_id, owner, attempt, outcome, now))

    async def _finish_group(self, items: list[_claims.Finish]) -> list[bool]:
        finish = functools.partial(_claims.finish_tasks, items=items)
        if self._synchronous != "full":
            done, topics = await self._write(finish)
            self.hub.notify(topics)
            return done
        # Announced before the disk, returned after it: the worker the end wakes (its
        # doorbell rung by `notify`) claims and steps the run while the log is synced,
        # and the step that consumes the end commits with FULL, which syncs the log up
        # to it, so it is never durable without the end. A remote worker is told its
        # result is stored only once it is durable.
        done, topics = await self._call(lambda db: _tx.transaction(db, finish, "FULL"))
        self.hub.notify(topics)
        if any(done):
            await self._sync_log()
        return done

    async def _sync_log(self) -> None:
        """Sync the write-ahead log to the disk, as a commit with ``synchronous = FULL``
        does (`fdatasync` of the ``-wal`` file: every frame written so far), on a thread
        of its own so this store's next operations need not wait. Frames a checkpoint has
        moved into the database file since were synced there by the checkpoint."""
        if self._wal is None:
            self._wal = os.open(self._wal_path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        self._syncing += 1
        try:
            await asyncio.to_thread(_sync_file, self._wal)
        finally:
            self._syncing -= 1
            if self._state == "closed" and not self._syncing:
                self._close_wal()

    def _close_wal(self) -> None:
        wal, self._wal = self._wal, None
        if wal is not None:
            os.close(wal)

    async def fire_timers(self, now: float, limit: int) -> float | None:
        """Turn due timers into ``timer_fired`` inbox items, exactly once; return the next
        due time of a timer or a delayed task, if any."""
        next_due: float | None = None

        def check(db: sqlite3.Connection) -> bool:
            nonlocal next_due
            due, next_due = _claims.check_timers(db, now)
            return due

        def fire(db: sqlite3.Connection) -> tuple[float | None, bool]:
            return _claims.fire_timers(db, now, limit)

        fired = await self._claim(TOPIC_TIMERS, check, fire, None)
        if fired is None:
            return next_due
        if fired[1]:
            self.hub.notify([TOPIC_RUNS])
        return fired[0]

    async def prune_runs(self, closed_before: float, limit: int) -> int:
        """See `Store.prune_runs` (`durable_sqlite.retention`)."""
        gone = await self._write(lambda db: _retention.prune_runs(db, closed_before, limit))
        if gone:
            self.hub.notify({TOPIC_STATUS, *map(run_topic, gone)})
        return len(gone)

    async def set_queue_limits(self, limits: QueueLimits, now: float) -> None:
        """See `Store.set_queue_limits` (`durable_sqlite.limits`)."""
        await self._write(lambda db: _limits.write_limits(db, limits, now))
        self.hub.notify([TOPIC_TASKS, TOPIC_LIMITS])

    async def queue_limits(self, queues: Collection[str] | None = None) -> list[QueueLimits]:
        """See `Store.queue_limits`."""
        wanted = None if queues is None else list(queues)
        return await self._call(lambda db: _limits.read_limits(db, wanted))
