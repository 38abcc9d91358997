"""Activity attempts in the worker: slots, local and claimed attempts, results kept.

An activity the worker serves starts at once, locally, when the step that scheduled it
commits (its task row already leased to this worker); its result rides the run's next step.
Attempts of tasks queued for this worker's queues (retries, activities of workflows run
elsewhere, a dead worker's tasks) are claimed by the *task loop*. Either way an attempt
holds one of ``max_concurrency`` slots, and its outcome is decided by `durable.retry`.
Results that cannot be written because the database is out of reach are kept (bounded)
and delivered by the *delivery loop* once it answers: an outage costs time, not work.

`ActivityAttempts` is a part of `durable.worker.Worker`, kept apart for size.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import frozen, journal, payload, retry, tracing
from .clock import Clock
from .context import ActivityContext, ActivityInfo
from .definition import ActivityDefinition
from .errors import RemoteError
from .executor import Attempt, AttemptResult, run_attempt
from .stepping import Driver
from .store import NewStepLog, Store, TaskOutcome, TaskRecord

__all__ = ["DELIVERY_RETRY_MAX", "MAX_UNDELIVERED", "ActivityAttempts"]

logger = logging.getLogger("durable.worker")

DELIVERY_RETRY_INITIAL = 0.1  # first wait before delivering a kept result again, doubling...
MAX_UNDELIVERED = 10_000  # finished attempts kept through a database outage, at most
DELIVERY_RETRY_MAX = 30.0  # ...up to this between tries while the outage lasts
LOG_FLUSH_DELAY = 0.2  # seconds captured step logs wait for others before one write
MAX_LOG_ROWS = 10_000  # step log records kept while they cannot be stored, at most


class ActivityAttempts:
    """The worker's activity attempts (see the module docstring)."""

    worker_id: str
    clock: Clock
    activities: dict[str, ActivityDefinition]
    queues: tuple[str, ...]
    lease_seconds: float
    _drivers: collections.OrderedDict[str, Driver]
    _slots: int
    _slot_freed: asyncio.Event
    _remote: dict[str, ActivityContext]
    _undelivered: collections.OrderedDict[str, tuple[ActivityContext, TaskOutcome]]
    _undelivered_added: asyncio.Event
    _waiting: collections.deque[tuple[Driver, Attempt]]
    _stopping: asyncio.Event
    _work_started: int
    _log_rows: list[NewStepLog]  # captured step logs waiting to be stored
    _log_flushing: bool

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

        def _spawn(self, coro: Any) -> None: ...

        def _kick(self, driver: Driver, force: bool = False, spawn: bool = True) -> bool: ...

        async def _drive(self, driver: Driver) -> Attempt | None: ...

        def _running(self) -> dict[str, ActivityContext]: ...

    # -- step logs (durable.steplogs) -----------------------------------------------------

    def _ship_logs(self, rows: list[NewStepLog]) -> None:
        """Store ``rows`` soon, together with others captured meanwhile."""
        if not rows:
            return
        self._log_rows.extend(rows)
        if len(self._log_rows) > MAX_LOG_ROWS:  # the database is out of reach: keep the newest
            dropped = len(self._log_rows) - MAX_LOG_ROWS
            del self._log_rows[:dropped]
            logger.warning("Worker %s dropped %d step log record(s)", self.worker_id, dropped)
        if not self._log_flushing:
            self._log_flushing = True
            self._spawn(self._flush_logs())

    async def _flush_logs(self) -> None:
        try:
            await asyncio.sleep(LOG_FLUSH_DELAY)  # let other attempts' records join
            await self._store_logs()
        finally:
            self._log_flushing = False

    async def _store_logs(self) -> None:
        """Store the captured records (also called once more as the worker stops)."""
        while self._log_rows:
            rows, self._log_rows = self._log_rows, []
            try:
                await self.store.append_logs(rows)
            except Exception:
                logger.warning(
                    "Worker %s could not store %d step log record(s)",
                    self.worker_id,
                    len(rows),
                    exc_info=True,
                )
                return

    def _decide(
        self,
        spec: dict[str, Any],
        attempt: int,
        created_at: float,
        result: AttemptResult,
        ctx: ActivityContext | None = None,
    ) -> TaskOutcome:
        """`durable.retry.decide` with this worker's clock and identity."""
        return retry.decide(
            spec, attempt, created_at, result, ctx, now=self.clock.now(), worker_id=self.worker_id
        )

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
        # `frozen.build`: one made per activity attempt, without ten `object.__setattr__`.
        return frozen.build(
            ActivityInfo,
            {
                "workflow_id": workflow_id,
                "run_id": run_id,
                "name": spec["name"],
                "attempt": attempt,
                "heartbeat_details": payload.decode(details) if details else None,
                "queue": spec["queue"],
                "task_id": task_id,
                "scheduled_at": datetime.fromtimestamp(scheduled_at, UTC),
                "timeout": spec.get("timeout"),
                "heartbeat_timeout": spec.get("heartbeat_timeout"),
            },
        )

    def _free_slot(self) -> None:
        self._slots += 1
        self._slot_freed.set()
        self._start_waiting()

    def _start_waiting(self, keep: Driver | None = None) -> None:
        """Start local attempts waiting for a slot, oldest first (not once stopping: their
        task rows are handed back to the queue instead). The first of ``keep``'s, the run
        whose step just committed, is left to the task stepping it (`Driver.ahead`)."""
        while self._slots > 0 and self._waiting and not self._stopping.is_set():
            driver, attempt = self._waiting.popleft()
            self._slots -= 1
            self._work_started += 1
            if driver is keep and driver.ahead is None:
                driver.ahead = attempt
            else:
                self._spawn(self._run_local(driver, attempt))

    async def _run_local(self, driver: Driver, attempt: Attempt) -> None:
        """Run ``attempt``; on the fast path step its run in this task, then run the
        attempt that step started, and so on: one task for a run's activities one after
        another."""
        ahead: Attempt | None = attempt
        while ahead is not None:
            step = False
            try:
                step = await self._attempt_local(driver, ahead)
            except Exception:
                # Its task lease lapses and the attempt is retried as lost, here or elsewhere.
                logger.exception(
                    "Activity task %s failed in worker %s", ahead.task_id, self.worker_id
                )
            finally:
                driver.local.pop(ahead.task_id, None)
                self._free_slot()
            # Its result goes into the run's next step, stepped in this task.
            ahead = await self._drive(driver) if step else None

    async def _attempt_local(self, driver: Driver, attempt: Attempt) -> bool:
        """Run a local attempt and hand its outcome on; whether the caller is to step the
        run now (the fast path: the result rides the run's next step)."""
        seq = journal.parse_task_id(attempt.task_id)[1]
        ctx = attempt.context
        if ctx.cancelled:
            # The workflow gave up on it while it waited for a slot: run nothing.
            error = RemoteError(
                "CancelledError", f"Activity {attempt.definition.name!r} was cancelled"
            )
            result = AttemptResult(error=error, cancelled=True)
        else:
            ctx.started = True
            ctx.started_at = self.clock.now()
            result = await run_attempt(attempt, seq)
            self._ship_logs(ctx.logs)
        fast = driver.held and driver.run_id in self._drivers
        if result.error is None and fast:
            # The fast path: straight into the run's next step, one commit for both (the
            # record `retry.decide` would give, without the `TaskOutcome` around it).
            done = retry.completed(
                seq, result.result, attempt.attempt, ctx.started_at, self.worker_id
            )
            return self._ride(driver, attempt, done.KIND, journal.encode(done), done)
        spec = dict(attempt.spec)
        spec["_seq"] = seq
        scheduled = ctx.info.scheduled_at.timestamp()
        outcome = self._decide(spec, attempt.attempt, scheduled, result, ctx)
        if outcome.kind == "done" and fast:  # failed for good: into the next step as well
            return self._ride(driver, attempt, outcome.item_kind, outcome.item_data, outcome.record)
        try:
            await self.store.finish_task(
                attempt.task_id, self.worker_id, attempt.attempt, outcome, self.clock.now()
            )
        except Exception:
            logger.exception("Could not record the end of activity task %s", attempt.task_id)
            self._keep_undelivered(ctx, outcome)
            return False
        driver.local.pop(attempt.task_id, None)
        if not driver.local and not driver.pending and not driver.stepping and driver.held:
            # Nothing more in flight here: the inbox item brings the run back.
            self._kick(driver, force=True)
        return False

    def _ride(self, driver: Driver, attempt: Attempt, kind: str, data: bytes, record: Any) -> bool:
        """Put the end of a local attempt into its run's next step (one commit for both);
        whether the caller is to step the run now."""
        driver.pending.append((kind, data, self.clock.now(), None, attempt.context, record))
        driver.finishing[attempt.task_id] = attempt.context
        driver.local.pop(attempt.task_id, None)
        return self._kick(driver, spawn=False)

    async def _run_claimed(self, task: TaskRecord) -> None:
        try:
            spec = payload.decode(task.data)
            spec["_seq"] = task.seq
            attempt_no = task.attempt
            now = self.clock.now()
            if task.status == "running":
                # Its last worker died mid-attempt: that attempt failed.
                outcome = retry.lost(task, now, self.worker_id)
                await self.store.finish_task(task.task_id, self.worker_id, attempt_no, outcome, now)
                return
            if task.cancel_requested:
                # Its workflow gave up on it before it (re)started: record that, run nothing.
                outcome = retry.cancelled(task)
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
            ctx = ActivityContext(
                info, cancelled=task.cancel_requested, started=True, started_at=self.clock.now()
            )
            if tracing.enabled():  # the run's trace, for the attempt's span
                run = await self.store.get_run(task.workflow_id, task.run_id)
                ctx.trace = run.trace if run is not None else None
            # Held (lease renewed, not claimed back) until its outcome is written.
            self._remote[task.task_id] = ctx
            try:
                result = await run_attempt(Attempt(task.task_id, defn, spec, attempt_no, ctx))
                self._ship_logs(ctx.logs)
                outcome = self._decide(spec, attempt_no, task.created_at, result, ctx)
                now = self.clock.now()
                try:
                    await self.store.finish_task(
                        task.task_id, self.worker_id, attempt_no, outcome, now
                    )
                except Exception:
                    logger.exception("Could not record the end of activity task %s", task.task_id)
                    self._keep_undelivered(ctx, outcome)
            finally:
                self._remote.pop(task.task_id, None)
        except Exception:
            logger.exception("Activity task %s failed in worker %s", task.task_id, self.worker_id)
        finally:
            self._free_slot()

    # -- results kept through an outage ---------------------------------------------------

    def _salvage(self, driver: Driver) -> None:
        """Keep the results of local attempts that a failed step was to commit."""
        for kind, data, _, _, finished, _ in driver.pending:
            if finished is not None:
                self._keep_undelivered(finished, TaskOutcome("done", kind, data))
                driver.finishing.pop(finished.info.task_id, None)

    def _keep_undelivered(self, ctx: ActivityContext, outcome: TaskOutcome) -> None:
        self._undelivered[ctx.info.task_id] = (ctx, outcome)
        while len(self._undelivered) > MAX_UNDELIVERED:
            task_id, _ = self._undelivered.popitem(last=False)
            logger.warning(
                "Worker %s keeps at most %d undelivered results; dropping that of task %s "
                "(its attempt will count as lost and run again)",
                self.worker_id,
                MAX_UNDELIVERED,
                task_id,
            )
        self._undelivered_added.set()

    async def _delivery_loop(self) -> None:
        """Deliver kept results, oldest first, retrying with backoff while the database
        is out of reach. A result whose attempt was meanwhile declared lost (its lease taken
        over) is dropped: the fence says another attempt owns the task now."""
        delay = DELIVERY_RETRY_INITIAL
        while True:
            if not self._undelivered:
                if self._stopping.is_set():
                    return
                self._undelivered_added.clear()
                await self._undelivered_added.wait()
                continue
            task_id, (ctx, outcome) = next(iter(self._undelivered.items()))
            try:
                ok = await self.store.finish_task(
                    task_id, self.worker_id, ctx.info.attempt, outcome, self.clock.now()
                )
            except Exception as exc:
                logger.info(
                    "Worker %s: %d finished activity result(s) wait for the database (%s); "
                    "next try in %.1f s",
                    self.worker_id,
                    len(self._undelivered),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)  # through a graceful stop too, for its grace
                delay = min(delay * 2, DELIVERY_RETRY_MAX)
                continue
            delay = DELIVERY_RETRY_INITIAL
            self._undelivered.pop(task_id, None)
            if not ok:
                logger.info(
                    "Result of task %s (attempt %d) arrived after its lease was taken over",
                    task_id,
                    ctx.info.attempt,
                )
