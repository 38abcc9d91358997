"""Retention: deleting closed runs once they are old enough (``client.prune``,
``durable prune``, ``Worker(retention=...)``, ``POST /v1/prune``).

A run goes, with its journal, inbox, tasks, timers, tags and (with its workflow id's
current run) published values, when it closed before the cutoff; never an open run, nor
the child of an open parent (the full rule is `durable.store.Store.prune_runs`'s). The
work is done in batches of `PRUNE_BATCH` runs, each its own short transaction followed by a
pause as long as it took, so workers' commits go on while a big backlog is pruned.

Continue-as-new chains: a run that continued as new is pruned like any closed run once it
is old enough, even while its successor is open. The successor needs nothing of it: its
input is in its own row, the signals the old run had not consumed moved to it at the
commit, its tags were copied, and handles follow the workflow id to the current run.
Without this, a workflow that continues as new every day for ever would keep every day.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import timedelta

from .clock import Clock
from .store import Store, open_store

__all__ = [
    "PRUNE_BATCH",
    "PRUNE_PAUSE",
    "RETENTION_BATCH",
    "RETENTION_INTERVAL",
    "RETENTION_PACE",
    "keep",
    "older_than_seconds",
    "parse_duration",
    "prune",
]

logger = logging.getLogger(__name__)

PRUNE_BATCH = 500  # runs deleted per transaction by client.prune
PRUNE_PAUSE = 0.005  # least seconds between batches (more after a slow batch: see prune)
RETENTION_BATCH = 100  # runs per transaction when a worker prunes: shorter lock holds
RETENTION_INTERVAL = 600.0  # seconds between a worker's retention passes
RETENTION_PACE = 4.0  # a worker pauses 4x each batch's time: at most ~20% of write time

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"2w"`` or a sum such as ``"1d12h"``.

    Raises:
        ValueError: anything else, saying how to write one.
    """
    compact = text.strip().lower().replace(" ", "")
    parts = _PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(
            f"Cannot read {text!r} as a duration: write a number and a unit, e.g. 30d, 12h, "
            "90m, 45s or 2w (units: s, m, h, d, w; parts add up, as in 1d12h)."
        )
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def older_than_seconds(older_than: timedelta | float, what: str = "older_than") -> float:
    """``older_than`` (a timedelta, or seconds) as seconds > 0.

    Raises:
        TypeError: neither a timedelta nor a number.
        ValueError: zero or negative (that would delete runs that just closed, or none).
    """
    if isinstance(older_than, timedelta):
        seconds = older_than.total_seconds()
    elif isinstance(older_than, int | float) and not isinstance(older_than, bool):
        seconds = float(older_than)
    else:
        raise TypeError(
            f"{what} must be a timedelta (e.g. timedelta(days=30)) or seconds, "
            f"not {older_than!r:.80}"
        )
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(
            f"{what} must be a positive, finite age (e.g. timedelta(days=30)): runs closed "
            f"longer ago than that are deleted; got {older_than!r}"
        )
    return seconds


async def prune(
    store: Store,
    clock: Clock,
    older_than: timedelta | float,
    *,
    batch: int | None = None,
    pace: float = 1.0,
) -> int:
    """Delete the runs that closed more than ``older_than`` ago and may go (see the module
    docstring), ``batch`` (default `PRUNE_BATCH`) per transaction, pausing ``pace`` times
    as long as each batch took before the next; return how many."""
    cutoff = clock.now() - older_than_seconds(older_than)
    batch = batch or PRUNE_BATCH
    total = 0
    while True:
        started = time.monotonic()
        deleted = await store.prune_runs(cutoff, batch)
        total += deleted
        if deleted < batch:
            return total
        # With pace 1, as long again as the batch took: pruning takes at most about half
        # the time the database can write, and the workers' commits the rest.
        await asyncio.sleep(max(PRUNE_PAUSE, pace * (time.monotonic() - started)))


async def keep(url: str, clock: Clock, older_than: float, worker_id: str) -> None:
    """A worker's retention loop, on a store of its own for ``url``: prune now and every
    `RETENTION_INTERVAL` seconds, in batches of `RETENTION_BATCH` at `RETENTION_PACE` (it
    is never urgent), until cancelled. Several workers may run it at once: each batch
    takes runs no other transaction holds."""
    # A store of its own: on SQLite a store's operations take turns on one thread, and the
    # worker's claims and commits must not wait behind a batch of deletes.
    async with open_store(url) as store:
        while True:
            deleted = await prune(
                store, clock, older_than, batch=RETENTION_BATCH, pace=RETENTION_PACE
            )
            if deleted:
                logger.info("Worker %s pruned %d closed run(s)", worker_id, deleted)
            await asyncio.sleep(RETENTION_INTERVAL)
