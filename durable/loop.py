"""The workflow event loop: an asyncio loop that runs only when the engine steps it.

`WorkflowLoop` is what workflow code runs on: ``call_soon`` queues to a FIFO, ``time()`` is
the time of the input being applied, ``call_at``/``call_later`` become durable timers (the
run journals ``timer_started``), and everything that would leave the process — sockets,
subprocesses, thread pools, signal handlers — is refused with a message saying to use an
activity. `run_ready` runs callbacks to quiescence; around it `durable.guard` refuses the
blocking calls asyncio cannot see, and `durable.branches` learns which task issued what.

`current_run` is how `@workflow`/`@activity` wrappers and `durable.*` helpers find the run
whose code is executing (``None`` outside workflow code).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from . import guard
from .branches import Branches

if TYPE_CHECKING:
    from .engine import WorkflowRun

__all__ = ["WorkflowLoop", "current_run"]

logger = logging.getLogger("durable.engine")


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
        self.branches = Branches()
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
        if self.run.answering is not None:  # a query starts nothing (durable.queries)
            coro.close()
            raise self.run.refuse_in_query("asyncio.create_task()")
        task = asyncio.Task(coro, loop=self, name=name, context=context)
        self.branches.spawned(task, asyncio.current_task(self))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def run_ready(self) -> None:
        """Run callbacks until none is ready (quiescence)."""
        previous = asyncio._get_running_loop()
        asyncio._set_running_loop(self)
        outer = guard.enter(self.run.definition.name)
        try:
            while self._ready:
                handle = self._ready.popleft()
                if not handle._cancelled:
                    try:
                        handle._run()
                    except (SystemExit, KeyboardInterrupt):
                        # Raised by workflow code: its task holds the exception and fails
                        # like any other; it must not stop the worker (asyncio re-raises
                        # these two from a task's step to stop its loop).
                        pass
                    self.branches.segment_done()
        finally:
            guard.leave(outer)
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
