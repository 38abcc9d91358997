"""Stepping runs: a live run's inputs into its engine, its commands out as one commit.

A `Driver` is one live run in a worker: its `durable.engine.WorkflowRun` (rebuilt by replay
when it is not in memory) and the inputs waiting to go into its journal. A *step* applies
those inputs one at a time, turns the commands the code issued into the rows they imply
(activity tasks — leased at once to this worker when it serves them —, external waits'
rows, timers, child runs, published values, outgoing items) and submits one
`durable.store.StepCommit`; the *committer* writes the pending steps of every run in one
transaction (group commit). A step whose run moved on elsewhere is dropped; one the code
cannot replay is parked with the reason; one whose data breaks the commit is parked alone
while its batch goes through.

`RunStepping` is a part of `durable.worker.Worker`, kept apart for size: it uses the worker's
store, clock and identity, and the activity slots of `durable.attempts`; the rows a step's
commands, effects and close imply are made by its own part `durable.commanding.StepRows`.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from . import journal, payload, steplogs, tracing, updates
from .clock import Clock
from .commanding import StepRows
from .committing import GroupCommit
from .context import ActivityContext
from .definition import ActivityDefinition, WorkflowDefinition
from .engine import Command, WorkflowRun
from .errors import NonDeterminismError, RemoteError, StepDataError, StoreError
from .executor import Attempt
from .journal import WORKFLOW_ADDRESSED
from .replayer import engine_for, replay_journal
from .steps import HISTORY_WARN
from .store import (
    TOPIC_RUNS,
    ClaimedRun,
    JournalEntry,
    NewStepLog,
    StepCommit,
    Store,
)
from .telemetry import FIGURES

__all__ = ["HISTORY_LIMIT", "Driver", "RunStepping"]

logger = logging.getLogger("durable.worker")
T = TypeVar("T")

# A driver's input: (kind, data, time, inbox id or None, the attempt it reports the end of
# or None, the record ``data`` encodes when this worker built it or None).
Pending = tuple[str, bytes, float, int | None, ActivityContext | None, journal.Record | None]

HISTORY_LIMIT = 200_000  # journal length past which a run is failed: use continue_as_new
HAND_BACK_INITIAL = 0.1  # a run whose step the database failed is handed back after this...
HAND_BACK_MAX = 2.0  # ...doubling up to this while the database does not answer


class Driver:
    """A live run in this worker: its engine and what waits to go into its journal."""

    __slots__ = (
        "again",
        "ahead",
        "claimed",
        "engine",
        "finishing",
        "held",
        "local",
        "pending",
        "reclaimed",
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
        self.pending: list[Pending] = []  # inputs of its next step
        self.seen_inbox: set[int] = set()
        self.local: dict[str, ActivityContext] = {}  # task id -> running local attempt
        # Local attempts that ended, their results not yet committed: their task leases
        # are still renewed, and their tasks not taken back, until the commit says.
        self.finishing: dict[str, ActivityContext] = {}
        self.held = False
        self.stepping = False
        # Claimed again while a step was under way: the lease is this worker's anew, so a
        # step that hands it back must not drop the driver (`again`: step once more).
        self.reclaimed = False
        self.again = False
        self.warned = False
        # A local attempt its last step started, holding a slot: run by the task that
        # stepped, once the stepping ends (no task of its own; `_start_waiting`).
        self.ahead: Attempt | None = None


class RunStepping(GroupCommit, StepRows):
    """The worker's stepping of runs (see the module docstring)."""

    worker_id: str
    clock: Clock
    workflows: dict[str, WorkflowDefinition]
    activities: dict[str, ActivityDefinition]
    queues: tuple[str, ...]
    lease_seconds: float
    cache_size: int
    _drivers: collections.OrderedDict[str, Driver]
    _busy: int
    _work_started: int
    _waiting: collections.deque[tuple[Driver, Attempt]]
    _stopping: asyncio.Event
    _remote: dict[str, ActivityContext]

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

        def _spawn(self, coro: Any) -> None: ...

        def _start_waiting(self, keep: Driver | None = None) -> None: ...

        async def _run_local(self, driver: Driver, attempt: Attempt) -> None: ...

        def _salvage(self, driver: Driver) -> None: ...

        def _ship_logs(self, rows: list[NewStepLog]) -> None: ...

    def _accept(self, claimed: ClaimedRun) -> None:
        run = claimed.run
        driver = self._drivers.get(run.run_id)
        if driver is None:
            driver = Driver(run.run_id, self.workflows[run.name])
            self._drivers[run.run_id] = driver
        else:
            self._drivers.move_to_end(run.run_id)
        if driver.engine is not None and driver.engine.history_length != run.history_length:
            if not driver.stepping:
                driver.engine.evict()  # advanced elsewhere: rebuild by replay
                driver.engine = None
        driver.claimed = claimed
        driver.held = True
        driver.reclaimed = driver.stepping
        # A run not started yet gets its start input, once: not again when a claim made
        # while its first step commits still says history 0 (the engine has started it).
        fresh = driver.engine is None or driver.engine.history_length == 0
        if (
            run.history_length == 0
            and fresh
            and not any(p[0] == "workflow_started" for p in driver.pending)
        ):
            started = journal.encode(journal.WorkflowStarted(run.input))
            driver.pending.append(("workflow_started", started, self.clock.now(), None, None, None))
        for item in claimed.inbox:
            if item.id not in driver.seen_inbox:
                driver.seen_inbox.add(item.id)
                driver.pending.append((item.kind, item.data, item.time, item.id, None, None))
        self._kick(driver, force=True)
        self._trim_cache()

    def _kick(self, driver: Driver, force: bool = False, spawn: bool = True) -> bool:
        """Start stepping ``driver`` unless it is already or has nothing to step (and not
        ``force``): in a task of its own, or, with ``spawn=False``, in the caller's task,
        which must then await `_drive` (a local attempt that just ended: no task per step).
        Returns whether it started."""
        if driver.stepping or not (driver.pending or force):
            return False
        driver.stepping = True
        self._busy += 1
        self._work_started += 1
        if spawn:
            self._spawn(self._steps(driver))
        return True

    async def _steps(self, driver: Driver) -> None:
        """A task stepping ``driver``, then running the attempt its last step started."""
        ahead = await self._drive(driver)
        if ahead is not None:
            await self._run_local(driver, ahead)

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

    def _forget(self, driver: Driver) -> None:
        # Results of local attempts that were to ride the next step are kept and delivered
        # on their own (fenced by their task leases), whatever made the driver go.
        self._salvage(driver)
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

    async def _drive(self, driver: Driver) -> Attempt | None:
        """Step ``driver`` while it has inputs; return the attempt its last step started
        for the caller to run (`Driver.ahead`), if any."""
        try:
            first = True
            # Steps go on while stopping: results of attempts that finish within the grace
            # period are committed (new activities then go to the task table for others).
            while (driver.pending or first or driver.again) and driver.held:
                if driver.ahead is not None:  # another step first: it starts now, apart
                    self._spawn(self._run_local(driver, driver.ahead))
                    driver.ahead = None
                first = False
                driver.again = False
                if tracing.enabled():
                    run = driver.claimed.run if driver.claimed is not None else None
                    with tracing.step_span(
                        driver.workflow.name,
                        run.workflow_id if run else "",
                        driver.run_id,
                        run.trace if run else None,
                    ):
                        stepped = await self._step(driver)
                else:  # no span: not even a no-op context manager per step
                    stepped = await self._step(driver)
                if not stepped:
                    break
        except StepDataError as exc:
            # What this step holds breaks a constraint of the database: retrying it would
            # fail again, so park the run with the reason (its neighbours were committed).
            problem = (
                f"Worker {self.worker_id} could not commit a step of this run: {exc}. It is "
                "parked until a worker starts (with code that fixes what the step wrote)."
            )
            try:
                await self._park(driver, problem)
            except Exception:
                logger.exception("Could not park run %s", driver.run_id)
                self._forget(driver)
        except (StoreError, _StoreTrouble):
            # The database, not the run (a driver error too: disk I/O, a cancelled query):
            # drop it here; it comes back by a claim once the database answers (this
            # worker's lease, or another's after it expires).
            logger.exception("Worker %s could not step run %s", self.worker_id, driver.run_id)
            self._forget(driver)
            self._spawn(self._hand_back(driver.run_id))
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
        ahead, driver.ahead = driver.ahead, None
        return ahead

    async def _rebuild(self, driver: Driver) -> WorkflowRun:
        claimed = driver.claimed
        assert claimed is not None
        run = claimed.run
        engine = engine_for(driver.workflow, run)
        entries = await _stored(self.store.read_journal(run.run_id)) if run.history_length else []
        replay_journal(engine, run.run_id, entries, functools.partial(_entry_data, run.run_id))
        engine.take_effects()  # carried out when they were first recorded
        return engine

    async def _step(self, driver: Driver) -> bool:
        """One step: pending inputs in, one commit out. False when the driver should stop."""
        claimed = driver.claimed
        assert claimed is not None
        run = claimed.run
        driver.reclaimed = False  # what claims brought so far is pending: this step takes it
        cached = driver.engine is not None
        if driver.engine is None:
            try:
                driver.engine = await self._rebuild(driver)
            except (NonDeterminismError, _DamagedJournal) as err:
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
        # What the code logs while it runs live is kept with the run (`durable.steplogs`).
        engine.log_capture = captured = steplogs.Capture(run.run_id, base, 0)
        try:
            for kind, data, when, inbox_id, finished, record in inputs:
                if finished is not None:
                    commit.finished_tasks[finished.info.task_id] = finished.info.attempt
                if engine.outcome is not None:
                    # Late arrivals for a closed run are not journaled. What was sent to
                    # the workflow id (a signal, a cancellation) stays in the inbox when
                    # the run continued as new: the store moves it to the successor.
                    # Answers to this run's own commands are consumed.
                    if inbox_id is not None and not (
                        kind in WORKFLOW_ADDRESSED and engine.outcome.status == "continued_as_new"
                    ):
                        commit.consumed_inbox.append(inbox_id)
                        if kind == journal.Kind.UPDATE_ACCEPTED:  # it never will be answered
                            updates.answer_closed(commit, data, engine.outcome.status)
                    continue
                if inbox_id is not None:
                    commit.consumed_inbox.append(inbox_id)
                # A record this worker's attempt built is applied as it is, not decoded.
                decoded = payload.decode(data) if record is None else {}
                if kind == journal.Kind.UPDATE_ACCEPTED and inbox_id is not None:
                    # Screened before anything is journaled (`durable.updates.admit`).
                    known = self.store.read_update(run.workflow_id, str(decoded.get("id")))
                    if not updates.admit(engine, decoded, commit, await _stored(known)):
                        continue
                when = max(when, engine._now)
                new = engine.apply(kind, decoded, when, record=record)
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
        doomed = self._apply_effects(driver, engine, commit)
        outcome = engine.outcome
        if outcome is not None:
            self._close(driver, engine, commit)
            if outcome.error is not None:
                logger.info(
                    "Workflow %r (%s) %s: %s",
                    driver.workflow.name,
                    run.workflow_id,
                    outcome.status,
                    outcome.error,
                )
        commit.release_lease = outcome is not None or not (driver.local or local)
        try:
            accepted = await self._submit(commit)
        except Exception as exc:
            # Keep the inputs, so that results of activities that finished are delivered
            # on their own rather than lost (see `_forget`).
            driver.pending = inputs + driver.pending
            if isinstance(exc, StoreError):  # StepDataError too
                raise
            raise _StoreTrouble(exc) from exc
        for task_id in commit.finished_tasks:
            driver.finishing.pop(task_id, None)
        engine.log_capture = None
        if accepted:
            self._ship_logs(captured.rows())
            name = driver.workflow.name
            FIGURES.step(name, first=base == 0, cached=cached, commands=len(commands))
            if outcome is not None:
                FIGURES.closed_run(name, outcome.status)
            if doomed:  # parent_close="terminate": after the close is committed
                await self._terminate_children(run.workflow_id, run.run_id, doomed, commit)
        else:
            logger.info(
                "Run %s moved on without worker %s; dropping it", run.run_id, self.worker_id
            )
            driver.pending = inputs + driver.pending  # finished attempts are delivered apart
            self._forget(driver)
            return False
        for attempt in local:
            driver.local[attempt.task_id] = attempt.context
            self._waiting.append((driver, attempt))
        self._start_waiting(keep=driver)
        if commit.release_lease:
            # Claimed again while this step committed (its inbox had new items): the lease
            # is this worker's anew and the items are pending here, so step on; unless the
            # claim read the run before this commit (the commit released that claim's lease
            # and the store marked the run ready: it comes back with its items, to this
            # engine, rather than being refused a step and rebuilt by replay).
            claim = driver.claimed.run.history_length if driver.claimed else base
            if driver.reclaimed and outcome is None and (claim > base or not commit.entries):
                driver.again = True
                return True
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

    async def _hand_back(self, run_id: str) -> None:
        """A run dropped because the database failed its step is still leased to this
        worker and not ready, so no claim would take it before its lease expired
        (`lease_seconds`, 30 s by default). As soon as the database answers, its lease is
        made to end now (renewed until now), and a claim (this worker's, woken here) takes it
        again from its journal."""
        delay = HAND_BACK_INITIAL
        while not self._stopping.is_set():
            driver = self._drivers.get(run_id)
            if driver is not None and driver.held:
                return  # claimed again meanwhile (its lease lapsed, or was handed back)
            now = self.clock.now()
            try:
                await self.store.heartbeat(
                    self.worker_id, runs=[run_id], tasks={}, now=now, lease_until=now
                )
            except Exception as exc:
                logger.debug("Handing back run %s failed (%r); trying again", run_id, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, HAND_BACK_MAX)
                continue
            self.store.hub.notify([TOPIC_RUNS])
            return

    async def _park(self, driver: Driver, problem: str) -> None:
        logger.error("Parking run %s: %s", driver.run_id, problem)
        await self.store.park(driver.run_id, self.worker_id, problem)
        self._forget(driver)


