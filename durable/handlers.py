"""Message handlers of a run: signal and update handlers, and conditions the code waits on.

A signal handler (``durable.on_signal``) receives every signal of its name, in arrival
order, each in a task of its own; signals that came before it was registered and that no
``wait_signal`` took are handed to it at registration. Names without a handler keep the
``wait_signal`` mailbox (`durable.waits`).

An update (``durable.on_update``, ``handle.update``) reaches the run as an inbox item. The
worker screens it against the live state before anything is journaled (`screen_update`):
an update whose id this run already admitted is dropped (the caller reads the first one's
outcome), one whose name has no handler, or whose validator raises, is rejected and never
journaled. An admitted one is journaled as ``update_accepted`` (an input) and its handler
runs in a task; its end is the command ``update_completed`` with the result or the error,
which the worker also writes to the ``updates`` table for the caller. On replay the input
starts the handler again and the command is checked like any other; validators are not run.
An update admitted while no handler of its name is registered (only on replay of code that
changed) waits for the registration, like a signal.

``wait_condition`` resolves when its predicate becomes true: predicates are checked each
time the loop goes quiet after an input (`check_conditions`, called by the engine), so
live runs and replay see them turn true at the same point.

`Handlers` is a part of `durable.engine.WorkflowRun`, kept apart for size.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import guard, journal, payload
from .errors import RemoteError, SerializationError

if TYPE_CHECKING:
    from .definition import WorkflowDefinition
    from .loop import WorkflowLoop

__all__ = ["Handlers"]

logger = logging.getLogger("durable.engine")


class Handlers:
    """Signal and update handlers and conditions of one `durable.engine.WorkflowRun`."""

    workflow_id: str
    definition: WorkflowDefinition
    _loop: WorkflowLoop
    _signals: dict[str, collections.deque[Any]]
    _evicting: bool

    if TYPE_CHECKING:

        def _emit(self, record: journal.Record) -> int: ...

        @property
        def closed(self) -> bool: ...

        def _fail_from_handler(self, error: RemoteError) -> None: ...

    def __init__(self) -> None:
        self._signal_handlers: dict[str, Callable[..., Any]] = {}
        # name -> (handler, validator or None)
        self._update_handlers: dict[str, tuple[Callable[..., Any], Callable[..., Any] | None]] = {}
        self._handler_tasks: set[asyncio.Task[Any]] = set()
        self._conditions: list[tuple[Callable[[], Any], asyncio.Future[None]]] = []
        self._updates_seen: set[str] = set()  # ids admitted in this run
        self._updates_open: dict[str, str] = {}  # id -> name: admitted, handler not ended
        self._updates_waiting: dict[str, list[journal.UpdateAccepted]] = {}
        self._validating = False
        self._timer_wait: str | None = None  # what the next timer started times out

    # -- registration -------------------------------------------------------------------

    def on_signal(self, name: str, handler: Callable[..., Any]) -> None:
        """See `durable.on_signal`."""
        self._signal_handlers[name] = handler
        buffered = self._signals.pop(name, None)
        while buffered:
            self._dispatch_signal(name, handler, buffered.popleft())

    def on_update(
        self, name: str, handler: Callable[..., Any], validator: Callable[..., Any] | None
    ) -> None:
        """See `durable.on_update`."""
        self._update_handlers[name] = (handler, validator)
        for rec in self._updates_waiting.pop(name, []):
            self._run_update(rec, handler)

    # -- signals ------------------------------------------------------------------------

    def _handle_signal(self, rec: journal.SignalReceived) -> bool:
        """Hand a signal to its handler; False when it has none (the mailbox takes it)."""
        handler = self._signal_handlers.get(rec.name)
        if handler is None:
            return False
        try:
            value = payload.decode(rec.value, what=f"signal {rec.name!r}")
        except SerializationError as err:
            logger.error(
                "Dropping undecodable signal %r for %s: %s", rec.name, self.workflow_id, err
            )
            return True
        self._dispatch_signal(rec.name, handler, value)
        return True

    def _dispatch_signal(self, name: str, handler: Callable[..., Any], value: Any) -> None:
        args: tuple[Any, ...] = (value,)
        if value is None and _takes_no_argument(handler):
            args = ()
        task = self._spawn_handler(handler, args, f"signal:{name}")
        task.add_done_callback(lambda t: self._signal_done(name, t))

    def _signal_done(self, name: str, task: asyncio.Task[Any]) -> None:
        if self._evicting or self.closed or task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        # A signal handler's failure is the run's, as a failure of the main coroutine is.
        error = payload.error_record(exc)
        self._fail_from_handler(
            RemoteError(
                error.type,
                f"the handler of signal {name!r} raised: {error.message}",
                error.traceback,
                error.details,
            )
        )

    # -- updates ------------------------------------------------------------------------

    def screen_update(self, data: dict[str, Any]) -> RemoteError | bool:
        """Judge an update item against the live state, before it is journaled.

        Returns True to admit it (apply it as ``update_accepted``), False to drop it (this
        run admitted that id already), or the `RemoteError` that rejects it (no handler of
        that name, or its validator raised). Runs the validator with the code's loop as the
        running loop; it must not issue commands.
        """
        rec = journal.from_data(journal.Kind.UPDATE_ACCEPTED, data)
        assert isinstance(rec, journal.UpdateAccepted)
        if rec.id in self._updates_seen:
            return False
        entry = self._update_handlers.get(rec.name)
        if entry is None:
            known = ", ".join(repr(n) for n in sorted(self._update_handlers)) or "none"
            return RemoteError(
                "UnknownUpdate",
                f"Workflow {self.definition.name!r} ({self.workflow_id}) has no handler for "
                f"update {rec.name!r} (registered: {known}). Register it with "
                "durable.on_update(name, handler) before the workflow's first await.",
            )
        handler, validator = entry
        what = f"arguments of update {rec.name!r}"
        self._validating = True
        try:
            args, kwargs = payload.decode_args(handler, rec.args, what=what)
            if validator is not None:
                self._in_loop(lambda: validator(*args, **kwargs))
        except Exception as exc:
            error = payload.error_record(exc)
            why = (
                "its arguments do not fit"
                if isinstance(exc, SerializationError)
                else "its validator raised"
            )
            return RemoteError(
                error.type,
                f"{why}: {error.message}",
                "",
                error.details,
            )
        finally:
            self._validating = False
        return True

    def _in_loop(self, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` as workflow code: the run's loop running, I/O refused."""
        previous = asyncio._get_running_loop()
        asyncio._set_running_loop(self._loop)
        outer = guard.enter(self.definition.name)
        try:
            return fn()
        finally:
            guard.leave(outer)
            asyncio._set_running_loop(previous)

    def _accept_update(self, rec: journal.UpdateAccepted) -> None:
        if rec.id in self._updates_seen:
            return  # never journaled twice; tolerated on replay of a hand-made journal
        self._updates_seen.add(rec.id)
        self._updates_open[rec.id] = rec.name
        entry = self._update_handlers.get(rec.name)
        if entry is None:
            self._updates_waiting.setdefault(rec.name, []).append(rec)
            return
        self._run_update(rec, entry[0])

    def _run_update(self, rec: journal.UpdateAccepted, handler: Callable[..., Any]) -> None:
        async def body() -> Any:
            what = f"arguments of update {rec.name!r}"
            args, kwargs = payload.decode_args(handler, rec.args, what=what)
            result = handler(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        task = self._spawn(body(), f"update:{rec.name}")
        task.add_done_callback(lambda t: self._update_done(rec, t))

    def _update_done(self, rec: journal.UpdateAccepted, task: asyncio.Task[Any]) -> None:
        if self._evicting or self.closed:
            return
        result: bytes | None = None
        failure: RemoteError | None = None
        if task.cancelled():
            failure = RemoteError("CancelledError", f"update {rec.name!r} was cancelled")
        elif (exc := task.exception()) is not None:
            failure = payload.error_record(exc)
        else:
            try:
                result = payload.encode(task.result(), what=f"result of update {rec.name!r}")
            except SerializationError as err:
                failure = payload.error_record(err)
        self._updates_open.pop(rec.id, None)
        self._emit(
            journal.UpdateCompleted(
                rec.id, rec.name, result, None if failure is None else failure.to_dict()
            )
        )

    def open_updates(self) -> dict[str, str]:
        """Updates admitted whose handler has not ended (id -> name): when the run closes,
        the worker answers their callers with an error."""
        return dict(self._updates_open)

    # -- tasks and conditions -----------------------------------------------------------

    def _spawn_handler(
        self, handler: Callable[..., Any], args: tuple[Any, ...], name: str
    ) -> asyncio.Task[Any]:
        async def body() -> Any:
            result = handler(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

        return self._spawn(body(), name)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = self._loop.create_task(coro, name=f"{name}:{self.workflow_id}")
        self._handler_tasks.add(task)
        task.add_done_callback(self._handler_tasks.discard)
        return task

    async def wait_condition(self, fn: Callable[[], Any], timeout: float | None) -> None:
        """See `durable.wait_condition`."""
        if fn():
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        entry = (fn, fut)
        self._conditions.append(entry)
        timer = None
        if timeout is not None:
            # Its timer is journaled as this wait's (steps show a condition, not a sleep).
            self._timer_wait = "condition"
            try:
                timer = self._loop.call_later(timeout, _time_out, fut)
            finally:
                self._timer_wait = None
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            if entry in self._conditions:
                self._conditions.remove(entry)

    def handlers_running(self) -> bool:
        """Whether a signal or update handler's task has not ended."""
        return any(not t.done() for t in self._handler_tasks)

    def check_conditions(self) -> bool:
        """Resolve the waits whose predicate now holds; True if any did (the loop then has
        work again). A predicate that raises fails its wait with that error."""
        woke = False
        for entry in list(self._conditions):
            fn, fut = entry
            if fut.done():
                continue
            try:
                holds = fn()
            except Exception as exc:
                self._conditions.remove(entry)
                fut.set_exception(exc)
                woke = True
                continue
            if holds:
                self._conditions.remove(entry)
                fut.set_result(None)
                woke = True
        return woke


def _time_out(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


def _takes_no_argument(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called with no argument but not with one (a signal handler
    for a signal that carries no value: ``durable.on_signal("clear", lambda: ...)``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    try:
        sig.bind(None)
    except TypeError:
        return True
    return False
