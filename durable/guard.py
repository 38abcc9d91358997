"""The guard: refuses I/O, threads, clocks and global randomness in workflow code.

Workflow code runs again on every replay, so whatever it does must come out the same from
the journal alone. The `WorkflowLoop` already refuses I/O routed through asyncio
(``run_in_executor``, sockets, subprocesses); this module catches what bypasses the loop,
wherever Python lets us see it, and raises `RefusedCallError` naming the call and its
durable replacement. It is an ordinary exception: uncaught, it fails the workflow with that
message (as any exception would); it is raised in replay too, since the same code runs.

How it works. ``WorkflowLoop.run_ready`` brackets the running of workflow code with
`enter` and `leave`, which record a *window* for the current thread in `_windows` (a dict
keyed by thread id). The first `enter` installs, once per process:

- an audit hook (`sys.addaudithook`; it cannot be removed, hence lazily). It sees, in
  Python 3.11: ``open`` (builtin ``open``, ``io.open``, ``os.open``, ``pathlib``),
  ``os.*`` (``listdir``, ``scandir``, ``remove``, ``rename``, ``mkdir``, ``system``,
  ``exec*``, ``fork``, ``posix_spawn``, ``kill``, ``putenv``, ...), ``shutil.*``,
  ``glob.*``, ``tempfile.*``, ``sqlite3.*``, ``subprocess.Popen`` (so ``subprocess.run``,
  ``check_output``, ``os.popen``), ``socket.*`` (``socket()``, ``connect``, ``bind``,
  ``getaddrinfo``, ``gethostbyname``, ``sendto``, ...), ``http.client``, ``urllib``,
  ``ftplib``/``smtplib``/``poplib``/``imaplib``/``nntplib`` connections and
  ``_thread.start_new_thread`` (so ``threading.Thread.start`` and thread pools);
- wrappers on module attributes that raise no audit event: ``time.sleep``, ``time.time``,
  ``time.time_ns``, ``uuid.uuid4`` and every module-level function of `random`
  (``random.random``, ``randint``, ``choice``, ``shuffle``, ``seed``, ...). ``date.today()``
  and ``datetime.today()`` call ``time.time`` from C, so they are caught too (reported as
  ``time.time()``).

Not caught (Python gives no hook): ``datetime.now()``/``utcnow()`` (a C type whose
classmethods cannot be replaced), ``time.monotonic``/``perf_counter``, ``os.urandom`` and
`secrets`, names bound before the first workflow ran (``from time import sleep`` keeps the
original function), reading or writing already-open files and sockets (``print``,
``sys.stdout``), ``os.stat``/``os.path.exists``, C extensions doing their own I/O, and
mutable global state. The guard is a safety net, not a sandbox.

Allowed inside workflow code: imports (reading ``.py``/``.pyc`` files), logging (including
``durable.logger`` and whatever handlers it reaches: files, sockets), tracebacks and
warnings (which read source lines). A refused event is let through when a frame of that
machinery — a module of `_MACHINERY` — is on the stack between the event and the window's
boundary (the ``run_ready`` frame), so a module imported lazily by workflow code may even
read the clock while it executes.

Cost outside workflow code: while no thread is in a window, the audit hook returns after
one test of `_windows` (about 0.1 µs per audit event on top of CPython's own dispatch), and
a wrapped function costs one extra Python call (about 0.05 to 0.1 µs). While a window is
open, other threads pay a thread-id lookup more. Activities (a thread pool, or async
activities on the worker's event loop outside ``run_ready``) are never in a window, so
they are never refused.
"""

from __future__ import annotations

import functools
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType
from typing import Any, NamedTuple

__all__ = ["RefusedCallError", "enter", "leave"]


class RefusedCallError(RuntimeError):
    """Workflow code called something it may not: I/O, a thread, the clock, global random.

    Raised at the call; uncaught, it fails the workflow with this message.
    """


class _Window(NamedTuple):
    boundary: FrameType  # the frame that runs workflow code (WorkflowLoop.run_ready)
    workflow: str  # the workflow's name, for messages


# Thread id -> the window open on that thread. Empty (falsy) whenever no workflow code runs
# anywhere in the process, which is what keeps the hook and the wrappers cheap.
_windows: dict[int, _Window] = {}
_get_ident = threading.get_ident
_install_lock = threading.Lock()
_installed = False

