"""The guard: refuses I/O, threads, the clock and global randomness in workflow code.

Workflow code runs again on every replay, so what it does must come out the same from the
journal alone. The `WorkflowLoop` refuses I/O routed through asyncio (``run_in_executor``,
asyncio sockets and subprocesses); this module catches, wherever Python lets us see it,
what bypasses the loop, and raises `RefusedCallError` naming the call and its durable
replacement. That is an ordinary exception: uncaught, it fails the workflow with its
message; it is raised in replay too, since the same code runs.

How. ``WorkflowLoop.run_ready`` brackets the running of workflow code with `enter` and
`leave`, which mark the current thread in `_windows` (thread id -> workflow name). The
first `enter` installs, once per process (lazily: an audit hook cannot be removed):

- an audit hook (`sys.addaudithook`) refusing the events, in Python 3.11, ``open``
  (builtin ``open``, ``io.open``, ``os.open``, `pathlib`, `tempfile` files), ``os.*``
  (``listdir``, ``scandir``, ``remove``, ``rename``, ``mkdir``, ``chmod``, ``system``,
  ``exec*``, ``fork``, ``posix_spawn``, ``kill``, ``chdir``, ``putenv`` hence
  ``os.environ[...] = ...``), ``shutil.*``,
  ``glob.*``, ``tempfile.*``, ``sqlite3.*``, ``subprocess.Popen`` (hence
  ``subprocess.run``/``check_output`` and ``os.popen``), ``socket.*`` (creating a socket,
  ``connect``, ``bind``, ``getaddrinfo``, ``gethostbyname``, ``sendto``, ...), and the
  ``http.client``, ``urllib``, ``ftplib``, ``smtplib``, ``poplib``, ``imaplib`` and
  ``nntplib`` connection events;
- wrappers, for calls that raise no audit event, on ``time.sleep``, ``time.time``,
  ``time.time_ns``, ``uuid.uuid4``, ``threading.Thread.start`` (so thread pools too),
  ``_thread.start_new_thread`` and every module-level function of `random` (``random``,
  ``randint``, ``choice``, ``shuffle``, ``seed``, ...). ``date.today()`` and
  ``datetime.today()`` call ``time.time`` from C, so they are refused too (as
  ``time.time()``).

Not caught, for want of a hook: ``datetime.now()``/``utcnow()`` (a C type whose methods
cannot be replaced), ``time.monotonic``/``perf_counter``, ``os.urandom``/`secrets`;
functions bound to a name before the first workflow ran (``from time import sleep`` keeps
the original); reads and writes on files or sockets opened outside workflow code (``print``
included); ``os.stat``/``os.path.exists``; C extensions doing their own I/O; global
mutable state. The guard is a safety net, not a sandbox.

Let through: imports (which read ``.py``/``.pyc`` files, and whose module-level code may
do anything), logging (``durable.logger`` and any handler it reaches, even one opening a
file or socket), tracebacks and warnings (which read source lines). A guarded call is
allowed when a frame of one of `_MACHINERY`'s modules lies on the stack between it and the
callback running the workflow code (`asyncio.Handle._run`). Reading package data or
metadata (`importlib.resources`, `importlib.metadata`) is file I/O like any other.

Cost outside workflow code (measured on CPython 3.11): when no thread runs workflow code,
the audit hook returns after one test of `_windows`, but CPython's dispatch of every audit
event to a Python hook costs about 0.2 µs (``open()`` goes from 5.2 to 5.6 µs); a wrapped
function costs one Python call more: 0.04 µs for ``time.time`` and ``random.random``
(60 -> 100 ns, 31 -> 70 ns), 0.2 µs for those taking arguments (``random.randint`` 285 ->
475 ns). While some thread runs workflow code, the others pay a thread-id lookup more.
`enter` plus `leave` cost about 0.25 µs per ``run_ready``. Activities run in a thread pool,
or on the event loop outside ``run_ready``: they are never refused.
"""

from __future__ import annotations

import _thread
import functools
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["RefusedCallError", "enter", "leave"]


class RefusedCallError(RuntimeError):
    """Workflow code called something it may not: I/O, a thread, the clock, global random.

    Raised at the call; uncaught, it fails the workflow with this message.
    """


