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
``child_failed``, ``cancel_requested``. Commands: ``activity_scheduled``, ``timer_started``,
``child_started``, ``published``, ``marker``, and the closing ``workflow_completed``,
``workflow_failed``, ``workflow_cancelled``, ``continued_as_new``.

Commands also carry *effects* the worker carries out beyond the journal (a task row, a
timer row, a child run); cancelling an activity, timer or child is an effect alone.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import math
import random
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from . import payload
from .definition import ActivityDefinition, RetryPolicy, WorkflowDefinition
from .errors import (
    ActivityError,
    ChildWorkflowError,
    NonDeterminismError,
    RemoteError,
    SerializationError,
)

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

logger = logging.getLogger(__name__)

INPUT_KINDS = frozenset(
    {
        "workflow_started",
        "activity_completed",
        "activity_failed",
        "activity_retrying",
        "timer_fired",
        "signal_received",
        "child_completed",
        "child_failed",
        "cancel_requested",
    }
)
CLOSING_KINDS = frozenset(
    {"workflow_completed", "workflow_failed", "workflow_cancelled", "continued_as_new"}
)
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


@dataclass
class Command:
    """A command the code issued: journaled as ``kind``/``data`` at ``seq``."""

    seq: int
    kind: str
    data: dict[str, Any]


@dataclass
class Effects:
    """Effects of one `WorkflowRun.apply` that are not journal entries."""

    cancelled_activities: list[int] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)
    cancelled_children: list[str] = field(default_factory=list)


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


def current_run() -> WorkflowRun | None:
    """The run whose code is executing now, or ``None`` outside workflow code."""
    loop = asyncio._get_running_loop()
    if isinstance(loop, WorkflowLoop):
        return loop.run
    return None


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(self: WorkflowLoop, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            f"Workflow {self.run.definition.name!r} called {what}: workflow code must be "
            "deterministic, so it cannot do I/O, use threads or subprocesses. Move this into "
            "an @activity and await it from the workflow."
        )

    return refuse


class _DurableTimer(asyncio.TimerHandle):
    __slots__ = ("durable_seq",)
    durable_seq: int


