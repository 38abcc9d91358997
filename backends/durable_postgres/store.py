"""`PostgresStore`: the storage contract (`durable.store.Store`) on PostgreSQL with asyncpg.

The scale-out backend: any number of worker processes on any number of machines share one
database. How it fits together:

- **Schema** (`durable_postgres.schema`): tables ``runs``, ``journal``, ``inbox``,
  ``tasks``, ``timers``, ``published``, ``workers``, ``meta`` in their own PostgreSQL
  schema (``?schema=name`` in the URL, default ``durable``), created and migrated on
  `open` under an advisory lock; a database newer than this code is refused.
- **Connections** (`durable_postgres.connection`): an asyncpg pool; every operation is a
  read or one write transaction, retried with backoff across lost connections and server
  restarts, with a commit whose outcome was cut off resolved by ``txid_status``.
- **Claims** of runs, tasks and due timers use ``FOR UPDATE SKIP LOCKED``: concurrent
  workers each take different rows, never wait for each other, and never both get one.
- **Group commit** (`durable_postgres.commit`): `commit_steps` writes a whole batch of
  steps in one transaction with a few array statements, fencing each step on its own.
- **Notifications** (`durable_postgres.listener`): a write transaction ends with
  ``pg_notify`` carrying its topics; after it commits the store wakes its own process's
  hub, and a dedicated LISTEN connection forwards other processes' topics to it. While that
  connection is down `wait` polls every `POLL_INTERVAL` seconds.

Isolation is PostgreSQL's default READ COMMITTED. Every invariant that spans a read and a
write holds because the write takes a row lock on the ``runs`` row first, so writers of
one run are serialised, see "Claims and the inbox" in `PostgresStore`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Literal, TypeVar

import asyncpg

from durable.errors import StepDataError, StoreError, WorkflowAlreadyExists, WorkflowNotFound
from durable.grouping import Grouped
from durable.notify import hub_for
from durable.plan import lookups, plan
from durable.repair import Fork, Reopen
from durable.store import (
    TOPIC_RUNS,
    TOPIC_STATUS,
    ClaimedRun,
    IfExists,
    InboxItem,
    JournalEntry,
    NewRun,
    Outgoing,
    QueueLimits,
    RunExtras,
    RunRecord,
    StepCommit,
    Store,
    TaskOutcome,
    TaskRecord,
    WorkerRecord,
    run_topic,
)
from durable.topics import end_topic

from . import claims, commit, retention, workers
from . import limits as _limits
from . import repair as _repair
from .connection import Database, Fold, is_connection_error, parse_url
from .finish import MAX_GROUP, Finish, finish_tasks
from .listener import Listener, hub_origin, listen, unlisten
from .listing import Listing
from .logs import Logs
from .queries import QueryRows
from .schedules import Schedules
from .schema import (
    RUN_COLUMNS,
    TASK_COLUMNS,
    ensure_extra_indexes,
    migrate,
    run_record,
    tags_json,
    task_record,
)
from .updates import Updates
from .workers import WORKER_SILENCE_SECONDS

__all__ = ["POLL_INTERVAL", "WORKER_SILENCE_SECONDS", "PostgresStore"]

T = TypeVar("T")

POLL_INTERVAL = 1.0  # seconds between re-queries while the LISTEN connection is down

_INSERT_RUN = f"""
INSERT INTO runs (workflow_id, run_id, is_current, name, queue, status, input, created_at,
                  updated_at, parent_id, parent_run_id, history_length, ready, timeout, tags,
                  trace)
