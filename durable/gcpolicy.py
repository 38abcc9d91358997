"""The garbage collector's thresholds while a worker runs (or ``durable server`` serves).

A worker makes many short-lived container objects per step (coroutines, futures, records,
dicts) while hundreds of runs stay alive in its cache. With CPython's default thresholds
(700, 10, 10) the collector then runs a young collection every few steps, each walking
what survived, and full collections over every cached run: measured on W2 (500 workflows
of ten activities, SQLite), collections took about a third of the worker's CPU — 441 µs
per step with the defaults against 284 µs with (50,000, 20, 20), and no more memory than
the cycles that wait a little longer to be found.

So while at least one `Worker` runs, a process still on Python's default thresholds gets
`WORKER_THRESHOLD`, and the defaults back when the last worker stops. A program that set
its own thresholds (``gc.set_threshold``) is left exactly as it chose.

``durable server`` counts as a worker here: its console keeps the steps of the last runs
shown built (`durable.console.pages`), 100,000 of them for a big run, and a page's
allocations set off collections that walk them all. The first view of the run page of a
100,000-step run took 2.3-2.4 s of CPU with the defaults, 1.5-2.0 s with these
(benchmarks/README.md, 2026-12-03).
"""

from __future__ import annotations

import gc
import threading

__all__ = ["DEFAULT_THRESHOLD", "WORKER_THRESHOLD", "worker_started", "worker_stopped"]

DEFAULT_THRESHOLD = (700, 10, 10)  # CPython's own
WORKER_THRESHOLD = (50_000, 20, 20)

_lock = threading.Lock()
_running = 0
_raised = False


def worker_started() -> None:
    """A worker starts: raise the thresholds if the process is on Python's defaults."""
    global _running, _raised
    with _lock:
        _running += 1
        if _running == 1 and gc.get_threshold() == DEFAULT_THRESHOLD:
            gc.set_threshold(*WORKER_THRESHOLD)
            _raised = True


def worker_stopped() -> None:
    """A worker stopped: the last one puts back the defaults it raised (unless the
    program changed the thresholds meanwhile)."""
    global _running, _raised
    with _lock:
        _running = max(0, _running - 1)
        if _running == 0 and _raised:
            if gc.get_threshold() == WORKER_THRESHOLD:
                gc.set_threshold(*DEFAULT_THRESHOLD)
            _raised = False