def _entry_data(run_id: str, entry: JournalEntry) -> dict[str, Any]:
    """A journal entry's data for replay; `_DamagedJournal` naming it if it cannot be read."""
    try:
        data = payload.decode(entry.data)
    except Exception as exc:
        raise _DamagedJournal(run_id, entry, str(exc)) from exc
    if not isinstance(data, dict):
        raise _DamagedJournal(run_id, entry, f"its data is a {type(data).__name__}, not a map")
    return data


class _DamagedJournal(Exception):
    """A journal entry of the run cannot be read: the run is parked, saying which."""

    def __init__(self, run_id: str, entry: JournalEntry, why: str) -> None:
        super().__init__(
            f"Journal entry {entry.seq} ({entry.kind}) of run {run_id} cannot be read: {why}. "
            "The journal is damaged (restored from a bad backup, or written by hand?), so the "
            "run cannot be replayed; it is parked. `durable show` shows what can be read; "
            "terminate the run, or restore its journal."
        )


class _StoreTrouble(Exception):
    """A store call of a step failed with the driver's own error, not a `StoreError`."""


async def _stored(call: Awaitable[T]) -> T:
    """A store call's result; its failure other than a `StoreError` as `_StoreTrouble`."""
    try:
        return await call
    except StoreError:
        raise
    except Exception as exc:
        raise _StoreTrouble(exc) from exc