VALUES ($1, $2, true, $3, $4, 'pending', $5, $6, $6, $7, $8, 0, true, $9, $10::jsonb, $11)
ON CONFLICT (workflow_id) WHERE is_current DO NOTHING
RETURNING {RUN_COLUMNS}
"""
_LOCK_CURRENT = f"""
SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = $1 AND is_current FOR UPDATE
"""


async def _create_one(
    conn: Any, run: NewRun, if_exists: IfExists
) -> tuple[RunRecord, bool] | WorkflowAlreadyExists:
    """One `Store.create_run` inside the caller's transaction."""
    while True:
        row = await conn.fetchrow(
            _INSERT_RUN, run.workflow_id, run.run_id, run.name, run.queue,
            run.input, run.created_at, run.parent_id, run.parent_run_id, run.timeout,
            tags_json(run.tags), run.trace,
        )  # fmt: skip
        if row is not None:
            return run_record(row), True
        existing = await conn.fetchrow(_LOCK_CURRENT, run.workflow_id)
        if existing is None:
            continue  # a concurrent restart replaced it between our statements
        if existing["run_id"] == run.run_id:
            return run_record(existing), True  # ours: this is a retry after a lost COMMIT
        if if_exists == "error":
            return WorkflowAlreadyExists(
                f"Workflow {run.workflow_id!r} already exists (run "
                f"{existing['run_id']!r}, status {existing['status']!r}). Pass "
                "if_exists='return' to get its handle, or 'restart' to start it "
                "again once it has closed."
            )
        if if_exists == "return" or existing["closed_at"] is None:
            return run_record(existing), False
        await conn.execute(
            "UPDATE runs SET is_current = false WHERE run_id = $1", existing["run_id"]
        )
        # A new execution: the old one's published values and update outcomes are not its own.
        await conn.execute("DELETE FROM published WHERE workflow_id = $1", run.workflow_id)
        await conn.execute("DELETE FROM updates WHERE workflow_id = $1", run.workflow_id)


