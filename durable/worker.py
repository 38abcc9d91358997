"""The worker: claims runs and tasks, steps workflow code, runs activities, commits in groups.

Inside `Worker.run`, one task group holds a few loops:

- the *claim loop* leases runs that have work (new inbox items, a dead worker's runs) and
  hands them to their `_Driver` (one per live run, kept in a bounded LRU);
- a driver *step* moves the run's pending inputs into its `WorkflowRun` one at a time,
  collects the commands, and submits one `StepCommit`;
- the *committer* writes every pending step of every run in one transaction (group commit),
  so steady state costs one durable write per step, shared across workflows;
- after a commit, activities this worker serves start at once, locally, with their task row
  already leased to it; their results go straight into the run's next step (no round trip);
- the *task loop* claims activity tasks queued for this worker's queues (retries, activities
  of workflows run elsewhere, a dead worker's tasks);
- the *timer loop* turns due timers into inbox items;
- the *heartbeat loop* renews leases, saves activity heartbeats, and delivers cancellation.

A run's lease is held only while the worker has something in flight for it; a sleeping run
holds none, and its loop is evicted from memory when the cache is full.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from . import payload
from .context import ActivityContext, ActivityInfo
from .definition import (
    ActivityDefinition,
    RetryPolicy,
    WorkflowDefinition,
    activity_definition,
    workflow_definition,
)
from .engine import INPUT_KINDS, Command, WorkflowRun
from .errors import DatabaseUnusable, NonDeterminismError, RemoteError, StoreError
from .executor import Attempt, AttemptResult, run_attempt
from .store import (
    TOPIC_RUNS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    ClaimedRun,
    JournalEntry,
    NewRun,
    NewTask,
    NewTimer,
    Outgoing,
    StepCommit,
    Store,
    TaskOutcome,
    TaskRecord,
    WorkerRecord,
    open_store,
)

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # how long a claim survives a silent worker
HEARTBEAT_INTERVAL = 5.0  # seconds between lease renewals / activity heartbeat flushes
POLL_INTERVAL = 1.0  # fallback wake-up when no notification arrives (seconds)
CACHE_SIZE = 1000  # live workflow loops kept in memory; idle ones beyond are evicted
COMMIT_BATCH = 500  # most steps written in one group-commit transaction
STOP_GRACE = 10.0  # seconds running activities get to finish on a graceful stop
LOOP_RETRY_INITIAL = 0.1  # a failed claim/task/timer loop restarts after this, doubling...
LOOP_RETRY_MAX = 5.0  # ...up to this while it keeps failing
HISTORY_WARN = 20_000  # journal length past which describe() and the log warn
HISTORY_LIMIT = 200_000  # journal length past which a run is failed: use continue_as_new


class _Driver:
    """A live run in this worker: its engine and what waits to go into its journal."""

    __slots__ = (
        "claimed",
        "engine",
        "finishing",
        "held",
        "local",
        "pending",
        "record_length",
        "run_id",
        "seen_inbox",
        "stepping",
        "warned",
        "workflow",
    )

    def __init__(self, run_id: str, workflow: WorkflowDefinition) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.engine: WorkflowRun | None = None
        self.claimed: ClaimedRun | None = None
        # (kind, data, time, inbox id or None, the attempt it reports the end of or None)
        self.pending: list[tuple[str, bytes, float, int | None, ActivityContext | None]] = []
        self.seen_inbox: set[int] = set()
        self.local: dict[str, ActivityContext] = {}  # task id -> running local attempt
        # Local attempts that ended, their results not yet committed: their task leases
        # are still renewed, and their tasks not taken back, until the commit says.
        self.finishing: dict[str, ActivityContext] = {}
        self.held = False
        self.stepping = False
        self.record_length = 0
        self.warned = False


class Worker:
    """Serves workflows and activities from one database until stopped.

        worker = durable.Worker(client, workflows=[place_order], activities=[charge],
                                queues=["default", "payments"], max_concurrency=100)
        await worker.run()          # until cancelled, or SIGTERM/SIGINT (graceful)

        async with worker:          # or in the background, e.g. in tests
            ...

    ``queues`` defaults to every queue the given workflows and activities name.
    ``max_concurrency`` bounds the activity attempts running at once.
    ``lease_seconds`` (default `LEASE_SECONDS`, 30) is how long this worker's claims on
    workflows and activity tasks outlive it if it dies without a word: other workers take
    them over after that. It renews them six times per lease (at least every
    `HEARTBEAT_INTERVAL`), so a shorter lease means a faster takeover and more writes.
    """

    def __init__(
        self,
        client: Client,
        workflows: Iterable[Any] = (),
        activities: Iterable[Any] = (),
        *,
        queues: Sequence[str] | None = None,
        max_concurrency: int = 100,
        cache_size: int = CACHE_SIZE,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.workflows: dict[str, WorkflowDefinition] = {}
        for fn in workflows:
            defn = workflow_definition(fn)
            if defn.name in self.workflows and self.workflows[defn.name].fn is not defn.fn:
                first = self.workflows[defn.name].fn.__qualname__
                raise ValueError(
                    f"Two workflows are named {defn.name!r} ({first} and "
                    f"{defn.fn.__qualname__}); give one another name with @workflow(name=...)."
                )
            self.workflows[defn.name] = defn
        self.activities: dict[str, ActivityDefinition] = {}
        for fn in activities:
            adefn = activity_definition(fn)
            if adefn.name in self.activities and self.activities[adefn.name].fn is not adefn.fn:
                raise ValueError(
                    f"Two activities are named {adefn.name!r}; give one another name with "
                    "@activity(name=...)."
                )
            self.activities[adefn.name] = adefn
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if lease_seconds is None:
            self.lease_seconds, self.heartbeat_interval = LEASE_SECONDS, HEARTBEAT_INTERVAL
        elif 0 < lease_seconds < float("inf"):
            # Renewed six times per lease, and at least every HEARTBEAT_INTERVAL: the
            # heartbeat also keeps the worker listed and delivers cancellations.
            self.lease_seconds = lease_seconds
            self.heartbeat_interval = min(lease_seconds / 6, HEARTBEAT_INTERVAL)
        else:
            raise ValueError(
                f"lease_seconds must be a number of seconds > 0, got {lease_seconds!r} (default "
                f"{LEASE_SECONDS:g}: how long a dead worker's claims last before others take over)"
            )
        if queues is None:
            found = {d.queue for d in self.workflows.values()}
            found |= {d.queue for d in self.activities.values()}
            queues = sorted(found) or ["default"]
        self.queues = tuple(queues)
        self.max_concurrency = max_concurrency
        self.cache_size = cache_size
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = client.clock
        self._store: Store | None = None
        self._drivers: collections.OrderedDict[str, _Driver] = collections.OrderedDict()
        self._commits: list[tuple[StepCommit, asyncio.Future[bool]]] = []
        self._commit_wanted = asyncio.Event()
        self._slots = max_concurrency
        self._slot_freed = asyncio.Event()
        self._remote: dict[str, ActivityContext] = {}  # task id -> running claimed attempt
        # Local attempts leased to this worker, waiting for an activity slot.
        self._waiting: collections.deque[tuple[_Driver, Attempt]] = collections.deque()
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        self._state = "new"
        self._background: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._busy = 0  # steps and commits in flight
        self._idle_marks: dict[str, int | None] = {"runs": None, "tasks": None}
        self._started_at: float | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("The worker is not running.")
        return self._store

    async def run(self) -> None:
        """Serve until cancelled or stopped (SIGTERM/SIGINT or `stop`), then stop gracefully:
        activities get `STOP_GRACE` seconds to finish, and every lease is handed back."""
        if self._state != "new":
            raise RuntimeError("A worker runs once; create a new Worker to run again.")
        self._state = "running"
        self._store = open_store(self.client.url)
        await self._store.open()
        unsubscribe = self.clock.subscribe(
            lambda: self.store.hub.notify([TOPIC_TIMERS, TOPIC_TASKS, TOPIC_RUNS])
        )
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if threading_is_main():
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        try:
            await self.store.register_worker(self._record())
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._committer())
                tg.create_task(self._heartbeat_loop())
                tg.create_task(self._supervise("timer loop", self._timer_loop))
                if self.workflows:
                    tg.create_task(self._supervise("claim loop", self._claim_loop))
                if self.activities:
                    tg.create_task(self._supervise("task loop", self._task_loop))
                self._started.set()
                await self._stopping.wait()
                await self._drain()
                raise _Stop
        except* _Stop:
            pass
        except* DatabaseUnusable as group:
            raise group.exceptions[0] from None  # the worker stops: say why, plainly
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            unsubscribe()
            self._tg = None
            try:
                await self.store.deregister_worker(self.worker_id, self.clock.now())
            except DatabaseUnusable:
                pass  # the leases went with the file; the error run raises says so
            except Exception:
                logger.exception("Could not hand back the leases of worker %s", self.worker_id)
            for driver in self._drivers.values():
                if driver.engine is not None:
                    driver.engine.evict()
            self._drivers.clear()
            await self.store.aclose()
            self._state = "stopped"

    def stop(self) -> None:
        """Ask the worker to stop gracefully (what SIGTERM and SIGINT do)."""
        self._stopping.set()

    async def __aenter__(self) -> Self:
        self._background = asyncio.ensure_future(self.run())
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({self._background, started}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._background.done():
            self._background.result()  # raise the startup error
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop gracefully and wait until stopped. Idempotent."""
        self.stop()
        if self._background is not None:
            background, self._background = self._background, None
            await background

    def _running(self) -> dict[str, ActivityContext]:
        """Every attempt this worker holds a task lease for, local or claimed, by task id:
        running, waiting for a slot, or ended with its result not yet committed."""
        running = dict(self._remote)
        for driver in self._drivers.values():
            if driver.local:
                running.update(driver.local)
            if driver.finishing:
                running.update(driver.finishing)
        return running

    async def _drain(self) -> None:
        # Attempts whose workflow no longer wants them are not waited for.
        try:
            await self._beat()  # learn of cancellations now, not at the next interval
        except Exception:
            logger.exception("Heartbeat of worker %s failed", self.worker_id)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            wanted = [c for c in self._running().values() if c.started and not c.cancelled]
            if not wanted and not self._busy:
                return
            await asyncio.sleep(0.05)

    def _record(self) -> WorkerRecord:
        now = self.clock.now()
        if self._started_at is None:
            self._started_at = now
        return WorkerRecord(
            worker_id=self.worker_id,
            queues=self.queues,
            workflows=tuple(sorted(self.workflows)),
            activities=tuple(sorted(self.activities)),
            host=socket.gethostname(),
            pid=os.getpid(),
            started_at=self._started_at,
            heartbeat_at=now,
        )

    def _spawn(self, coro: Any) -> None:
        if self._tg is None:
            coro.close()
            return
        self._tg.create_task(coro)

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run one of the worker's loops until stopping. A failure (the database out of reach
        for longer than the store retries, a bug) is logged and the loop restarted after a
        backoff: it never ends the worker, which goes on as soon as the database is back.
        Only `DatabaseUnusable` (the SQLite file deleted or replaced) ends it."""
        delay = LOOP_RETRY_INITIAL
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await loop()
                return
            except DatabaseUnusable:
                raise  # retrying cannot help: stop the worker (see `run`)
            except Exception:
                if time.monotonic() - started > 60:
                    delay = LOOP_RETRY_INITIAL  # it ran fine for a while: a new episode
                logger.exception(
                    "Worker %s: its %s failed; restarting it in %.1f s",
                    self.worker_id,
                    name,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, LOOP_RETRY_MAX)

    # -- idleness (for time skipping in durable.testing) ---------------------------------

    def is_idle(self) -> bool:
        """True when nothing is in flight and no notification arrived since the claim loops
        last found nothing to do: only a timer can make progress now."""
        if self._busy or self._remote or self._commits:
            return False
        if any(d.local or d.pending or d.stepping for d in self._drivers.values()):
            return False
        topics = {"runs": TOPIC_RUNS, "tasks": TOPIC_TASKS}
        wanted = ["runs"] + (["tasks"] if self.activities else [])
        for key in wanted:
            mark = self._idle_marks[key]
            if mark is None or self.store.hub.notified_since([topics[key]], mark):
                return False
        return True

    # -- claim loop ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        names = list(self.workflows)
        while not self._stopping.is_set():
            mark = self.store.watermark()
            now = self.clock.now()
            claimed = await self.store.claim_runs(
                self.worker_id,
                queues=self.queues,
                names=names,
                now=now,
                lease_until=now + self.lease_seconds,
                limit=100,
            )
            for item in claimed:
                self._accept(item)
            if not claimed:
                self._idle_marks["runs"] = mark
                await self.store.wait([TOPIC_RUNS], POLL_INTERVAL, since=mark)
            else:
                self._idle_marks["runs"] = None
                await asyncio.sleep(0)

    def _accept(self, claimed: ClaimedRun) -> None:
        run = claimed.run
        driver = self._drivers.get(run.run_id)
        if driver is None:
            driver = _Driver(run.run_id, self.workflows[run.name])
            self._drivers[run.run_id] = driver
        else:
            self._drivers.move_to_end(run.run_id)
        if driver.engine is not None and driver.engine.history_length != run.history_length:
            if not driver.stepping:
                driver.engine.evict()  # advanced elsewhere: rebuild by replay
                driver.engine = None
        driver.claimed = claimed
        driver.held = True
        driver.record_length = run.history_length
        if run.history_length == 0 and not any(p[0] == "workflow_started" for p in driver.pending):
            started = payload.envelope({"args": run.input})
            driver.pending.append(("workflow_started", started, self.clock.now(), None, None))
        for item in claimed.inbox:
            if item.id not in driver.seen_inbox:
                driver.seen_inbox.add(item.id)
                driver.pending.append((item.kind, item.data, item.time, item.id, None))
        self._kick(driver, force=True)
        self._trim_cache()

    def _kick(self, driver: _Driver, force: bool = False) -> None:
        if driver.stepping or not (driver.pending or force):
            return
        driver.stepping = True
        self._busy += 1
        self._spawn(self._drive(driver))

    def _trim_cache(self) -> None:
        excess = len(self._drivers) - self.cache_size
        if excess <= 0:
            return
        for run_id, driver in list(self._drivers.items()):
            if excess <= 0:
                break
            if driver.stepping or driver.local or driver.pending or driver.held:
                continue
            if driver.engine is not None:
                driver.engine.evict()
            del self._drivers[run_id]
            excess -= 1

    def _forget(self, driver: _Driver) -> None:
        if driver.engine is not None:
            driver.engine.evict()
            driver.engine = None
        driver.held = False
        driver.pending.clear()
        driver.finishing.clear()
        driver.seen_inbox.clear()
        if not driver.local:
            self._drivers.pop(driver.run_id, None)

    # -- stepping -----------------------------------------------------------------------

    async def _drive(self, driver: _Driver) -> None:
        try:
            first = True
            # Steps go on while stopping: results of attempts that finish within the grace
            # period are committed (new activities then go to the task table for others).
            while (driver.pending or first) and driver.held:
                first = False
                if not await self._step(driver):
                    break
        except (StoreError, _StoreTrouble):
            # The database, not the run (a driver error too: disk I/O, a cancelled query):
            # drop it here; it comes back by a claim once the database answers (this
            # worker's lease, or another's after it expires).
            logger.exception("Worker %s could not step run %s", self.worker_id, driver.run_id)
            self._forget(driver)
        except Exception as exc:
            # A bug: park the run with the reason in describe().problem rather than retry
            # it blindly forever. Starting a worker (with the fix) unparks it.
            logger.exception("Worker %s failed stepping run %s", self.worker_id, driver.run_id)
            problem = (
                f"Worker {self.worker_id} failed stepping this run: {exc!r}. It is parked "
                "until a worker starts; see that worker's log for the traceback."
            )
            try:
                await self._park(driver, problem)
            except Exception:
                logger.exception("Could not park run %s", driver.run_id)
                self._forget(driver)
        finally:
            driver.stepping = False
            self._busy -= 1
        if driver.pending and driver.held:
            self._kick(driver)

    async def _rebuild(self, driver: _Driver) -> WorkflowRun:
        claimed = driver.claimed
        assert claimed is not None
        run = claimed.run
        engine = WorkflowRun(
            driver.workflow,
            workflow_id=run.workflow_id,
            run_id=run.run_id,
            queue=run.queue,
            parent_id=run.parent_id,
            timeout=run.timeout,
        )
        try:
            entries = await self.store.read_journal(run.run_id) if run.history_length else []
        except StoreError:
            raise
        except Exception as exc:
            raise _StoreTrouble(exc) from exc
        i = 0
        while i < len(entries):
            entry = entries[i]
            j = i + 1
            while j < len(entries) and entries[j].kind not in INPUT_KINDS:
                j += 1
            if entry.kind not in INPUT_KINDS:
                raise NonDeterminismError(
                    f"Journal of run {run.run_id} starts with {entry.kind!r} at step {entry.seq}, "
                    "not an input; the journal is damaged."
                )
            recorded = [(e.kind, payload.decode(e.data)) for e in entries[i + 1 : j]]
            engine.apply(entry.kind, payload.decode(entry.data), entry.time, recorded=recorded)
            i = j
        engine.is_replaying = False
        engine.take_effects()  # carried out when they were first recorded
        return engine

    async def _step(self, driver: _Driver) -> bool:
        """One step: pending inputs in, one commit out. False when the driver should stop."""
        claimed = driver.claimed
        assert claimed is not None
        run = claimed.run
        if driver.engine is None:
            try:
                driver.engine = await self._rebuild(driver)
            except NonDeterminismError as err:
                await self._park(driver, str(err))
                return False
        engine = driver.engine
        base = engine.history_length
        inputs, driver.pending = driver.pending, []
        now = self.clock.now()
        commit = StepCommit(
            run_id=run.run_id, owner=self.worker_id, expected_length=base, entries=[]
        )
        commands: list[Command] = []
        try:
            for kind, data, when, inbox_id, finished in inputs:
                if inbox_id is not None:
                    commit.consumed_inbox.append(inbox_id)
                if finished is not None:
                    commit.finished_tasks[finished.info.task_id] = finished.info.attempt
                if engine.closed:
                    continue  # late arrivals for a closed run are consumed, not journaled
                when = max(when, engine._now)
                new = engine.apply(kind, payload.decode(data), when)
                commit.entries.append(
                    JournalEntry(engine.history_length - len(new), kind, when, data)
                )
                for cmd in new:
                    commit.entries.append(
                        JournalEntry(cmd.seq, cmd.kind, when, payload.envelope(cmd.data))
                    )
                commands.extend(new)
        except NonDeterminismError as err:
            driver.pending = inputs + driver.pending
            await self._park(driver, str(err))
            return False
        if engine.history_length > HISTORY_LIMIT and not engine.closed:
            engine.fail(
                RemoteError(
                    "HistoryLimitExceeded",
                    f"Workflow {driver.workflow.name!r} ({run.workflow_id}) has "
                    f"{engine.history_length} journal entries, past the limit of "
                    f"{HISTORY_LIMIT}. Use durable.continue_as_new() in long-lived loops.",
                )
            )
            for cmd in engine._commands:
                commit.entries.append(
                    JournalEntry(cmd.seq, cmd.kind, now, payload.envelope(cmd.data))
                )
                commands.append(cmd)
        elif engine.history_length > HISTORY_WARN and not driver.warned:
            driver.warned = True
            logger.warning(
                "Workflow %r (%s) has %d journal entries; consider continue_as_new",
                driver.workflow.name,
                run.workflow_id,
                engine.history_length,
            )
        if base == 0:
            commit.status = "running"
        local = self._apply_commands(driver, engine, commands, commit, now)
        self._apply_effects(driver, engine, commit)
        outcome = engine.outcome
        if outcome is not None:
            self._close(driver, engine, commit)
        commit.release_lease = outcome is not None or not (driver.local or local)
        try:
            accepted = await self._commit(commit)
        except StoreError:
            raise
        except Exception as exc:
            raise _StoreTrouble(exc) from exc
        for task_id in commit.finished_tasks:
            driver.finishing.pop(task_id, None)
        if not accepted:
            logger.info(
                "Run %s moved on without worker %s; dropping it", run.run_id, self.worker_id
            )
            self._forget(driver)
            return False
        driver.record_length = engine.history_length
        for attempt in local:
            driver.local[attempt.task_id] = attempt.context
            self._waiting.append((driver, attempt))
        self._start_waiting()
        if commit.release_lease:
            # Items claimed meanwhile stay in the inbox (the store re-marks the run ready)
            # and come back with the next claim, by whichever worker.
            driver.held = False
            driver.pending.clear()
            driver.seen_inbox.clear()
            if outcome is not None:
                self._forget(driver)
            else:
                self._trim_cache()
            return False
        return True

    def _apply_commands(
        self,
        driver: _Driver,
        engine: WorkflowRun,
        commands: list[Command],
        commit: StepCommit,
        now: float,
    ) -> list[Attempt]:
        run = driver.claimed.run if driver.claimed else None
        assert run is not None
        local: list[Attempt] = []
        for cmd in commands:
            data = cmd.data
            if cmd.kind == "activity_scheduled":
                task_id = f"{run.run_id}:{cmd.seq}"
                adefn = self.activities.get(data["name"])
                # Served here: leased to this worker now and run here as soon as a slot is
                # free, so its result rides the run's next commit (no task-table round trip).
                mine = adefn is not None and data["queue"] in self.queues
                owner = None
                if mine and adefn is not None and not self._stopping.is_set():
                    owner = self.worker_id
                    info = self._info(run.workflow_id, run.run_id, task_id, data, 1, None, now)
                    local.append(Attempt(task_id, adefn, data, 1, ActivityContext(info)))
                commit.new_tasks.append(
                    NewTask(
                        task_id=task_id,
                        run_id=run.run_id,
                        workflow_id=run.workflow_id,
                        seq=cmd.seq,
                        name=data["name"],
                        queue=data["queue"],
                        data=payload.envelope(data),
                        visible_at=now,
                        lease_owner=owner,
                        lease_expires_at=now + self.lease_seconds if owner else None,
                    )
                )
            elif cmd.kind == "timer_started":
                commit.new_timers.append(
                    NewTimer(
                        run.run_id, cmd.seq, float(data["due"]), payload.envelope({"ref": cmd.seq})
                    )
                )
            elif cmd.kind == "child_started":
                commit.new_runs.append(
                    NewRun(
                        workflow_id=data["id"],
                        run_id=data["run_id"],
                        name=data["name"],
                        queue=data["queue"],
                        input=data["args"],
                        created_at=now,
                        parent_id=run.workflow_id,
                        parent_run_id=run.run_id,
                        timeout=data.get("timeout"),
                    )
                )
            elif cmd.kind == "published":
                commit.published[data["key"]] = data["value"]
        return local

    def _apply_effects(self, driver: _Driver, engine: WorkflowRun, commit: StepCommit) -> None:
        effects = engine.take_effects()
        run_id = driver.run_id
        for seq in effects.cancelled_activities:
            task_id = f"{run_id}:{seq}"
            commit.cancelled_tasks.append(task_id)
            ctx = driver.local.get(task_id) or self._remote.get(task_id)
            if ctx is not None:
                ctx.cancelled = True
        commit.cancelled_timers.extend(effects.cancelled_timers)
        for child_id in effects.cancelled_children:
            commit.outgoing.append(
                Outgoing(
                    child_id, "cancel_requested", payload.envelope({"reason": "parent cancelled"})
                )
            )

    def _close(self, driver: _Driver, engine: WorkflowRun, commit: StepCommit) -> None:
        outcome = engine.outcome
        assert outcome is not None
        assert driver.claimed is not None
        run = driver.claimed.run
        commit.status = outcome.status
        commit.result = outcome.result
        if outcome.error is not None:
            commit.error = payload.envelope(outcome.error.to_dict())
        for ctx in driver.local.values():
            ctx.cancelled = True
        if outcome.status == "continued_as_new":
            assert outcome.successor_run_id is not None
            assert outcome.continue_args is not None
            commit.successor = NewRun(
                workflow_id=run.workflow_id,
                run_id=outcome.successor_run_id,
                name=run.name,
                queue=run.queue,
                input=outcome.continue_args,
                created_at=self.clock.now(),
                parent_id=run.parent_id,
                parent_run_id=run.parent_run_id,
                timeout=run.timeout,
            )
            return
        if run.parent_id is None:
            return
        item: dict[str, Any]
        if outcome.status == "completed":
            item = {"workflow_id": run.workflow_id, "result": outcome.result}
            kind = "child_completed"
        else:
            error = outcome.error or RemoteError("CancelledError", "child workflow was cancelled")
            item = {
                "workflow_id": run.workflow_id,
                "error": error.to_dict(),
                "status": outcome.status,
            }
            kind = "child_failed"
        commit.outgoing.append(
            Outgoing(run.parent_id, kind, payload.envelope(item), run_id=run.parent_run_id)
        )

    async def _park(self, driver: _Driver, problem: str) -> None:
        logger.error("Parking run %s: %s", driver.run_id, problem)
        await self.store.park(driver.run_id, self.worker_id, problem)
        self._forget(driver)

    async def _commit(self, step: StepCommit) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._commits.append((step, fut))
        self._commit_wanted.set()
        return await fut

    async def _committer(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            while self._commits:
                batch, self._commits = self._commits[:COMMIT_BATCH], self._commits[COMMIT_BATCH:]
                self._busy += 1
                try:
                    results = await self.store.commit_steps(
                        [step for step, _ in batch], self.clock.now()
                    )
                except Exception as exc:
                    logger.exception("Group commit of %d steps failed", len(batch))
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                else:
                    for (_, fut), ok in zip(batch, results, strict=True):
                        if not fut.done():
                            fut.set_result(ok)
                finally:
                    self._busy -= 1

    # -- activities ---------------------------------------------------------------------

    def _info(
        self,
        workflow_id: str,
        run_id: str,
        task_id: str,
        spec: dict[str, Any],
        attempt: int,
        details: bytes | None,
        scheduled_at: float,
    ) -> ActivityInfo:
        return ActivityInfo(
            workflow_id=workflow_id,
            run_id=run_id,
            name=spec["name"],
            attempt=attempt,
            heartbeat_details=payload.decode(details) if details else None,
            queue=spec["queue"],
            task_id=task_id,
            scheduled_at=datetime.fromtimestamp(scheduled_at, UTC),
            timeout=spec.get("timeout"),
            heartbeat_timeout=spec.get("heartbeat_timeout"),
        )

    def _free_slot(self) -> None:
        self._slots += 1
        self._slot_freed.set()
        self._start_waiting()

    def _start_waiting(self) -> None:
        """Start local attempts waiting for a slot, oldest first (not once stopping: their
        task rows are handed back to the queue instead)."""
        while self._slots > 0 and self._waiting and not self._stopping.is_set():
            driver, attempt = self._waiting.popleft()
            self._slots -= 1
            self._spawn(self._run_local(driver, attempt))

    def _decide(
        self,
        spec: dict[str, Any],
        attempt: int,
        created_at: float,
        result: AttemptResult,
        details: bytes | None = None,
    ) -> TaskOutcome:
        """What to record for a finished attempt: done (completed/failed) or retry (with the
        attempt's last heartbeat ``details``, for the next one)."""
        if result.error is None:
            data = {"ref": int(spec.get("_seq", 0)), "result": result.result}
            return TaskOutcome("done", "activity_completed", payload.envelope(data))
        error = result.error
        policy = RetryPolicy.from_dict(spec["retry"])
        now = self.clock.now()
        delay = policy.delay(attempt)
        deadline = spec.get("schedule_to_close")
        in_time = deadline is None or now + delay - created_at < float(deadline)
        ref = int(spec.get("_seq", 0))
        if (
            result.retryable
            and not error.non_retryable
            and policy.allows_another(attempt)
            and in_time
        ):
            item = {"ref": ref, "attempt": attempt, "error": error.to_dict()}
            return TaskOutcome(
                "retry",
                "activity_retrying",
                payload.envelope(item),
                visible_at=now + delay,
                last_error=payload.envelope(error.to_dict()),
                details=details,
            )
        item = {"ref": ref, "error": error.to_dict(), "attempts": attempt}
        return TaskOutcome("done", "activity_failed", payload.envelope(item))

    async def _run_local(self, driver: _Driver, attempt: Attempt) -> None:
        spec = dict(attempt.spec)
        seq = int(attempt.task_id.rsplit(":", 1)[1])
        spec["_seq"] = seq
        try:
            if attempt.context.cancelled:
                # The workflow gave up on it while it waited for a slot: run nothing.
                error = RemoteError(
                    "CancelledError", f"Activity {attempt.definition.name!r} was cancelled"
                )
                result = AttemptResult(error=error, cancelled=True)
            else:
                attempt.context.started = True
                result = await run_attempt(attempt)
            scheduled = attempt.context.info.scheduled_at.timestamp()
            details = attempt.context.details
            outcome = self._decide(spec, attempt.attempt, scheduled, result, details)
            if outcome.kind == "done" and driver.held and driver.run_id in self._drivers:
                # The fast path: straight into the run's next step, one commit for both.
                now = self.clock.now()
                driver.pending.append(
                    (outcome.item_kind, outcome.item_data, now, None, attempt.context)
                )
                driver.finishing[attempt.task_id] = attempt.context
                driver.local.pop(attempt.task_id, None)
                self._kick(driver)
                return
            await self.store.finish_task(
                attempt.task_id, self.worker_id, attempt.attempt, outcome, self.clock.now()
            )
            driver.local.pop(attempt.task_id, None)
            if not driver.local and not driver.pending and not driver.stepping and driver.held:
                # Nothing more in flight here: the inbox item brings the run back.
                self._kick(driver, force=True)
        except Exception:
            # Its task lease lapses and the attempt is retried as lost, here or elsewhere.
            logger.exception(
                "Activity task %s failed in worker %s", attempt.task_id, self.worker_id
            )
        finally:
            driver.local.pop(attempt.task_id, None)
            self._free_slot()

    async def _task_loop(self) -> None:
        names = list(self.activities)
        while not self._stopping.is_set():
            if self._slots <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            mark = self.store.watermark()
            now = self.clock.now()
            tasks = await self.store.claim_tasks(
                self.worker_id,
                queues=self.queues,
                names=names,
                now=now,
                lease_until=now + self.lease_seconds,
                limit=self._slots,
                exclude=list(self._running()),
            )
            for task in tasks:
                self._slots -= 1
                self._spawn(self._run_claimed(task))
            if not tasks:
                self._idle_marks["tasks"] = mark
                await self.store.wait([TOPIC_TASKS], POLL_INTERVAL, since=mark)
            else:
                self._idle_marks["tasks"] = None

    async def _run_claimed(self, task: TaskRecord) -> None:
        try:
            spec = payload.decode(task.data)
            spec["_seq"] = task.seq
            attempt_no = task.attempt
            now = self.clock.now()
            if task.status == "running":
                # Its last worker died mid-attempt: that attempt failed.
                lost = AttemptResult(
                    error=RemoteError(
                        "WorkerLost",
                        f"Activity {task.name!r} attempt {attempt_no} was lost with its worker "
                        "(lease expired)",
                    ),
                    retryable=True,
                )
                outcome = self._decide(spec, attempt_no, task.created_at, lost)
                if outcome.kind == "retry":
                    outcome = TaskOutcome(
                        "retry", outcome.item_kind, outcome.item_data, now, outcome.last_error
                    )
                await self.store.finish_task(task.task_id, self.worker_id, attempt_no, outcome, now)
                return
            if task.cancel_requested:
                # Its workflow gave up on it before it (re)started: record that, run nothing.
                error = RemoteError("CancelledError", f"Activity {task.name!r} was cancelled")
                item = {"ref": task.seq, "error": error.to_dict(), "attempts": attempt_no}
                outcome = TaskOutcome("done", "activity_failed", payload.envelope(item))
                await self.store.finish_task(task.task_id, self.worker_id, attempt_no, outcome, now)
                return
            defn = self.activities[task.name]
            info = self._info(
                task.workflow_id,
                task.run_id,
                task.task_id,
                spec,
                attempt_no,
                task.heartbeat_details,
                task.created_at,
            )
            ctx = ActivityContext(info, cancelled=task.cancel_requested, started=True)
            # Held (lease renewed, not claimed back) until its outcome is written.
            self._remote[task.task_id] = ctx
            try:
                result = await run_attempt(Attempt(task.task_id, defn, spec, attempt_no, ctx))
                outcome = self._decide(spec, attempt_no, task.created_at, result, ctx.details)
                now = self.clock.now()
                await self.store.finish_task(task.task_id, self.worker_id, attempt_no, outcome, now)
            finally:
                self._remote.pop(task.task_id, None)
        except Exception:
            logger.exception("Activity task %s failed in worker %s", task.task_id, self.worker_id)
        finally:
            self._free_slot()

    # -- timers and heartbeats ----------------------------------------------------------

    async def _timer_loop(self) -> None:
        while not self._stopping.is_set():
            mark = self.store.watermark()
            now = self.clock.now()
            next_due = await self.store.fire_timers(now, 500)
            if next_due is not None and next_due <= now:
                continue
            delay = POLL_INTERVAL if next_due is None else min(POLL_INTERVAL, next_due - now)
            await self.store.wait([TOPIC_TIMERS], max(delay, 0.001), since=mark)
            if next_due is not None and self.clock.now() >= next_due:
                self.store.hub.notify([TOPIC_TASKS])  # a retry may have come due

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self._beat()
            except Exception:
                logger.exception("Heartbeat of worker %s failed", self.worker_id)

    async def _beat(self) -> None:
        """Renew leases, save heartbeat details, and learn of cancellations and lost leases."""
        held = [d.run_id for d in self._drivers.values() if d.held]
        running = self._running()
        tasks = {task_id: (ctx.info.attempt, ctx.details) for task_id, ctx in running.items()}
        now = self.clock.now()
        lost, cancelled = await self.store.heartbeat(
            self.worker_id, runs=held, tasks=tasks, now=now, lease_until=now + self.lease_seconds
        )
        if self.worker_id in lost:
            # Dropped from `workers` as silent (a long stall): be listed, and serve, again.
            # Its code has not changed: parked runs stay parked.
            logger.warning("Worker %s was presumed gone; registering again", self.worker_id)
            await self.store.register_worker(self._record(), unpark=False)
        for task_id in cancelled | (lost & set(running)):
            victim = running.get(task_id)
            if victim is not None:
                victim.cancelled = True
        for run_id in lost:
            driver = self._drivers.get(run_id)
            if driver is not None and driver.held and not driver.stepping:
                logger.warning("Worker %s lost its lease on run %s", self.worker_id, run_id)
                self._forget(driver)


class _Stop(Exception):
    pass


class _StoreTrouble(Exception):
    """A store call of a step failed with the driver's own error, not a `StoreError`."""


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
