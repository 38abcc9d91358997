"""The worker: claims runs and tasks, steps workflow code, runs activities, commits in groups.

Inside `Worker.run`, one task group holds a few loops:

- the *claim loop* leases runs that have work (new inbox items, a dead worker's runs) and
  hands them to their `Driver` (one per live run, kept in a bounded LRU);
- a driver *step* moves the run's pending inputs into its `WorkflowRun` one at a time,
  collects the commands, and submits one `StepCommit`;
- the *committer* writes every pending step of every run in one transaction (group commit),
  so steady state costs one durable write per step, shared across workflows;
- after a commit, activities this worker serves start at once, locally, with their task row
  already leased to it; their results go straight into the run's next step (no round trip);
- the *task loop* claims activity tasks queued for this worker's queues (retries, activities
  of workflows run elsewhere, a dead worker's tasks);
- the *timer loop* turns due timers into inbox items, fires due schedules
  (`durable.schedules`), and sweeps for task leases that expired (attempts lost, or remote
  attempts past their timeouts: see `Worker._sweep`);
- the *heartbeat loop* renews leases, saves activity heartbeats, and delivers cancellation;
- the *query loop* answers queries of the runs it serves (`durable.answering`).

A run's lease is held only while the worker has something in flight for it; a sleeping run
holds none, and its loop is evicted from memory when the cache is full.

Stepping lives in `durable.stepping` and activity attempts in `durable.attempts` (parts of
`Worker`, kept apart for size); this module holds the loops, the lifecycle and idleness.
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
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Self

from . import gcpolicy, retry, steplogs
from .answering import QueryAnswering
from .attempts import ActivityAttempts
from .context import ActivityContext
from .definition import (
    ActivityDefinition,
    WorkflowDefinition,
    bind_activity,
    workflow_definition,
)
from .errors import DatabaseUnusable
from .executor import Attempt
from .mapping import BATCH_WORKFLOW, batch
from .retention import keep, older_than_seconds
from .schedules import fire_due
from .signature import describe
from .stepping import Driver, RunStepping
from .store import (
    TOPIC_LIMITS,
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    NewStepLog,
    StepCommit,
    Store,
    TaskOutcome,
    WorkerRecord,
    open_store,
)
from .topics import tasks_topics

if TYPE_CHECKING:
    from .client import Client

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # how long a claim survives a silent worker
HEARTBEAT_INTERVAL = 5.0  # seconds between lease renewals / activity heartbeat flushes
POLL_INTERVAL = 1.0  # fallback wake-up when no notification arrives (seconds)
CLAIM_RUNS = 100  # runs one claim takes at most
CACHE_SIZE = 1000  # live workflow loops kept in memory; idle ones beyond are evicted
STOP_GRACE = 10.0  # seconds running activities get to finish on a graceful stop
LOOP_RETRY_INITIAL = 0.1  # a failed claim/task/timer loop restarts after this, doubling...
LOOP_RETRY_MAX = 5.0  # ...up to this while it keeps failing
SWEEP_INTERVAL = 1.0  # seconds between sweeps for expired task leases (see _sweep)


class Worker(RunStepping, ActivityAttempts, QueryAnswering):
    """Serves workflows and activities from one database until stopped.

        worker = durable.Worker(client, workflows=[place_order], activities=[charge],
                                queues=["default", "payments"], max_concurrency=100)
        await worker.run()          # until cancelled, or SIGTERM/SIGINT (graceful)

        async with worker:          # or in the background, e.g. in tests
            ...

    ``activities`` takes ``@activity`` functions and methods of objects
    (``payments.charge``: the worker calls it on that object, which carries its
    dependencies; ``Payments.charge``, taken from the class, is refused).
    ``queues`` defaults to every queue the given workflows and activities name (an
    activity without a queue runs on its caller's queue, so it is served on the queues of
    the workflows here; a worker of only such activities serves ``"default"`` unless
    ``queues`` names its callers' queues).
    ``max_concurrency`` bounds the activity attempts running at once.
    ``lease_seconds`` (default `LEASE_SECONDS`, 30) is how long this worker's claims on
    workflows and activity tasks outlive it if it dies without a word: other workers take
    them over after that. It renews them six times per lease (at least every
    `HEARTBEAT_INTERVAL`), so a shorter lease means a faster takeover and more writes.
    ``retention`` (a timedelta or seconds; default none): prune the runs closed longer ago
    than that, at start and every `durable.retention.RETENTION_INTERVAL` seconds, in small
    batches beside the work (as ``client.prune`` does; one worker doing it is enough).
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
        retention: timedelta | float | None = None,
    ) -> None:
        self.client = client
        # Prune runs closed longer ago than this, now and then (durable.retention.keep).
        self.retention = None if retention is None else older_than_seconds(retention, "retention")
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
            adefn = bind_activity(fn)
            known = self.activities.get(adefn.name)
            if known is not None and known.fn != adefn.fn:  # bound methods: same object?
                if adefn.method and known.method:
                    raise ValueError(
                        f"Two objects register method activity {adefn.name!r}; a worker calls "
                        "an activity on one object: give it one object's method (or name the "
                        "methods apart with @activity(name=...))."
                    )
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
            # An activity without a queue runs on its callers' queues: those of the
            # workflows here, else "default" (give ``queues`` for other callers).
            found |= {d.queue for d in self.activities.values() if d.queue is not None}
            queues = sorted(found) or ["default"]
        self.queues = tuple(queues)
        self._task_topics = tasks_topics(self.queues)  # what the task loop waits for
        if self.workflows:  # the batches of durable.map(..., batch_size=), on any queue
            self.workflows.setdefault(BATCH_WORKFLOW, workflow_definition(batch))
        self.max_concurrency = max_concurrency
        self.cache_size = cache_size
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = client.clock
        self._store: Store | None = None
        self._drivers: collections.OrderedDict[str, Driver] = collections.OrderedDict()
        self._commits: list[tuple[StepCommit, asyncio.Future[bool]]] = []
        self._commit_wanted = asyncio.Event()
        self._slots = max_concurrency
        self._slot_freed = asyncio.Event()
        self._remote: dict[str, ActivityContext] = {}  # task id -> running claimed attempt
        # Attempts that finished while their result could not be written (the database out
        # of reach): kept, their task leases renewed, and delivered once it answers, so an
        # outage costs time rather than running the activities again.
        self._undelivered: collections.OrderedDict[str, tuple[ActivityContext, TaskOutcome]] = (
            collections.OrderedDict()
        )
        self._undelivered_added = asyncio.Event()
        # Local attempts leased to this worker, waiting for an activity slot.
        self._waiting: collections.deque[tuple[Driver, Attempt]] = collections.deque()
        self._log_rows: list[NewStepLog] = []  # captured step logs, stored in batches
        self._log_flushing = False
        self._tg: asyncio.TaskGroup | None = None
        self._stopping = asyncio.Event()
        self._state = "new"
        self._background: asyncio.Task[None] | None = None
        self._started = asyncio.Event()
        self._busy = 0  # steps and commits in flight
        # Per claim loop: the hub generation read before its last query found nothing, or
        # None while it queries or holds what it found (see idle_token).
        self._idle_marks: dict[str, int | None] = {"runs": None, "tasks": None}
        self._swept_at = 0.0  # the clock when _sweep last ran
        self._schedule_waits = False  # a schedule it fired waits for a run to close
        self._work_started = 0  # steps kicked and activity slots taken, ever (idle_token)
        self._started_at: float | None = None
        # What clients starting a workflow by name check their arguments against.
        self._signatures = {name: describe(d.fn) for name, d in self.workflows.items()}

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
        steplogs.install()
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
        gcpolicy.worker_started()  # undone in the finally below
        try:
            await self.store.register_worker(self._record())
            await self._refresh_limits()
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self._committer())
                tg.create_task(self._heartbeat_loop())
                tg.create_task(self._supervise("timer loop", self._timer_loop))
                tg.create_task(self._supervise("delivery loop", self._delivery_loop))
                if self.workflows:
                    tg.create_task(self._supervise("claim loop", self._claim_loop))
                    tg.create_task(self._supervise("query loop", self._query_loop))
                if self.activities:
                    tg.create_task(self._supervise("task loop", self._task_loop))
                if self.retention is not None:
                    tg.create_task(self._supervise("retention loop", self._keep))
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
            gcpolicy.worker_stopped()
            self._tg = None
            await self._store_logs()
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
        running.update((task_id, ctx) for task_id, (ctx, _) in self._undelivered.items())
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
        said = False
        while time.monotonic() < deadline:
            wanted = [c for c in self._running().values() if c.started and not c.cancelled]
            if not wanted and not self._busy:
                if said:
                    logger.info("Worker %s: everything in flight has ended", self.worker_id)
                return
            if not said:
                said = True
                names = sorted({c.info.name for c in wanted})
                logger.info(
                    "Worker %s stopping: waiting up to %g s for %d activity attempt(s) %s and "
                    "%d step(s) or commit(s) in flight; what is still running then is handed "
                    "back to the queue",
                    self.worker_id,
                    STOP_GRACE,
                    len(wanted),
                    names,
                    self._busy,
                )
            await asyncio.sleep(0.05)
        logger.info(
            "Worker %s: grace period over; handing back %d attempt(s) still running",
            self.worker_id,
            len([c for c in self._running().values() if c.started and not c.cancelled]),
        )

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
            signatures=self._signatures,
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

    async def _keep(self) -> None:
        assert self.retention is not None
        await keep(self.client.url, self.clock, self.retention, self.worker_id)

    # -- idleness (for time skipping in durable.testing) ---------------------------------

    def is_idle(self) -> bool:
        """True when nothing is in flight in this worker's memory and its claim loops have
        seen every notification: only the database (a timer, a task or run not yet claimed)
        or the clock can make progress now. See `idle_token`."""
        return self.idle_token() is not None

    def idle_token(self) -> int | None:
        """``None`` while this worker holds any work in memory; otherwise a number that
        changes whenever it starts some (a step, an activity attempt).

        Work is held in memory from before the query that claims it until after the write
        that hands it back is committed: a claim loop counts as busy from before its query
        until what it found is accepted (a step kicked, an activity slot taken); a step
        from its kick until its commit returned; an activity attempt holds its slot from
        its claim or scheduling until its outcome is written. So at every instant each
        piece of work is either in the database (a run ready, a task visible, a timer due)
        or makes this ``None``, and two equal tokens around a read of the database mean the
        worker claimed nothing meanwhile (`durable.testing` relies on this to skip time).
        New work kept in memory must keep this so: counted here until its write has
        committed, and started through `_kick` or by taking a slot.
        """
        if self._busy or self._remote or self._commits or self._waiting or self._undelivered:
            return None
        if self._slots != self.max_concurrency:
            return None  # an activity attempt, claimed or local, has not ended
        for d in self._drivers.values():
            if d.local or d.pending or d.stepping or d.finishing:
                return None
        topics = {"runs": [TOPIC_RUNS], "tasks": self._task_topics}
        wanted = (["runs"] if self.workflows else []) + (["tasks"] if self.activities else [])
        for key in wanted:
            mark = self._idle_marks[key]
            if mark is None or self.store.hub.notified_since(topics[key], mark):
                return None
        return self._work_started

    # -- claim loop ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        names = list(self.workflows)
        while not self._stopping.is_set():
            mark = self.store.watermark()
            now = self.clock.now()
            self._idle_marks["runs"] = None  # busy until what the query finds is accepted
            claimed = await self.store.claim_runs(
                self.worker_id,
                queues=self.queues,
                names=names,
                now=now,
                lease_until=now + self.lease_seconds,
                limit=CLAIM_RUNS,
            )
            for item in claimed:
                self._accept(item)
            if len(claimed) < CLAIM_RUNS:
                # Every run claimable when the query ran was taken: what becomes claimable
                # later is notified (an inbox item, a start, a released lease) or found by
                # the next poll (an expired lease), so the next claim waits for that, as
                # after an empty one, instead of asking again at once for nothing.
                self._idle_marks["runs"] = mark
                await self.store.wait([TOPIC_RUNS], POLL_INTERVAL, since=mark)
            else:
                self._idle_marks["runs"] = None
                await asyncio.sleep(0)

    async def _task_loop(self) -> None:
        names = list(self.activities)
        while not self._stopping.is_set():
            if self._slots <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            mark = self.store.watermark()
            now = self.clock.now()
            self._idle_marks["tasks"] = None  # busy until what the query finds is started
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
                self._work_started += 1
                self._spawn(self._run_claimed(task))
            if not tasks:
                self._idle_marks["tasks"] = mark
                await self.store.wait(self._task_topics, POLL_INTERVAL, since=mark)
            else:
                self._idle_marks["tasks"] = None

    # -- timers and heartbeats ----------------------------------------------------------

    async def _timer_loop(self) -> None:
        while not self._stopping.is_set():
            mark = self.store.watermark()
            now = self.clock.now()
            if now - self._swept_at >= SWEEP_INTERVAL or now < self._swept_at:
                await self._sweep(now)
                await self._refresh_limits()
            elif self.store.hub.pinned_since(TOPIC_LIMITS, self._limits_mark):
                await self._refresh_limits()
            next_due = await self.store.fire_timers(now, 500)
            scheduled, waiting = await fire_due(self.client, self.store, now)  # schedules
            if scheduled is not None and (next_due is None or scheduled < next_due):
                next_due = scheduled
            if waiting is not None:
                self._schedule_waits = waiting
            if next_due is not None and next_due <= now:
                continue
            delay = POLL_INTERVAL if next_due is None else min(POLL_INTERVAL, next_due - now)
            # A schedule holding ticks until a run closes is due when one does.
            topics = [TOPIC_TIMERS, TOPIC_LIMITS]
            if self._schedule_waits:
                topics.append(TOPIC_STATUS)
            await self.store.wait(topics, max(delay, 0.001), since=mark)
            if next_due is not None and self.clock.now() >= next_due:
                self.store.hub.notify([TOPIC_TASKS])  # a retry may have come due

    async def _sweep(self, now: float) -> None:
        """Count as lost the attempts whose task lease expired, on any queue and of any
        name, whoever ran them (`durable.retry.lost`: retried or failed per policy).

        The rule that enforces the timeouts of attempts run outside Python workers: a remote
        attempt's lease lasts its heartbeat timeout and never past its start-to-close
        deadline (`durable.tasks`), and if no remote worker polls that queue again, only
        this sweep — run by every worker, every `SWEEP_INTERVAL` seconds of its timer loop
        — finds it. It never runs anything (a retry is queued for a worker serving the
        name, or a remote poller); it skips this worker's own attempts (a lapsed lease of
        its own is alive), and it counts what a worker serving the name would count on
        claiming it, so it changes nothing but who notices first.
        """
        self._swept_at = now
        self._busy += 1  # a claimed task is held in memory until its outcome is written
        try:
            expired = await self.store.claim_tasks(
                self.worker_id,
                queues=None,
                names=None,
                now=now,
                lease_until=now + self.lease_seconds,
                limit=100,
                exclude=list(self._running()),
                expired_only=True,
            )
            for task in expired:
                outcome = retry.lost(task, now, self.worker_id)
                await self.store.finish_task(
                    task.task_id, self.worker_id, task.attempt, outcome, now
                )
        finally:
            self._busy -= 1

    async def _refresh_limits(self) -> None:
        """Learn which of this worker's queues have limits: their activities go through
        claims, never run here without one (`durable.limits`)."""
        mark = self.store.watermark()
        limited = frozenset(q.queue for q in await self.store.queue_limits(self.queues))
        # Both at once, after the read: while it is under way the step must still see the
        # old mark, so that limits set meanwhile keep the fast path shut (not the old set
        # under a new mark).
        self._limited, self._limits_mark = limited, mark

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
        # Attempts still under way (not those that ended with their result committed or
        # kept meanwhile: their task rows are gone or another's, and that is no news).
        under_way = dict(self._remote)
        for live in self._drivers.values():
            under_way.update(live.local)
        for task_id in cancelled | (lost & set(running)):
            victim = under_way.get(task_id)
            if victim is not None:
                if task_id in lost:
                    logger.warning(
                        "Worker %s lost its lease on task %s (%r attempt %d); another attempt "
                        "owns it now, so this one's result will not be recorded",
                        self.worker_id,
                        task_id,
                        victim.info.name,
                        victim.info.attempt,
                    )
                victim.cancelled = True
        for run_id in lost:
            driver = self._drivers.get(run_id)
            if driver is not None and driver.held and not driver.stepping:
                logger.warning("Worker %s lost its lease on run %s", self.worker_id, run_id)
                self._forget(driver)


class _Stop(Exception):
    pass


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