class PostgresStore(Listing, Logs, QueryRows, Updates, Schedules, Store):
    """The storage contract on PostgreSQL (asyncpg); see the module docstring.

        async with PostgresStore("postgresql://app@db.internal/app?schema=orders") as store:
            run = await store.get_run("order-42")

    ``?schema=name`` picks the PostgreSQL schema holding the tables (created if missing,
    default ``durable``); every other URL parameter goes to asyncpg as it is.

    **Claims and the inbox.** `send` appends an item *and* sets ``runs.ready`` in one
    transaction, updating the run row; a claim locks that row and sets ``ready = false``
    before reading the inbox. Under READ COMMITTED the row lock orders them:

    - send commits first: the claim sees ``ready`` and, reading the inbox afterwards
      in a later statement, the item.
    - the claim locks the row first: send's UPDATE waits for the claim to commit, then
      sets ``ready`` again on the new row version, so the item (invisible to the claim,
      being uncommitted) is left for the next claim, by this owner or another. (The claim
      commits alone before it reads the inbox: an item committed in between is read by it
      and again by the next claim; the worker takes each item once, by id.)
    - send holds the row when the claim scans: SKIP LOCKED passes the run over; it is
      ready once send commits.

    In no order is an item left in the inbox of a run that is not ready, which is what
    "no stranded runs" needs. A step commit locks the same row, so an item that arrives
    during a step keeps the run ready for its next claim.
    """

    _create_run = staticmethod(_create_one)  # for `Schedules`

    def __init__(self, url: str) -> None:
        self._info = parse_url(url)
        self.url = self._info.public_url
        self.hub = hub_for(self.url)
        self._state: Literal["new", "open", "closed"] = "new"
        self._db = Database(self._info, hub_origin(self.hub), self._check_open)
        self._listener: Listener | None = None
        self._finishes = Grouped(self._finish_group, MAX_GROUP)  # see finish_task
        self._limits_held = False  # a queue had limits at the last claim: see claim_tasks

    @property
    def schema(self) -> str:
        """The PostgreSQL schema holding this store's tables."""
        return self._info.schema

    @property
    def listening(self) -> bool:
        """Whether other processes' notifications reach this store (else `wait` polls)."""
        return self._listener is not None and self._listener.listening

    def _check_open(self) -> None:
        if self._state == "new":
            raise StoreError(
                "This PostgresStore is not open yet: use 'async with store:' or "
                "'await store.open()' first."
            )
        if self._state == "closed":
            raise StoreError(
                "This PostgresStore has been closed; create a new one to use the database."
            )

    # ---- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create or migrate the schema, and start listening for notifications.

        Raises `StoreError` at once if the server cannot be reached, and (changing nothing)
        if the database's schema is newer than this code. Opening an open store does
        nothing; a closed one cannot be reopened.
        """
        if self._state == "open":
            return
        if self._state == "closed":
            raise StoreError("Cannot reopen a PostgresStore once it has been closed.")
        await self._db.open()
        try:
            async with self._db.pool.acquire() as conn:
                await migrate(conn, self._info.schema, url=self.url)
                await ensure_extra_indexes(conn, self._info.schema, url=self.url)
            listener = await listen(self._db.connect, self._info.channel, self.hub)
        except BaseException as exc:
            await self._db.close()
            if is_connection_error(exc):
                raise StoreError(f"Lost the connection to {self.url} while opening: {exc}") from exc
            raise
        self._listener = listener
        self._state = "open"

    async def aclose(self) -> None:
        """Stop listening and close the pool. Idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        listener, self._listener = self._listener, None
        if listener is not None:
            await unlisten(listener)
        await self._db.close()

    async def wait(self, topics: Collection[str], timeout: float, since: int | None = None) -> None:
        """`Store.wait`, woken by this process's commits and, through LISTEN, by every
        other process's; while the LISTEN connection is down it returns after at most
        `POLL_INTERVAL` seconds so the caller re-queries."""
        self._check_open()
        if not self.listening:
            timeout = min(timeout, POLL_INTERVAL)
        await self.hub.wait(topics, timeout, since)

    async def _write(
        self, op: Callable[[Any], Awaitable[tuple[T, Collection[str]]]], *, relaxed: bool = False
    ) -> T:
        result, topics = await self._db.write(op, relaxed=relaxed)
        if topics:
            self.hub.notify(topics)
        return result

    # ---- client side -----------------------------------------------------------------

    async def create_runs(
        self, runs: Sequence[tuple[NewRun, IfExists]]
    ) -> list[tuple[RunRecord, bool] | WorkflowAlreadyExists]:
        """See `Store.create_runs`. A retry of our own creates (lost COMMIT) finds our run
        ids and reports them as created."""

        async def op(
            conn: Any,
        ) -> tuple[list[tuple[RunRecord, bool] | WorkflowAlreadyExists], Collection[str]]:
            results: list[tuple[RunRecord, bool] | WorkflowAlreadyExists] = []
            topics: set[str] = set()
            for run, if_exists in runs:
                result = await _create_one(conn, run, if_exists)
                if isinstance(result, tuple) and result[1]:
                    topics.update((TOPIC_RUNS, TOPIC_STATUS, run_topic(run.workflow_id)))
                results.append(result)
            return results, topics

        return await self._write(op)

    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        """See `Store.get_run`."""
        if run_id is None:
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE workflow_id = $1 AND is_current"
            args: tuple[str, ...] = (workflow_id,)
        else:
            sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $2 AND workflow_id = $1"
            args = (workflow_id, run_id)
        row = await self._db.read(lambda conn: conn.fetchrow(sql, *args))
        return run_record(row) if row is not None else None

    async def read_journal(self, run_id: str, after_seq: int = 0) -> list[JournalEntry]:
        """See `Store.read_journal`."""
        rows = await self._db.read(
            lambda conn: conn.fetch(
                "SELECT seq, kind, time, data FROM journal WHERE run_id = $1 AND seq > $2 "
                "ORDER BY seq",
                run_id,
                after_seq,
            )
        )
        return [JournalEntry(r["seq"], r["kind"], r["time"], r["data"]) for r in rows]

    async def read_extras(self, workflow_id: str, run_id: str) -> RunExtras:
        """See `Store.read_extras`."""

        async def op(conn: Any) -> tuple[list[Any], list[Any], list[Any]]:
            published = await conn.fetch(
                "SELECT key, value FROM published WHERE workflow_id = $1", workflow_id
            )
            tasks = await conn.fetch(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE run_id = $1 ORDER BY seq", run_id
            )
            timers = await conn.fetch(
                "SELECT seq, due_at FROM timers WHERE run_id = $1 ORDER BY seq", run_id
            )
            return published, tasks, timers

        published, tasks, timers = await self._db.read(op)
        return RunExtras(
            {r["key"]: r["value"] for r in published},
            [task_record(r) for r in tasks],
            {int(r["seq"]): float(r["due_at"]) for r in timers},
        )

    async def send(
        self, workflow_id: str, kind: str, data: bytes, now: float, *, run_id: str | None = None
    ) -> str | None:
        """See `Store.send` and "Claims and the inbox" above."""

        async def op(conn: Any) -> tuple[str | None, Collection[str]]:
            while True:
                # Locks the run row: serialised with claims and step commits of this run.
                if run_id is None:
                    target = await conn.fetchval(
                        "UPDATE runs SET ready = true WHERE workflow_id = $1 AND is_current "
                        "AND closed_at IS NULL RETURNING run_id",
                        workflow_id,
                    )
                else:
                    target = await conn.fetchval(
                        "UPDATE runs SET ready = true WHERE run_id = $2 AND workflow_id = $1 "
                        "AND closed_at IS NULL RETURNING run_id",
                        workflow_id,
                        run_id,
                    )
                if target is not None:
                    await conn.execute(
                        "INSERT INTO inbox (run_id, kind, time, data) VALUES ($1, $2, $3, $4)",
                        target, kind, now, data,
                    )  # fmt: skip
                    return target, (TOPIC_RUNS,)
                # Not sent: closed, missing, or (by current run) just continued-as-new by
                # a commit that moved is_current after our UPDATE's snapshot: look again.
                if run_id is None:
                    row = await conn.fetchrow(
                        "SELECT closed_at FROM runs WHERE workflow_id = $1 AND is_current",
                        workflow_id,
                    )
                else:
                    row = await conn.fetchrow(
                        "SELECT closed_at FROM runs WHERE run_id = $2 AND workflow_id = $1",
                        workflow_id,
                        run_id,
                    )
                if row is None:
                    which = f"run {run_id!r} of workflow" if run_id else "workflow"
                    raise WorkflowNotFound(
                        f"No {which} {workflow_id!r} in {self.url}: check the id, or start "
                        "the workflow first."
                    )
                if row["closed_at"] is not None:
                    return None, ()

        return await self._write(op)

    async def terminate(
        self,
        run_id: str,
        *,
        entry_data: bytes,
        error: bytes,
        now: float,
        parent_item: Outgoing | None,
    ) -> bool:
        """See `Store.terminate`. Takes the run row lock, so a step commit in flight either
        lands before (and terminate appends after it) or is rejected after."""

        async def op(conn: Any) -> tuple[bool, Collection[str]]:
            # The run with its parent's runs (the named one, the current one), in order.
            named = [parent_item.run_id] if parent_item and parent_item.run_id else []
            parents = [parent_item.workflow_id] if parent_item else []
            row = (await commit.lock_runs(conn, [run_id, *named], parents)).get(run_id)
            if row is None or not row.open:
                return False, ()
            seq = row.history_length + 1
            await conn.execute(
                "INSERT INTO journal (run_id, seq, kind, time, data) "
                "VALUES ($1, $2, 'workflow_terminated', $3, $4)",
                run_id, seq, now, entry_data,
            )  # fmt: skip
            await conn.execute(
                "UPDATE runs SET status = 'terminated', error = $2, closed_at = $3, "
                "updated_at = $3, history_length = $4, lease_owner = NULL, "
                "lease_expires_at = NULL, ready = false WHERE run_id = $1",
                run_id, error, now, seq,
            )  # fmt: skip
            await commit.lock_tasks(conn, (), [run_id])
            await commit.close_leftovers(conn, [run_id])
            topics = {TOPIC_STATUS, run_topic(row.workflow_id), end_topic(row.workflow_id)}
            routed = await commit.route_one(conn, parent_item, now) if parent_item else None
            if routed is not None:
                await commit.deliver(conn, [routed])
                topics.add(TOPIC_RUNS)
            return True, topics

        return await self._write(op)

    async def reopen_run(self, reopen: Reopen, now: float) -> bool:
        """See `Store.reopen_run` (applied by `durable_postgres.repair`)."""
        return await self._write(lambda conn: _repair.reopen_run(conn, reopen, now))

    async def fork_run(self, fork: Fork, now: float) -> None:
        """See `Store.fork_run` (applied by `durable_postgres.repair`)."""
        await self._write(lambda conn: _repair.fork_run(conn, fork, now))

    # ---- worker side -----------------------------------------------------------------

    async def register_worker(self, worker: WorkerRecord, *, unpark: bool = True) -> None:
        """See `Store.register_worker`. Unparking clears the run's ``problem`` and makes it
        ready, so it is claimed (and replayed with the new code) at once."""
        await self._write(lambda conn: workers.register(conn, worker, unpark=unpark))

    async def heartbeat(
        self,
        worker_id: str,
        *,
        runs: Collection[str],
        tasks: Mapping[str, tuple[int, bytes | None]],
        now: float,
        lease_until: float,
    ) -> tuple[set[str], set[str]]:
        """See `Store.heartbeat`. Workers silent for `WORKER_SILENCE_SECONDS` are deleted."""
        return await self._write(
            lambda conn: workers.heartbeat(
                conn, worker_id, runs=runs, tasks=tasks, now=now, lease_until=lease_until
            )
        )

    async def deregister_worker(self, worker_id: str, now: float) -> None:
        """See `Store.deregister_worker`."""
        await self._write(lambda conn: workers.deregister(conn, worker_id, now))

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
        """See `Store.claim_runs` and "Claims and the inbox" above."""
        self._check_open()
        if limit <= 0 or not queues or not names:
            return []

        # Outside a transaction: the claim commits alone, without waiting for the WAL flush
        # (a claim lost with the server is only work handed out again), then the inbox is
        # read: two round trips.
        claim = functools.partial(
            claims.claim_runs, owner=owner, queues=queues, names=names, now=now,
            lease_until=lease_until, limit=limit, alone=True,
        )  # fmt: skip
        return await claims.alone(self._db, claim, claims.UNCLAIM_RUNS, owner, lease_until)

    async def commit_steps(self, steps: Sequence[StepCommit], now: float) -> list[bool]:
        """See `Store.commit_steps` and `durable_postgres.commit`.

        If the connection is lost during COMMIT, the outcome is looked up (see
        `durable_postgres.connection`) and the answer describes what really happened; were
        the batch ever run twice, its second run would be rejected by the fences.
        """
        self._check_open()
        if not steps:
            return []
        needs = lookups(steps)  # `plan` checks the entries before anything is written

        async def op(conn: Any, fold: Fold) -> tuple[int | None, list[bool], Collection[str]]:
            # The transaction id and the NOTIFY ride on the batch's own statements.
            xid, snapshot = await commit.lock(conn, needs)
            p = plan(steps, snapshot, now)
            if any(p.accepted):
                await commit.apply(conn, p, now, fold)
            return xid, p.accepted, p.topics

        try:
            accepted, topics = await self._db.write_folded(op)
        except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
            # What a step holds breaks a constraint: the same batch would fail again.
            raise StepDataError(f"a step's data breaks the database's rules: {exc}") from exc
        if topics:
            self.hub.notify(topics)
        return accepted

    async def park(self, run_id: str, owner: str, problem: str) -> None:
        """See `Store.park`."""

        async def op(conn: Any) -> tuple[None, Collection[str]]:
            workflow_id = await conn.fetchval(
                "UPDATE runs SET parked = true, problem = $3, lease_owner = NULL, "
                "lease_expires_at = NULL WHERE run_id = $1 AND lease_owner = $2 "
                "RETURNING workflow_id",
                run_id,
                owner,
                problem,
            )
            return None, (run_topic(workflow_id),) if workflow_id is not None else ()

        await self._write(op)

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
        """See `Store.claim_tasks`. A task taken from a dead worker is returned with
        ``status="running"``, a fresh one with ``status="queued"`` (its status before the
        claim; both are ``running`` in the database afterwards)."""
        self._check_open()
        if limit <= 0 or (queues is not None and not queues) or (names is not None and not names):
            return []

        if not expired_only and not self._limits_held:
            # Where no queue has limits, one statement outside a transaction.
            claim = functools.partial(
                claims.claim_tasks_alone, owner=owner, queues=queues, names=names, now=now,
                lease_until=lease_until, limit=limit, exclude=exclude,
            )  # fmt: skip
            alone = await claims.alone(self._db, claim, claims.UNCLAIM_TASKS, owner, lease_until)
            if alone is not None:
                return alone

        async def op(conn: Any, fold: Fold) -> tuple[int | None, list[TaskRecord], Collection[str]]:
            # Which queues have limits rides on the transaction's first statement.
            row = await conn.fetchrow(_limits.XID_AND_ANY_LIMITS)
            if not expired_only:
                self._limits_held = row["held"]  # until limits are gone, claim here
            tasks = await claims.claim_tasks(
                conn, owner, queues=queues, names=names, now=now, lease_until=lease_until,
                limit=limit, exclude=exclude, expired_only=expired_only,
                any_limits=row["held"],
            )  # fmt: skip
            return row["xid"], tasks, ()

        result, _ = await self._db.write_folded(op)
        return result

    async def read_task(self, task_id: str) -> TaskRecord | None:
        """See `Store.read_task`."""
        row = await self._db.read(
            lambda conn: conn.fetchrow(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1", task_id
            )
        )
        return task_record(row) if row is not None else None

    async def read_inbox(self, run_id: str) -> list[InboxItem]:
        """See `Store.read_inbox`."""
        rows = await self._db.read(
            lambda conn: conn.fetch(
                "SELECT id, run_id, kind, time, data FROM inbox WHERE run_id = $1 ORDER BY id",
                run_id,
            )
        )
        return [InboxItem(r["id"], r["run_id"], r["kind"], r["time"], r["data"]) for r in rows]

    async def finish_task(
        self, task_id: str, owner: str, attempt: int, outcome: TaskOutcome, now: float
    ) -> bool:
        """See `Store.finish_task`. A retry or release of a task whose run has closed
        deletes the task instead. Concurrent calls are written together, in one
        transaction, each judged in turn (`durable_postgres.finish`)."""
        if outcome.kind not in ("done", "retry", "release"):
            raise ValueError(f"Unknown TaskOutcome kind {outcome.kind!r}")
        return await self._finishes((task_id, owner, attempt, outcome, now))

    async def _finish_group(self, items: list[Finish]) -> list[bool]:
        # Announced before the WAL flush, returned after it (`Database.write_announced`).
        done, _ = await self._db.write_announced(
            functools.partial(finish_tasks, items=items), self.hub.notify
        )
        return done

    async def fire_timers(self, now: float, limit: int) -> float | None:
        """See `Store.fire_timers`. Due timers are locked with SKIP LOCKED and deleted as
        they become inbox items, in one statement: each fires exactly once."""

        async def op(conn: Any) -> tuple[float | None, Collection[str]]:
            fired, next_due = await claims.fire_timers(conn, now, limit)
            return next_due, (TOPIC_RUNS,) if fired else ()

        return await self._write(op)

    async def prune_runs(self, closed_before: float, limit: int) -> int:
        """See `Store.prune_runs` (`durable_postgres.retention`)."""

        async def op(conn: Any) -> tuple[int, Collection[str]]:
            gone = await retention.prune_runs(conn, closed_before, limit)
            return len(gone), {TOPIC_STATUS, *map(run_topic, gone)} if gone else ()

        return await self._write(op)

    async def set_queue_limits(self, limits: QueueLimits, now: float) -> None:
        """See `Store.set_queue_limits` (`durable_postgres.limits`)."""
        await self._write(lambda conn: _limits.write_limits(conn, limits, now))

    async def queue_limits(self, queues: Collection[str] | None = None) -> list[QueueLimits]:
        """See `Store.queue_limits`."""
        return await self._db.read(lambda conn: _limits.read_limits(conn, queues))

    async def list_workers(self) -> list[WorkerRecord]:
        """See `Store.list_workers`."""
        rows = await self._db.read(
            lambda conn: conn.fetch(
                "SELECT worker_id, queues, workflows, activities, host, pid, started_at, "
                "heartbeat_at, signatures FROM workers ORDER BY started_at, worker_id"
            )
        )
        return [
            WorkerRecord(
                worker_id=r["worker_id"],
                queues=tuple(r["queues"]),
                workflows=tuple(r["workflows"]),
                activities=tuple(r["activities"]),
                host=r["host"],
                pid=r["pid"],
                started_at=r["started_at"],
                heartbeat_at=r["heartbeat_at"],
                signatures=json.loads(r["signatures"]) if r["signatures"] else {},
            )
            for r in rows
        ]

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r}, {self._state})"