# Thread id -> the name of the workflow whose code that thread is running. Empty (falsy)
# whenever no workflow code runs anywhere in the process, which is what keeps the hook and
# the wrappers cheap.
_windows: dict[int, str] = {}
_get_ident = threading.get_ident
_install_lock = threading.Lock()
_installed = False

# Modules whose frames make a guarded call allowed: the interpreter's own machinery for
# imports, logging, tracebacks and warnings, not the workflow's logic. Exact names, so that
# importlib.metadata or importlib.resources reading files for workflow code is refused.
_MACHINERY = frozenset(
    {
        "importlib._bootstrap",
        "importlib._bootstrap_external",
        "_frozen_importlib",  # the same two, before importlib renames them at start-up
        "_frozen_importlib_external",
        "zipimport",
        "logging",
        "logging.handlers",
        "linecache",
        "tokenize",
        "traceback",
        "warnings",
    }
)

# What each kind of refused call is, and what to use instead.
_FILES = ("do file I/O", "Do it in an @activity and await that from the workflow.")
_PROCESS = (
    "start or signal processes",
    "Do it in an @activity and await that from the workflow.",
)
_STATE = (
    "change the worker process's environment or directory",
    "Pass what the code needs as arguments, or do it in an @activity.",
)
_NETWORK = ("do network I/O", "Do it in an @activity and await that from the workflow.")
_THREAD = (
    "start threads",
    "For concurrency use asyncio tasks (asyncio.gather, durable.map); for blocking work, a "
    "sync @activity (activities run in a thread pool).",
)
_SLEEP = (
    "block the worker",
    "Use await durable.sleep(seconds) (a durable timer; asyncio.sleep works too).",
)
_CLOCK = (
    "read the wall clock",
    "Use durable.now(): the time of the step being applied, the same on replay.",
)
_RANDOM = (
    "use the process-wide random generator",
    "Use durable.random() (a random.Random seeded per run, e.g. durable.random().{name}(...)), "
    "which gives the same numbers on replay.",
)
_UUID = ("draw a random UUID", "Use durable.uuid4(), which is the same on replay.")

# Audit events refused, by exact name, then by the part before the first dot.
_EVENTS: dict[str, tuple[str, str]] = {
    "open": _FILES,
    "subprocess.Popen": _PROCESS,
    "os.system": _PROCESS,
    "os.exec": _PROCESS,
    "os.fork": _PROCESS,
    "os.forkpty": _PROCESS,
    "os.posix_spawn": _PROCESS,
    "os.spawn": _PROCESS,
    "os.startfile": _PROCESS,
    "os.kill": _PROCESS,
    "os.killpg": _PROCESS,
    "os.putenv": _STATE,
    "os.unsetenv": _STATE,
    "os.chdir": _STATE,
    "pty.spawn": _PROCESS,
    "_thread.start_new_thread": _THREAD,
    "urllib.Request": _NETWORK,
    "webbrowser.open": _PROCESS,
}
_EVENT_MODULES: dict[str, tuple[str, str]] = {
    "os": _FILES,
    "shutil": _FILES,
    "glob": _FILES,
    "tempfile": _FILES,
    "sqlite3": _FILES,
    "socket": _NETWORK,
    "http": _NETWORK,
    "ftplib": _NETWORK,
    "smtplib": _NETWORK,
    "poplib": _NETWORK,
    "imaplib": _NETWORK,
    "nntplib": _NETWORK,
    "telnetlib": _NETWORK,
}


def enter(workflow: str) -> str | None:
    """Mark the current thread as running the code of ``workflow`` until `leave`; returns
    the mark it replaces, to hand to `leave`.

    Called by ``WorkflowLoop.run_ready``, which runs workflow code as callbacks of
    `asyncio.Handle` (the ``asyncio.events`` frames that bound the stack walk below).
    """
    if not _installed:
        _install()
    ident = _get_ident()
    previous = _windows.get(ident)
    _windows[ident] = workflow
    return previous


def leave(previous: str | None) -> None:
    """Clear the current thread's mark, restoring the one `enter` returned."""
    if previous is None:
        _windows.pop(_get_ident(), None)
    else:
        _windows[_get_ident()] = previous


