"""The replay engine: journal inputs in, workflow commands out, with no store and no clock.

A `WorkflowRun` owns one workflow run's code, running on a `WorkflowLoop`: an asyncio event
loop of its own whose ``call_soon`` is a FIFO, whose ``time()`` is the time of the input
being applied, and whose ``call_at``/``call_later`` become durable timers. The worker (or a
test) feeds it input entries one at a time, in journal order, with `WorkflowRun.apply`; the
loop runs to quiescence after each, and the commands the code issued are returned to be
journaled right after that input. Live execution and replay take exactly the same path:
replay passes the commands recorded after each input, and every command the code issues is
checked against them (kind, name and key arguments); a mismatch is a
`NonDeterminismError`, and nothing is written.

Inputs: ``workflow_started``, ``activity_completed``, ``activity_failed``,
``activity_retrying``, ``timer_fired``, ``signal_received``, ``child_completed``,
``child_failed``, ``cancel_requested``, ``update_accepted``, and
``run_retried``/``run_forked`` (which only tell: an operator's repair, `durable.repair`).
Commands: ``activity_scheduled``, ``timer_started``, ``child_started``, ``published``,
``marker``, ``update_completed``, and the closing ``workflow_completed``,
``workflow_failed``, ``workflow_cancelled``, ``continued_as_new``.

Commands also carry *effects* the worker carries out beyond the journal (a task row, a
timer row, a child run); cancelling an activity, timer or child is an effect alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, cast

from . import codeloc, journal, payload
from .calls import Calls
from .definition import WorkflowDefinition
from .errors import (
    NonDeterminismError,
    RemoteError,
    SerializationError,
)
from .handlers import Handlers
from .journal import CLOSING_KINDS, INPUT_KINDS, describe_command, same_command
from .layout import layout
from .loop import WorkflowLoop, current_run
from .queries import Queries
from .waits import Waits

__all__ = [
    "CLOSING_KINDS",
    "INPUT_KINDS",
    "Command",
    "Effects",
    "Outcome",
    "WorkflowInfo",
    "WorkflowLoop",
    "WorkflowRun",
    "current_run",
]
# WorkflowLoop and current_run live in durable.loop; re-exported for the engine's users.

logger = logging.getLogger(__name__)

# The code that runs workflow coroutines: frames outside it are not the workflow's.
_DRIVER = WorkflowLoop.run_ready.__code__

EVICTION_ROUNDS = 20  # cancel-and-pump rounds before an evicted run's coroutines are closed


@dataclass(frozen=True)
class WorkflowInfo:
    """What `durable.info()` returns inside a workflow."""

    id: str
    run_id: str
    name: str
    queue: str
    started_at: datetime
    parent_id: str | None
    is_replaying: bool
    history_length: int
    #: The tick a schedule started this run for (`durable.schedules`); ``None`` for a run
    #: not started by a schedule. Not to be confused with `ActivityInfo.scheduled_at`,
    #: when an activity was scheduled.
    scheduled_at: datetime | None = None


@dataclass
class Command:
    """A command the code issued: journaled as ``kind``/``data`` at ``seq``. ``record`` is
    the typed command it was built from (``data`` adds its branch and group)."""

    seq: int
    kind: str
    data: dict[str, Any]
    record: journal.Record


@dataclass
class Effects:
    """Effects of one `WorkflowRun.apply` that are not journal entries."""

    cancelled_activities: list[int] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    cancelled_children: list[tuple[str, str]] = field(default_factory=list)  # (id, run id)
    # Children whose parent-close policy is "terminate", left running as the run closed.
    terminated_children: list[tuple[str, str]] = field(default_factory=list)  # (id, run id)


# Every field of `Effects`: `WorkflowRun.take_effects` keeps an empty one only while all are.
_EFFECT_FIELDS = tuple(f.name for f in fields(Effects))


@dataclass(frozen=True)
class Outcome:
    """How a run closed."""

    status: str  # completed | failed | cancelled | continued_as_new
    result: bytes | None = None
    error: RemoteError | None = None
    continue_args: bytes | None = None
    successor_run_id: str | None = None


class _ContinueAsNew(BaseException):
    # BaseException so that a workflow's `except Exception` does not swallow it.
    def __init__(self, args: bytes) -> None:
        super().__init__()
        self.encoded_args = args


class WorkflowRun(Calls, Waits, Handlers, Queries):
    """One run of one workflow, advanced one input at a time.

        run = WorkflowRun(definition, workflow_id="order-42", run_id="...", queue="default")
        commands = run.apply("workflow_started", {"args": encoded}, time=t0)
        # journal the input, then `commands`; after a restart, replay with `recorded=`.

    ``apply`` with ``recorded`` (the commands the journal holds after this input) replays:
    the code's commands are checked against them and `NonDeterminismError` is raised on the
    first difference. Without it the step is live and the commands are new.
    """

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        workflow_id: str,
        run_id: str,
        queue: str,
        parent_id: str | None = None,
        timeout: float | None = None,
        scheduled_at: float | None = None,
    ) -> None:
        self.definition = definition
        self.scheduled_at = scheduled_at
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.queue = queue
        self.parent_id = parent_id
        # The run's own timeout (fixed when it was started: a child's may be a per-call
        # override), else the decorator's.
        self.timeout = timeout if timeout is not None else definition.timeout
        self.history_length = 0
        self.started_at = 0.0
        self.outcome: Outcome | None = None
        self.is_replaying = False
        self.published: dict[str, bytes] = {}
        # Where records logged by the code go while it runs live (`durable.steplogs`).
        self.log_capture: Any = None
        self.tags: dict[str, str] = {}  # set by durable.set_tags in this run, merged
        # `random` (made on first use: most runs never draw, and a seeded Random costs a
        # SHA-512 of the run id and 2.5 KB of state per run in the worker's cache).
        self._random: random.Random | None = None
        self._now = 0.0
        self._loop = WorkflowLoop(self)
        self._main: asyncio.Task[Any] | None = None
        self._commands: list[Command] = []
        self._effects = Effects()
        self._expected: list[tuple[str, dict[str, Any]]] = []
        self._expected_pos = 0
        self._input_seq = 0
        self._nondeterminism: NonDeterminismError | None = None
        self._activities = {}
        self._activity_attempts: dict[int, tuple[int, RemoteError | None]] = {}
        self._children = {}
        Waits.__init__(self)
        Handlers.__init__(self)
        self._patches: dict[str, bool] = {}
        self._timeout_timer: int | None = None
        self._evicting = False
        self._cancel_requested = False

    # -- driving ------------------------------------------------------------------------

    @property
    def random(self) -> random.Random:  # type: ignore[override]
        """The run's deterministic source of randomness, seeded by its run id (or by the
        seed its ``workflow_started`` records: a fork's)."""
        found = self._random
        if found is None:
            found = self._random = random.Random(self.run_id)
        return found

    @property
    def closed(self) -> bool:
        """Whether the run has issued its closing command."""
        return self.outcome is not None

    def apply(
        self,
        kind: str,
        data: dict[str, Any],
        time: float,
        *,
        recorded: list[tuple[str, dict[str, Any]]] | None = None,
        record: journal.Record | None = None,
    ) -> list[Command]:
        """Apply one input and run the code to quiescence; return the commands it issued.

        With ``recorded`` this is replay: the commands must equal those, in order. With
        ``record`` (the typed record of ``data``, built in this process) ``data`` is unused.
        Raises `NonDeterminismError` (the run must then be discarded).
        """
        if kind not in INPUT_KINDS:
            raise ValueError(f"{kind!r} is not an input kind")
        self._now = time
        self.history_length += 1
        self._input_seq = self.history_length
        self.is_replaying = recorded is not None
        self._expected = recorded or []
        self._expected_pos = 0
        self._commands = []
        if self.outcome is None:
            self._deliver(kind, data, record)
            self._loop.run_ready()
            # Conditions are checked each time the loop goes quiet (durable.handlers).
            while (
                self.outcome is None
                and self._conditions
                and self._nondeterminism is None
                and self._in_loop(self.check_conditions)
            ):
                self._loop.run_ready()
        if self._nondeterminism is not None:
            raise self._nondeterminism
        if recorded is not None and self._expected_pos < len(recorded):
            missing_kind, missing = recorded[self._expected_pos]
            what = describe_command(missing_kind, missing)
            raise self._mismatch(
                f"the journal holds {what} next, but the code issued nothing more",
                seq=self.history_length + 1,
                recorded=what,
                location=self._waiting_location(),
            )
        return self._commands

    def take_effects(self) -> Effects:
        """The non-journal effects accumulated since the last call."""
        effects = self._effects
        if any(getattr(effects, name) for name in _EFFECT_FIELDS):
            self._effects = Effects()
        return effects  # none (most steps): the same empty one, not a new one per step

    def evict(self) -> None:
        """Unwind the code: cancel every task and pump until they finish, issuing nothing.

        Coroutines still running after `EVICTION_ROUNDS` rounds are closed, so none is left
        to the garbage collector.
        """
        self._evicting = True
        for _ in range(EVICTION_ROUNDS):
            pending = [t for t in self._loop._tasks if not t.done()]
            if not pending:
                break
            for task in pending:
                task.cancel()
            self._loop.run_ready()
        for task in list(self._loop._tasks):
            if not task.done():
                coro = task.get_coro()
                if coro is not None and hasattr(coro, "close"):
                    coro.close()
        self._loop._ready.clear()
        self._loop.close()

    # -- inputs -------------------------------------------------------------------------

    def _deliver(self, kind: str, data: dict[str, Any], rec: journal.Record | None = None) -> None:
        """Apply one input, dispatched on its typed record (`durable.journal`): ``rec`` if
        given, else built from ``data``."""
        if rec is None:
            rec = journal.from_data(kind, data)
        if isinstance(rec, journal.WorkflowStarted):
            self._start(rec)
        elif isinstance(rec, journal.ActivityCompleted | journal.ActivityFailed):
            self._resolve_activity(rec)
        elif isinstance(rec, journal.ActivityRetrying):
            self._activity_attempts[rec.ref] = (rec.attempt, rec.error)
        elif isinstance(rec, journal.TimerFired):
            if rec.ref == self._timeout_timer:
                self._timed_out()
            else:
                self._loop._fire_timer(rec.ref)
        elif isinstance(rec, journal.SignalReceived):
            if not self._handle_signal(rec):
                self._receive_signal(rec)
        elif isinstance(rec, journal.UpdateAccepted):
            self._accept_update(rec)
        elif isinstance(rec, journal.ExternalCompleted | journal.ExternalFailed):
            self._resolve_external(rec)
        elif isinstance(rec, journal.ChildCompleted | journal.ChildFailed):
            self._resolve_child(rec)
        elif isinstance(rec, journal.CancelRequested):
            self._cancel_requested = True
            if self._main is not None and not self._main.done():
                self._main.cancel(msg=rec.reason or "workflow cancelled")

    def _start(self, rec: journal.WorkflowStarted) -> None:
        self.started_at = self._now
        if rec.seed is not None:  # a fork replays its source's random values (durable.repair)
            self._random = random.Random(rec.seed)
        try:
            args, kwargs = payload.decode_args(self.definition.fn, rec.args)
            fit = layout(self.definition.fn)  # cached: most inputs bind without a Signature
            if not fit.accepts(args, kwargs):
                fit.signature.bind(*args, **kwargs)
        except (SerializationError, TypeError) as exc:
            if self.is_replaying:
                # It bound when it started: the code changed under a recorded run.
                self._nondeterminism = self._mismatch(
                    f"its recorded input no longer fits the workflow's signature ({exc})"
                )
                return
            # A new run whose input does not fit (started by name with wrong arguments):
            # it fails, saying why, rather than waiting for code that would accept it.
            error = payload.error_record(exc)
            error = RemoteError(
                error.type,
                f"the input of workflow {self.definition.name!r} does not fit its signature: {exc}",
                error.traceback,
            )
            self._close(Outcome("failed", error=error), journal.WorkflowFailed(error))
            return
        if self.timeout is not None and math.isfinite(self.timeout):
            self._timeout_timer = self._start_timer(self._now + self.timeout)
        coro = cast(Coroutine[Any, Any, Any], self.definition.fn(*args, **kwargs))
        self._main = self._loop.create_task(coro, name=f"workflow:{self.workflow_id}")
        self._main.add_done_callback(self._main_done)

    def _main_done(self, task: asyncio.Task[Any]) -> None:
        if self._evicting or self.outcome is not None:
            return
        try:
            self._finish(task)
        except NonDeterminismError:
            pass  # recorded in self._nondeterminism; apply() raises it

    def _finish(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            self._close(Outcome("cancelled"), journal.WorkflowCancelled())
            return
        exc = task.exception()
        if exc is None:
            try:
                encoded = payload.encode(
                    task.result(), what=f"result of workflow {self.definition.name!r}"
                )
            except SerializationError as err:
                exc = err
            else:
                self._close(
                    Outcome("completed", result=encoded), journal.WorkflowCompleted(encoded)
                )
                return
        if isinstance(exc, _ContinueAsNew):
            successor = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
            self._close(
                Outcome(
                    "continued_as_new", continue_args=exc.encoded_args, successor_run_id=successor
                ),
                journal.ContinuedAsNew(exc.encoded_args, successor),
            )
            return
        if isinstance(exc, NonDeterminismError):
            return  # already recorded; apply() raises it
        error = payload.error_record(exc)
        self._close(Outcome("failed", error=error), journal.WorkflowFailed(error))

    def _close(self, outcome: Outcome, record: journal.Record) -> None:
        self._emit(record)
        self.outcome = outcome
        # Everything still in flight is abandoned: cancel it (effects only). Children get
        # what their recorded parent-close policy says (`durable.children`).
        for seq, (fut, *_) in self._activities.items():
            if not fut.done():
                self._effects.cancelled_activities.append(seq)
        for child_run, child in self._children.items():
            if child.future.done() or child.parent_close == "abandon":
                continue
            doomed = (child.workflow_id, child_run)
            if child.parent_close == "terminate":
                self._effects.terminated_children.append(doomed)
            else:
                self._effects.cancelled_children.append(doomed)

    def fail(self, error: RemoteError) -> None:
        """Close the run as failed from outside its code (a limit was hit); the closing
        command is left in the commands of the current step."""
        if self.outcome is not None:
            return
        self._commands = []
        self.is_replaying = False
        self._close(Outcome("failed", error=error), journal.WorkflowFailed(error))
        self._evicting = True
        if self._main is not None:
            self._main.cancel()

    def _fail_from_handler(self, error: RemoteError) -> None:
        """Close the run as failed because a signal handler raised."""
        if self.outcome is not None:
            return
        self._close(Outcome("failed", error=error), journal.WorkflowFailed(error))
        self._evicting = True  # unwind silently: the run is closed
        if self._main is not None:
            self._main.cancel()

    def _timed_out(self) -> None:
        if self.outcome is not None:
            return
        error = RemoteError(
            "TimeoutError",
            f"workflow {self.definition.name!r} ({self.workflow_id}) exceeded its timeout "
            f"of {self.timeout}s",
        )
        self._close(Outcome("failed", error=error), journal.WorkflowFailed(error))
        self._evicting = True  # unwind silently: the run is closed
        if self._main is not None:
            self._main.cancel()

    # -- commands -----------------------------------------------------------------------

    def _mismatch(
        self,
        what: str,
        *,
        seq: int | None = None,
        recorded: str | None = None,
        issued: str | None = None,
        location: str | None = None,
    ) -> NonDeterminismError:
        return NonDeterminismError(
            f"Workflow {self.definition.name!r} ({self.workflow_id}, run {self.run_id}) no "
            f"longer replays its journal: after input #{self._input_seq}, {what}. The run is "
            "parked, not failed. Deploy code that does what the journal recorded, or guard "
            "the change with durable.patched(...) so old runs keep the old path.",
            seq=seq,
            recorded=recorded,
            issued=issued,
            location=location,
        )

    def _waiting_location(self) -> str | None:
        """Where the main coroutine waits (its innermost frame in user code), or what
        became of it: for a mismatch where the code issued nothing more."""
        main = self._main
        if main is None:
            return None
        if main.done():
            return "the workflow function had already returned"
        found = None
        coro: Any = main.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None and codeloc.is_user(frame):
                found = frame
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        return None if found is None else codeloc.describe(found)

    def _emit(self, record: journal.Record) -> int:
        """Record a command; during replay check it against the journal. Returns its seq."""
        if self.answering is not None:  # a query issues nothing (durable.queries)
            issued = describe_command(record.KIND, record.to_data())
            raise self.refuse_in_query(f"a durable operation ({issued})")
        if self._evicting:
            return 0
        if self._validating:
            raise RuntimeError(
                f"An update validator of workflow {self.definition.name!r} issued "
                f"{record.KIND}: validators only read the workflow's state and raise to "
                "reject; do the work in the update's handler."
            )
        kind, data = record.KIND, record.to_data()
        self.history_length += 1
        seq = self.history_length
        if self.is_replaying:
            if self._expected_pos >= len(self._expected):
                issued = describe_command(kind, data)
                err = self._mismatch(
                    f"the code issued {issued} where the journal holds no further command",
                    seq=seq,
                    issued=issued,
                    location=codeloc.caller(_DRIVER) or self._waiting_location(),
                )
                self._nondeterminism = self._nondeterminism or err
                raise err
            exp_kind, exp_data = self._expected[self._expected_pos]
            if not same_command(kind, data, exp_kind, exp_data):
                recorded = describe_command(exp_kind, exp_data)
                issued = describe_command(kind, data)
                err = self._mismatch(
                    f"the journal holds {recorded} at step {seq}, but the code issued {issued}",
                    seq=seq,
                    recorded=recorded,
                    issued=issued,
                    location=codeloc.caller(_DRIVER) or self._waiting_location(),
                )
                self._nondeterminism = self._nondeterminism or err
                raise err
            self._expected_pos += 1
        if kind not in CLOSING_KINDS:
            self._loop.branches.tag(asyncio.current_task(self._loop), kind, seq, data)
        self._commands.append(Command(seq, kind, data, record))
        return seq

    def _annotate(self, record: journal.Record) -> None:
        """Issue a command that only tells (such as ``signal_wait_started``): like `_emit`,
        except that on replay of a journal recorded before such commands existed, where the
        next recorded command is something else, it is left out rather than a mismatch."""
        if self._evicting:
            return
        if self.is_replaying and not (
            self._expected_pos < len(self._expected)
            and self._expected[self._expected_pos][0] == record.KIND
        ):
            return
        self._emit(record)

    def _start_timer(self, when: float) -> int:
        return self._emit(journal.TimerStarted(when, wait=self._timer_wait))

    def _cancel_timer(self, seq: int) -> None:
        if not self._evicting:
            self._effects.cancelled_timers.append(seq)

    def publish(self, key: str, value: Any) -> None:
        """Issue ``published``: clients read the value with ``handle.read(key)``."""
        if not isinstance(key, str) or not key:
            raise TypeError(
                f"durable.publish() takes a non-empty str key (clients read it with "
                f"handle.read(key)), got {key!r} in workflow {self.definition.name!r}"
            )
        encoded = payload.encode(value, what=f"published value {key!r}")
        self._emit(journal.Published(key, encoded))
        self.published[key] = encoded

    def set_tags(self, tags: dict[str, str]) -> None:
        """Issue ``tags_set`` (checked by `durable.tags.set_tags`): merged into the run's
        tags when this step commits."""
        self._emit(journal.TagsSet(dict(tags)))
        self.tags.update(tags)

    def patched(self, change_id: str, *, deprecated: bool = False) -> bool:
        """See `durable.patched`."""
        if change_id in self._patches:
            return self._patches[change_id]
        if self.is_replaying:
            found = False
            if self._expected_pos < len(self._expected):
                exp_kind, exp_data = self._expected[self._expected_pos]
                found = exp_kind == "marker" and exp_data.get("patch") == change_id
            if found:
                self._emit(journal.Marker(change_id))
            self._patches[change_id] = found or deprecated
            return found or deprecated
        if not deprecated:
            self._emit(journal.Marker(change_id))
        self._patches[change_id] = True
        return True

    def continue_as_new(self, encoded_args: bytes) -> None:
        """End this run; a fresh one with these arguments follows (raises to unwind)."""
        if self.answering is not None:
            raise self.refuse_in_query("durable.continue_as_new()")
        raise _ContinueAsNew(encoded_args)

    def info(self) -> WorkflowInfo:
        """The run's `WorkflowInfo` as of now."""
        return WorkflowInfo(
            id=self.workflow_id,
            run_id=self.run_id,
            name=self.definition.name,
            queue=self.queue,
            started_at=datetime.fromtimestamp(self.started_at, UTC),
            parent_id=self.parent_id,
            is_replaying=self.is_replaying,
            history_length=self.history_length,
            scheduled_at=(
                None
                if self.scheduled_at is None
                else datetime.fromtimestamp(self.scheduled_at, UTC)
            ),
        )

    def now(self) -> datetime:
        """The time of the input being applied, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)