class WorkflowLoop(asyncio.AbstractEventLoop):
    """An event loop that only runs when the engine steps it, deterministically.

    ``call_soon`` queues to a FIFO; ``time()`` is the time of the input being applied;
    ``call_at``/``call_later`` issue durable timers; I/O and threads are refused.
    """

    def __init__(self, run: WorkflowRun) -> None:
        self.run = run
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._exception_handler: Any = None

    # -- scheduling ---------------------------------------------------------------------

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        return _refuse("call_soon_threadsafe (a thread)")(self)  # type: ignore[no-any-return]

    def call_later(  # type: ignore[override]
        self,
        delay: float,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self,
        when: float,
        callback: Callable[..., Any],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        seq = self.run._start_timer(when)
        handle = _DurableTimer(when, callback, args, self, context)
        handle._scheduled = True  # type: ignore[attr-defined]
        handle.durable_seq = seq
        self._timers[seq] = handle
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        seq: int | None = getattr(handle, "durable_seq", None)
        if seq is not None and self._timers.pop(seq, None) is not None:
            self.run._cancel_timer(seq)

    def _fire_timer(self, seq: int) -> None:
        handle = self._timers.pop(seq, None)
        if handle is not None and not handle.cancelled():
            self._ready.append(handle)

    def time(self) -> float:
        return self.run._now

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run_ready(self) -> None:
        """Run callbacks until none is ready (quiescence)."""
        previous = asyncio._get_running_loop()
        asyncio._set_running_loop(self)
        try:
            while self._ready:
                handle = self._ready.popleft()
                if not handle._cancelled:
                    handle._run()
        finally:
            asyncio._set_running_loop(previous)

    # -- state and error handling -------------------------------------------------------

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        pass

    def get_task_factory(self) -> None:
        return None

    def set_task_factory(self, factory: Any) -> None:
        raise RuntimeError("A workflow's event loop does not take a task factory.")

    def is_running(self) -> bool:
        return asyncio._get_running_loop() is self

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        if self.run._evicting:
            return
        exc = context.get("exception")
        logger.error(
            "Unhandled error in workflow %r (%s): %s",
            self.run.definition.name,
            self.run.workflow_id,
            context.get("message"),
            exc_info=exc if isinstance(exc, BaseException) else None,
        )

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.default_exception_handler(context)

    def get_exception_handler(self) -> Any:
        return self._exception_handler

    def set_exception_handler(self, handler: Any) -> None:
        self._exception_handler = handler

    # -- everything that would leave the process is refused ------------------------------

    run_in_executor = _refuse("run_in_executor (a thread pool)")  # type: ignore[assignment]
    set_default_executor = _refuse("set_default_executor")
    getaddrinfo = _refuse("getaddrinfo (DNS)")
    getnameinfo = _refuse("getnameinfo (DNS)")
    create_connection = _refuse("create_connection (network I/O)")
    create_server = _refuse("create_server (network I/O)")
    create_unix_connection = _refuse("create_unix_connection (I/O)")
    create_unix_server = _refuse("create_unix_server (I/O)")
    create_datagram_endpoint = _refuse("create_datagram_endpoint (network I/O)")
    connect_accepted_socket = _refuse("connect_accepted_socket (network I/O)")
    sendfile = _refuse("sendfile (I/O)")
    start_tls = _refuse("start_tls (network I/O)")
    sock_recv = _refuse("sock_recv (network I/O)")
    sock_recv_into = _refuse("sock_recv_into (network I/O)")
    sock_sendall = _refuse("sock_sendall (network I/O)")
    sock_connect = _refuse("sock_connect (network I/O)")
    sock_accept = _refuse("sock_accept (network I/O)")
    sock_sendfile = _refuse("sock_sendfile (network I/O)")
    sock_recvfrom = _refuse("sock_recvfrom (network I/O)")
    sock_recvfrom_into = _refuse("sock_recvfrom_into (network I/O)")
    sock_sendto = _refuse("sock_sendto (network I/O)")
    add_reader = _refuse("add_reader (I/O)")  # type: ignore[assignment]
    add_writer = _refuse("add_writer (I/O)")  # type: ignore[assignment]
    remove_reader = _refuse("remove_reader (I/O)")
    remove_writer = _refuse("remove_writer (I/O)")
    connect_read_pipe = _refuse("connect_read_pipe (I/O)")
    connect_write_pipe = _refuse("connect_write_pipe (I/O)")
    subprocess_shell = _refuse("subprocess_shell (a subprocess)")
    subprocess_exec = _refuse("subprocess_exec (a subprocess)")
    add_signal_handler = _refuse("add_signal_handler")  # type: ignore[assignment]
    remove_signal_handler = _refuse("remove_signal_handler")
    run_forever = _refuse("run_forever")
    run_until_complete = _refuse("run_until_complete")
    stop = _refuse("stop")
    shutdown_asyncgens = _refuse("shutdown_asyncgens")
    shutdown_default_executor = _refuse("shutdown_default_executor")


def _describe_command(kind: str, data: dict[str, Any]) -> str:
    key = {
        "activity_scheduled": "name",
        "child_started": "name",
        "published": "key",
        "marker": "patch",
    }.get(kind)
    if key is None:
        return kind
    if kind == "child_started":
        return f"{kind} {data.get('name')!r} (id {data.get('id')!r})"
    return f"{kind} {data.get(key)!r}"


def _same_command(kind: str, data: dict[str, Any], other_kind: str, other: dict[str, Any]) -> bool:
    """Whether two commands agree on what replay checks: kind, name and key arguments."""
    if kind != other_kind:
        return False
    if kind == "activity_scheduled":
        return data.get("name") == other.get("name")
    if kind == "child_started":
        return data.get("name") == other.get("name") and data.get("id") == other.get("id")
    if kind == "published":
        return data.get("key") == other.get("key")
    if kind == "marker":
        return data.get("patch") == other.get("patch")
    return True


class WorkflowRun:
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
    ) -> None:
        self.definition = definition
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
        self.random = random.Random(run_id)
        self._now = 0.0
        self._loop = WorkflowLoop(self)
        self._main: asyncio.Task[Any] | None = None
        self._commands: list[Command] = []
        self._effects = Effects()
        self._expected: list[tuple[str, dict[str, Any]]] = []
        self._expected_pos = 0
        self._input_seq = 0
        self._nondeterminism: NonDeterminismError | None = None
        self._activities: dict[int, tuple[asyncio.Future[Any], ActivityDefinition]] = {}
        self._activity_attempts: dict[int, tuple[int, RemoteError | None]] = {}
        self._children: dict[str, tuple[int, asyncio.Future[Any], WorkflowDefinition]] = {}
        self._signals: dict[str, collections.deque[Any]] = collections.defaultdict(
            collections.deque
        )
        self._signal_waiters: dict[str, collections.deque[asyncio.Future[Any]]] = (
            collections.defaultdict(collections.deque)
        )
        self._patches: dict[str, bool] = {}
        self._timeout_timer: int | None = None
        self._evicting = False
        self._cancel_requested = False

    # -- driving ------------------------------------------------------------------------

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
    ) -> list[Command]:
        """Apply one input and run the code to quiescence; return the commands it issued.

        With ``recorded`` this is replay: the commands must equal those, in order.
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
            self._deliver(kind, data)
            self._loop.run_ready()
        if self._nondeterminism is not None:
            raise self._nondeterminism
        if recorded is not None and self._expected_pos < len(recorded):
            missing_kind, missing = recorded[self._expected_pos]
            raise self._mismatch(
                f"the journal holds {_describe_command(missing_kind, missing)} next, but "
                "the code issued nothing more"
            )
        return self._commands

    def take_effects(self) -> Effects:
        """The non-journal effects accumulated since the last call."""
        effects, self._effects = self._effects, Effects()
        return effects

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

    def _deliver(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "workflow_started":
            self._start(data)
        elif kind == "activity_completed":
            self._resolve_activity(data, None)
        elif kind == "activity_failed":
            self._resolve_activity(data, RemoteError.from_dict(data["error"]))
        elif kind == "activity_retrying":
            self._activity_attempts[data["ref"]] = (
                int(data.get("attempt", 1)),
                RemoteError.from_dict(data["error"]),
            )
        elif kind == "timer_fired":
            ref = int(data["ref"])
            if ref == self._timeout_timer:
                self._timed_out()
            else:
                self._loop._fire_timer(ref)
        elif kind == "signal_received":
            self._receive_signal(data)
        elif kind in ("child_completed", "child_failed"):
            self._resolve_child(kind, data)
        elif kind == "cancel_requested":
            self._cancel_requested = True
            if self._main is not None and not self._main.done():
                self._main.cancel(msg=data.get("reason") or "workflow cancelled")

    def _start(self, data: dict[str, Any]) -> None:
        self.started_at = self._now
        args, kwargs = payload.decode_args(self.definition.fn, data["args"])
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
            self._close(Outcome("cancelled"), "workflow_cancelled", {})
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
                    Outcome("completed", result=encoded), "workflow_completed", {"result": encoded}
                )
                return
        if isinstance(exc, _ContinueAsNew):
            successor = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
            self._close(
                Outcome(
                    "continued_as_new", continue_args=exc.encoded_args, successor_run_id=successor
                ),
                "continued_as_new",
                {"args": exc.encoded_args, "run_id": successor},
            )
            return
        if isinstance(exc, NonDeterminismError):
            return  # already recorded; apply() raises it
        error = payload.error_record(exc)
        self._close(Outcome("failed", error=error), "workflow_failed", {"error": error.to_dict()})

    def _close(self, outcome: Outcome, kind: str, data: dict[str, Any]) -> None:
        self._emit(kind, data)
        self.outcome = outcome
        # Everything still in flight is abandoned: cancel it (effects only).
        for seq, (fut, _) in self._activities.items():
            if not fut.done():
                self._effects.cancelled_activities.append(seq)
        for child_id, (_, fut, _) in self._children.items():
            if not fut.done():
                self._effects.cancelled_children.append(child_id)

    def fail(self, error: RemoteError) -> None:
        """Close the run as failed from outside its code (a limit was hit); the closing
        command is left in the commands of the current step."""
        if self.outcome is not None:
            return
        self._commands = []
        self.is_replaying = False
        self._close(Outcome("failed", error=error), "workflow_failed", {"error": error.to_dict()})
        self._evicting = True
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
        self._close(Outcome("failed", error=error), "workflow_failed", {"error": error.to_dict()})
        self._evicting = True  # unwind silently: the run is closed
        if self._main is not None:
            self._main.cancel()

    def _resolve_activity(self, data: dict[str, Any], error: RemoteError | None) -> None:
        ref = int(data["ref"])
        entry = self._activities.pop(ref, None)
        if entry is None:
            return
        fut, defn = entry
        if fut.done():
            return
        if error is not None:
            attempts = int(data.get("attempts", 1))
            fut.set_exception(
                ActivityError(
                    f"Activity {defn.name!r} (step {ref} of workflow {self.workflow_id!r}) "
                    f"failed after {attempts} attempt(s): {error}",
                    error,
                    attempts,
                )
            )
            return
        try:
            fut.set_result(payload.decode_result(defn.fn, data["result"]))
        except SerializationError as err:
            fut.set_exception(err)

    def _receive_signal(self, data: dict[str, Any]) -> None:
        name = str(data["name"])
        try:
            value = payload.decode(data["value"], what=f"signal {name!r}")
        except SerializationError as err:
            logger.error("Dropping undecodable signal %r for %s: %s", name, self.workflow_id, err)
            return
        waiters = self._signal_waiters[name]
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(value)
                return
        self._signals[name].append(value)

    def _resolve_child(self, kind: str, data: dict[str, Any]) -> None:
        child_id = str(data["workflow_id"])
        entry = self._children.pop(child_id, None)
        if entry is None:
            return
        seq, fut, defn = entry
        if fut.done():
            return
        if kind == "child_completed":
            try:
                fut.set_result(payload.decode_result(defn.fn, data["result"]))
            except SerializationError as err:
                fut.set_exception(err)
            return
        error = RemoteError.from_dict(data["error"])
        fut.set_exception(
            ChildWorkflowError(
                f"Child workflow {defn.name!r} ({child_id}, started at step {seq} of "
                f"{self.workflow_id!r}) {data.get('status', 'failed')}: {error}",
                error,
                child_id,
            )
        )

    # -- commands -----------------------------------------------------------------------

    def _mismatch(self, what: str) -> NonDeterminismError:
        return NonDeterminismError(
            f"Workflow {self.definition.name!r} ({self.workflow_id}, run {self.run_id}) no "
            f"longer replays its journal: after input #{self._input_seq}, {what}. The run is "
            "parked, not failed. Deploy code that does what the journal recorded, or guard "
            "the change with durable.patched(...) so old runs keep the old path."
        )

    def _emit(self, kind: str, data: dict[str, Any]) -> int:
        """Record a command; during replay check it against the journal. Returns its seq."""
        if self._evicting:
            return 0
        self.history_length += 1
        seq = self.history_length
        if self.is_replaying:
            if self._expected_pos >= len(self._expected):
                err = self._mismatch(
                    f"the code issued {_describe_command(kind, data)} where the journal holds "
                    "no further command"
                )
                self._nondeterminism = self._nondeterminism or err
                raise err
            exp_kind, exp_data = self._expected[self._expected_pos]
            if not _same_command(kind, data, exp_kind, exp_data):
                err = self._mismatch(
                    f"the journal holds {_describe_command(exp_kind, exp_data)} at step {seq}, "
                    f"but the code issued {_describe_command(kind, data)}"
                )
                self._nondeterminism = self._nondeterminism or err
                raise err
            self._expected_pos += 1
        self._commands.append(Command(seq, kind, data))
        return seq

    def _start_timer(self, when: float) -> int:
        return self._emit("timer_started", {"due": when})

    def _cancel_timer(self, seq: int) -> None:
        if not self._evicting:
            self._effects.cancelled_timers.append(seq)

    def schedule_activity(
        self,
        defn: ActivityDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        overrides: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """Issue ``activity_scheduled``; the future resolves with its journaled result."""
        encoded = payload.encode_args(
            defn.fn, args, kwargs, what=f"arguments of activity {defn.name!r}"
        )
        retry = overrides.get("retry", defn.retry)
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {retry!r}")
        timeout = overrides.get("timeout", defn.timeout)
        heartbeat_timeout = overrides.get("heartbeat_timeout", defn.heartbeat_timeout)
        data = {
            "name": defn.name,
            "queue": overrides.get("queue", defn.queue),
            "args": encoded,
            "retry": retry.to_dict(),
            "timeout": _as_seconds(timeout),
            "heartbeat_timeout": _as_seconds(heartbeat_timeout),
            "schedule_to_close": defn.schedule_to_close,
        }
        seq = self._emit("activity_scheduled", data)
        fut: asyncio.Future[Any] = self._loop.create_future()
        if self._evicting:
            return fut
        self._activities[seq] = (fut, defn)
        fut.add_done_callback(lambda f: self._activity_future_done(seq, f))
        return fut

    def _activity_future_done(self, seq: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() and seq in self._activities and not self._evicting:
            del self._activities[seq]
            self._effects.cancelled_activities.append(seq)

    def start_child(
        self,
        defn: WorkflowDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        overrides: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """Issue ``child_started``; the future resolves with the child's result."""
        encoded = payload.encode_args(
            defn.fn, args, kwargs, what=f"arguments of child workflow {defn.name!r}"
        )
        child_id = (
            overrides.get("id") or f"{self.workflow_id}/{defn.name}-{self.history_length + 1}"
        )
        run_id = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        data = {
            "name": defn.name,
            "id": child_id,
            "run_id": run_id,
            "queue": overrides.get("queue", defn.queue),
            "args": encoded,
            # An explicit timeout=None means none at all: recorded as infinity, since a
            # run without a recorded timeout falls back to the decorator's.
            "timeout": (
                math.inf
                if "timeout" in overrides and overrides["timeout"] is None
                else _as_seconds(overrides.get("timeout", defn.timeout))
            ),
        }
        seq = self._emit("child_started", data)
        fut: asyncio.Future[Any] = self._loop.create_future()
        if self._evicting:
            return fut
        self._children[child_id] = (seq, fut, defn)
        fut.add_done_callback(lambda f: self._child_future_done(child_id, f))
        return fut

    def _child_future_done(self, child_id: str, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() and child_id in self._children and not self._evicting:
            del self._children[child_id]
            self._effects.cancelled_children.append(child_id)

    def publish(self, key: str, value: Any) -> None:
        """Issue ``published``: clients read the value with ``handle.read(key)``."""
        encoded = payload.encode(value, what=f"published value {key!r}")
        self._emit("published", {"key": key, "value": encoded})
        self.published[key] = encoded

    async def wait_signal(self, name: str, timeout: float | None) -> Any:
        """The next signal called ``name`` (FIFO), waiting up to ``timeout`` seconds."""
        buffered = self._signals.get(name)
        if buffered:
            return buffered.popleft()
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._signal_waiters[name].append(fut)
        if timeout is None:
            return await fut
        return await asyncio.wait_for(fut, timeout)

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
                self._emit("marker", {"patch": change_id})
            self._patches[change_id] = found or deprecated
            return found or deprecated
        if not deprecated:
            self._emit("marker", {"patch": change_id})
        self._patches[change_id] = True
        return True

    def continue_as_new(self, encoded_args: bytes) -> None:
        """End this run; a fresh one with these arguments follows (raises to unwind)."""
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
        )

    def now(self) -> datetime:
        """The time of the input being applied, as an aware UTC datetime."""
        return datetime.fromtimestamp(self._now, UTC)


def _as_seconds(value: Any) -> float | None:
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)


def gather_map(
    fn: Callable[[Any], Awaitable[Any]], items: list[Any], max_concurrency: int | None
) -> Awaitable[list[Any]]:
    """`durable.map`'s body: one call per item, at most ``max_concurrency`` at once."""
    if not max_concurrency:
        return asyncio.gather(*(fn(item) for item in items))
    semaphore = asyncio.Semaphore(max_concurrency)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await fn(item)

    return asyncio.gather(*(one(item) for item in items))