def _refused(frame: FrameType | None) -> bool:
    """Whether a guarded call made at ``frame`` (on a thread running workflow code) is
    refused: it is, unless a machinery frame lies between it and the callback that runs the
    workflow code (`asyncio.Handle._run`, the innermost ``asyncio.events`` frame)."""
    while frame is not None:
        # f_globals, not f_code: reading f_code raises an audit event of its own.
        name = frame.f_globals.get("__name__")
        if isinstance(name, str):
            if name == "asyncio.events":
                return True
            if name in _MACHINERY:
                return False
        frame = frame.f_back
    return True


def _refuse(workflow: str, call: str, kind: tuple[str, str], name: str = "") -> None:
    what, instead = kind
    raise RefusedCallError(
        f"Workflow {workflow!r} called {call}: workflow code runs again on every replay, "
        f"so it may not {what}. {instead.format(name=name)}"
    )


def _describe(event: str, args: tuple[Any, ...]) -> str:
    """The refused call as the user wrote it, roughly: the event and its main argument."""
    if event == "socket.__new__":
        return "socket.socket()"
    if event == "subprocess.Popen" and len(args) > 1:
        return f"subprocess.Popen({args[1]!r:.120})"
    shown = [arg for arg in args if not isinstance(arg, socket.socket)][:1]
    return f"{event}({shown[0]!r:.120})" if shown else f"{event}()"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _windows:  # no workflow code running anywhere: the common case, kept cheapest
        return
    kind = _EVENTS.get(event) or _EVENT_MODULES.get(event.partition(".")[0])
    if kind is None:
        return
    workflow = _windows.get(_get_ident())
    if workflow is not None and _refused(sys._getframe(1)):
        _refuse(workflow, _describe(event, args), kind)


def _check(call: str, kind: tuple[str, str], name: str) -> None:
    """The slow path of a wrapper, taken only on a thread running workflow code."""
    if _refused(sys._getframe(2)):
        _refuse(_windows[_get_ident()], call, kind, name)


def _guarded(fn: Callable[..., Any], call: str, kind: tuple[str, str]) -> Callable[..., Any]:
    name = fn.__name__

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _windows and _get_ident() in _windows:
            _check(call, kind, name)
        return fn(*args, **kwargs)

    return guarded


def _guarded_bare(fn: Callable[[], Any], call: str, kind: tuple[str, str]) -> Callable[[], Any]:
    # For time.time, time.time_ns and random.random: they take no arguments and are the ones
    # called in loops, where a wrapper without *args/**kwargs costs half as much.
    name = fn.__name__

    @functools.wraps(fn)
    def guarded() -> Any:
        if _windows and _get_ident() in _windows:
            _check(call, kind, name)
        return fn()

    return guarded


def _install() -> None:
    """Install the audit hook and the module wrappers, once per process."""
    global _installed
    with _install_lock:
        if _installed:
            return
        # setattr: the point is to replace module attributes everyone reaches.
        setattr(time, "sleep", _guarded(time.sleep, "time.sleep()", _SLEEP))  # noqa: B010
        clock = _guarded_bare(
            time.time, "time.time() (which date.today() and datetime.today() call)", _CLOCK
        )
        setattr(time, "time", clock)  # noqa: B010
        clock_ns = _guarded_bare(time.time_ns, "time.time_ns()", _CLOCK)
        setattr(time, "time_ns", clock_ns)  # noqa: B010
        setattr(uuid, "uuid4", _guarded(uuid.uuid4, "uuid.uuid4()", _UUID))  # noqa: B010
        # Python 3.11 raises no audit event for a new thread: wrap what starts one.
        start = _guarded(threading.Thread.start, "threading.Thread.start()", _THREAD)
        setattr(threading.Thread, "start", start)  # noqa: B010
        new = _guarded(_thread.start_new_thread, "_thread.start_new_thread()", _THREAD)
        setattr(_thread, "start_new_thread", new)  # noqa: B010
        # The module-level functions of `random` are bound methods of one hidden instance.
        hidden = getattr(random, "_inst", None)
        for name in random.__all__:
            fn = getattr(random, name, None)
            if callable(fn) and hidden is not None and getattr(fn, "__self__", None) is hidden:
                wrap = _guarded_bare if name == "random" else _guarded
                wrapped = wrap(fn, f"random.{name}()", _RANDOM)
                # Named as a module function, so pickle (process pools) finds it by name.
                setattr(wrapped, "__module__", "random")  # noqa: B010
                setattr(wrapped, "__qualname__", name)  # noqa: B010
                setattr(random, name, wrapped)
        sys.addaudithook(_audit)
        _installed = True