# Top-level modules whose frames make a refused call allowed: they are the interpreter's
# own machinery (imports, logging, tracebacks, warnings), not the workflow's logic.
_MACHINERY = frozenset(
    {
        "importlib",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "zipimport",
        "logging",
        "linecache",
        "tokenize",
        "traceback",
        "warnings",
    }
)

# What each kind of refused call is, and what to use instead.
_FILES = ("do file I/O", "Do it in an @activity and await that from the workflow.")
_PROCESS = ("start or signal processes", "Do it in an @activity and await that.")
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


def enter(workflow: str) -> _Window | None:
    """Mark the current thread as running workflow code, until `leave`.

    Call it from the function that runs the workflow's callbacks (its frame bounds the
    window); returns the window it replaces, to hand to `leave`.
    """
    if not _installed:
        _install()
    ident = _get_ident()
    previous = _windows.get(ident)
    _windows[ident] = _Window(sys._getframe(1), workflow)
    return previous


def leave(previous: _Window | None) -> None:
    """Close the current thread's window, restoring the one `enter` returned."""
    if previous is None:
        _windows.pop(_get_ident(), None)
    else:
        _windows[_get_ident()] = previous


def _refusal(window: _Window, frame: FrameType | None) -> bool:
    """Whether a guarded call made at ``frame`` inside ``window`` is refused: it is, unless
    a machinery frame lies between it and the window's boundary."""
    while frame is not None and frame is not window.boundary:
        # f_globals, not f_code: reading f_code raises an audit event of its own.
        name = frame.f_globals.get("__name__")
        if isinstance(name, str) and name.partition(".")[0] in _MACHINERY:
            return False
        frame = frame.f_back
    return True


def _refuse(window: _Window, call: str, kind: tuple[str, str], name: str = "") -> None:
    what, instead = kind
    raise RefusedCallError(
        f"Workflow {window.workflow!r} called {call}: workflow code runs again on every "
        f"replay, so it may not {what}. {instead.format(name=name)}"
    )


def _describe(event: str, args: tuple[Any, ...]) -> str:
    if event == "open" and args:
        return f"open({args[0]!r})"
    if event == "_thread.start_new_thread":
        return "threading.Thread.start() (_thread.start_new_thread)"
    shown = ", ".join(repr(arg)[:80] for arg in args[:2])
    return f"{event}({shown})" if shown else f"{event}()"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _windows:  # no workflow code running anywhere: the common case, kept cheapest
        return
    kind = _EVENTS.get(event) or _EVENT_MODULES.get(event.partition(".")[0])
    if kind is None:
        return
    window = _windows.get(_get_ident())
    if window is None or not _refusal(window, sys._getframe(1)):
        return
    _refuse(window, _describe(event, args), kind)


def _check(call: str, kind: tuple[str, str], name: str) -> None:
    """The slow path of a wrapper, taken only while some window is open."""
    window = _windows.get(_get_ident())
    if window is not None and _refusal(window, sys._getframe(2)):
        _refuse(window, call, kind, name)


def _guarded(fn: Callable[..., Any], call: str, kind: tuple[str, str]) -> Callable[..., Any]:
    name = fn.__name__

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _windows:
            _check(call, kind, name)
        return fn(*args, **kwargs)

    return guarded


def _guarded_clock(fn: Callable[[], Any], call: str) -> Callable[[], Any]:
    # time.time and time.time_ns take no arguments and are called often (logging, clocks):
    # a wrapper without *args/**kwargs costs a third less.
    @functools.wraps(fn)
    def guarded() -> Any:
        if _windows:
            _check(call, _CLOCK, "")
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
        clock = _guarded_clock(time.time, "time.time() (date.today() calls it too)")
        setattr(time, "time", clock)  # noqa: B010
        setattr(time, "time_ns", _guarded_clock(time.time_ns, "time.time_ns()"))  # noqa: B010
        setattr(uuid, "uuid4", _guarded(uuid.uuid4, "uuid.uuid4()", _UUID))  # noqa: B010
        # The module-level functions of `random` are bound methods of one hidden instance.
        hidden = getattr(random, "_inst", None)
        for name in random.__all__:
            fn = getattr(random, name, None)
            if callable(fn) and hidden is not None and getattr(fn, "__self__", None) is hidden:
                setattr(random, name, _guarded(fn, f"random.{name}()", _RANDOM))
        sys.addaudithook(_audit)
        _installed = True
