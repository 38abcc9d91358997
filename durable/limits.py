"""Queue limits and priorities: how many activity tasks of a queue run at once, per key,
and how many start per time window, enforced by the database for every claimer.

    await client.set_queue_limits("media", concurrency=10, key_concurrency=2,
                                  rate=100, per=timedelta(minutes=1))
    size = await durable.call(transcode, path, key="tenant-42", priority=1)

- ``concurrency``: at most this many tasks of the queue running at once, on all workers
  together (remote pollers included).
- ``key_concurrency``: at most this many running at once with the same ``key``
  (``durable.call(..., key=...)``; tasks without a key are held only by ``concurrency``).
- ``rate`` per ``per``: at most ``rate`` task starts (attempts begun) in any window of
  ``per``. A *sliding window* kept in the database (a row per claim that started tasks,
  with how many; rows older than ``per`` pruned by the next claim): it never lets more
  than ``rate`` start in any ``per``-long window, and still lets a backlog start up to
  ``rate`` at once. A token bucket would smooth starts but, sized to allow bursts of
  ``rate``, lets up to twice ``rate`` through in the window after an idle spell; sized
  small, it starves workers that poll once a second.

Priorities: ``durable.call(..., priority=1)``; higher first, FIFO (by the time the task
became due) within a priority, on every queue. Key and priority are recorded with the
``activity_scheduled`` command and written to the task row, so a retry keeps them and
replay never recomputes them.

How it is enforced: `durable.store.Store.claim_tasks` serialises the claims of a limited
queue (its ``queue_limits`` row is locked: PostgreSQL ``FOR UPDATE``, SQLite's one writer),
counts the queue's running tasks (per key too; expired leases still count until taken
over) and the starts in the window, and claims only what fits; limited queues are served
first, the rest of a claim's batch by the others. Where no queue has limits, a claim pays
one look at the empty ``queue_limits`` table (on PostgreSQL folded into a statement it
runs anyway). Times are the claimers' clocks (``now``): workers on several machines
should keep theirs in sync for the rate's window to be exact.

A worker runs an activity it scheduled itself without the task table (durable's fast
path) only on queues without limits: it re-reads which queues have limits with each
sweep (`durable.worker.SWEEP_INTERVAL`, a second) and when told they changed
(`durable.store.TOPIC_LIMITS`: at once in the process that set them and, through NOTIFY,
on PostgreSQL; until it has re-read them it runs nothing on the fast path). So a limit
set on a queue reaches the fast path of a worker in another process on SQLite within
about a second; claims obey it at once everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .clock import Clock
    from .store import Store

__all__ = [
    "MAX_PER",
    "MAX_PRIORITY",
    "LimitsAccess",
    "QueueLimits",
    "QueueView",
    "check_key",
    "check_priority",
    "parse_rate",
    "queue_views",
]

MAX_PRIORITY = 2**31 - 1  # priorities (and limits) are stored as 32-bit integers
MAX_PER = 100 * 365 * 86400.0  # the longest rate window, in seconds


def _positive(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number or None, got {value!r}")
    if value <= 0:
        raise ValueError(f"{what} must be at least 1, got {value}: pass None to remove that limit")
    if value > MAX_PRIORITY:
        raise ValueError(f"{what} must be at most {MAX_PRIORITY}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """The limits of one queue (`Client.set_queue_limits`); ``None`` means no such limit.

    ``per`` is the rate's window, given exactly when ``rate`` is. Raises `ValueError` (or
    `TypeError`) for a limit that is zero, negative or not a whole number, a ``per`` that
    is not a positive duration, or ``rate`` without ``per`` (or ``per`` without ``rate``).
    """

    queue: str
    concurrency: int | None = None
    key_concurrency: int | None = None
    rate: int | None = None
    per: timedelta | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.queue, str) or not self.queue:
            raise ValueError(f"queue must be a non-empty str, got {self.queue!r}")
        _positive(self.concurrency, "concurrency")
        _positive(self.key_concurrency, "key_concurrency")
        _positive(self.rate, "rate")
        per = self.per
        if isinstance(per, int | float) and not isinstance(per, bool):
            if not 0 < per <= MAX_PER:
                raise ValueError(f"per must be a positive duration up to 100 years, got {per} s")
            per = timedelta(seconds=per)
            object.__setattr__(self, "per", per)
        if per is not None:
            if not isinstance(per, timedelta):
                raise TypeError(f"per must be a timedelta (or seconds), got {per!r}")
            if not timedelta(0) < per <= timedelta(seconds=MAX_PER):
                raise ValueError(f"per must be a positive duration up to 100 years, got {per}")
        if (self.rate is None) != (per is None):
            given = "rate" if per is None else "per"
            raise ValueError(
                f"{given} given without {'per' if per is None else 'rate'} on queue "
                f"{self.queue!r}: a rate limit is rate=N starts per=timedelta(...), e.g. "
                "rate=100, per=timedelta(minutes=1)"
            )

    @property
    def empty(self) -> bool:
        """Whether no limit is set (the queue runs unlimited)."""
        return self.concurrency is None and self.key_concurrency is None and self.rate is None

    @property
    def per_seconds(self) -> float | None:
        """The rate's window in seconds (how the store keeps it)."""
        return None if self.per is None else self.per.total_seconds()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready map, as the CLI and the HTTP API show it: ``rate`` is ``null`` or
        ``{"count": N, "per": SECONDS}``."""
        return {
            "queue": self.queue,
            "concurrency": self.concurrency,
            "key_concurrency": self.key_concurrency,
            "rate": None if self.rate is None else {"count": self.rate, "per": self.per_seconds},
        }

    @property
    def rate_text(self) -> str | None:
        """The rate limit in words, e.g. ``100 per 1m``; ``None`` without one."""
        if self.rate is None or self.per is None:
            return None
        return f"{self.rate} per {_duration(self.per.total_seconds())}"

    def describe(self) -> str:
        """The limits in a few words, e.g. ``concurrency 10, per key 2, 100 per 1m``."""
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency {self.concurrency}")
        if self.key_concurrency is not None:
            parts.append(f"per key {self.key_concurrency}")
        if self.rate_text is not None:
            parts.append(self.rate_text)
        return ", ".join(parts) or "no limits"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_rate(text: str) -> tuple[int, timedelta]:
    """``"100/1m"`` (or ``100/m``, ``5/10s``, ``1000/1h``) as ``(100, timedelta(minutes=1))``.

    Raises `ValueError` saying the expected form for anything else.
    """
    match = _RATE.match(text)
    if match is None:
        raise ValueError(
            f"Cannot read the rate {text!r}: write starts/window, e.g. 100/1m, 5/10s or "
            "1000/1h (units ms, s, m, h, d)"
        )
    count, amount, unit = match.groups()
    seconds = float(amount or 1) * _UNITS[unit]
    if seconds <= 0:
        raise ValueError(f"The rate {text!r} has an empty window: use e.g. 100/1m")
    return int(count), timedelta(seconds=seconds)


def check_key(key: Any) -> str | None:
    """``durable.call``'s ``key``: a non-empty str or None; `ValueError`/`TypeError` else."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise TypeError(f"key must be a str (e.g. a tenant id) or None, got {key!r}")
    if not key:
        raise ValueError("key must be a non-empty str, or None for no key")
    return key


def check_priority(priority: Any) -> int:
    """``durable.call``'s ``priority``: a whole number within 32 bits (higher runs first)."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise TypeError(f"priority must be a whole number (higher runs first), got {priority!r}")
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(f"priority must be within ±{MAX_PRIORITY}, got {priority}")
    return priority


class LimitsAccess:
    """`durable.Client`'s queue-limit methods (a base class of it, kept here for size)."""

    clock: Clock

    if TYPE_CHECKING:

        async def _open(self) -> Store: ...

    async def set_queue_limits(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        key_concurrency: int | None = None,
        rate: int | None = None,
        per: timedelta | float | None = None,
    ) -> QueueLimits:
        """Set the limits of ``queue``, enforced by the database for every worker and
        remote poller; each ``None`` removes that limit (all ``None``: the queue runs
        unlimited again). Returns what is now in force.

            await client.set_queue_limits("media", concurrency=10, key_concurrency=2,
                                          rate=100, per=timedelta(minutes=1))

        Raises `ValueError`/`TypeError` for a zero or negative limit, a non-positive
        ``per``, or ``rate`` without ``per``; nothing is changed then.
        """
        limits = QueueLimits(queue, concurrency, key_concurrency, rate, per)  # type: ignore[arg-type]
        store = await self._open()
        await store.set_queue_limits(limits, self.clock.now())
        return limits

    async def queue_limits(self, queue: str) -> QueueLimits:
        """The limits of ``queue`` in force (all ``None`` when it has none)."""
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue must be a non-empty str, got {queue!r}")
        store = await self._open()
        found = await store.queue_limits([queue])
        return found[0] if found else QueueLimits(queue)

    async def list_queue_limits(self, queues: Collection[str] | None = None) -> list[QueueLimits]:
        """Every queue that has limits (or those of ``queues`` that do), by queue name."""
        store = await self._open()
        return await store.queue_limits(None if queues is None else list(queues))

    async def list_queues(self) -> list[QueueView]:
        """Every queue with work waiting or limits set, by name: what waits, and the
        limits (`QueueView`)."""
        return await queue_views(await self._open(), self.clock.now())


@dataclass(frozen=True, slots=True)
class QueueView:
    """One queue as operators see it (``durable queue list``, ``GET /v1/queues``): what
    waits on it (`durable.store.QueueStats`) and its limits."""

    queue: str
    tasks_waiting: int
    tasks_delayed: int
    runs_waiting: int
    oldest_waiting_at: float | None
    limits: QueueLimits

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready map; ``limits`` as `QueueLimits.to_json` without the queue, and
        ``oldest_waiting_at`` in ISO 8601 (UTC), as every time durable prints as JSON."""
        limits = self.limits.to_json()
        del limits["queue"]
        at = self.oldest_waiting_at
        oldest = None if at is None else datetime.fromtimestamp(at, UTC).isoformat()
        return {
            "queue": self.queue,
            "tasks_waiting": self.tasks_waiting,
            "tasks_delayed": self.tasks_delayed,
            "runs_waiting": self.runs_waiting,
            "oldest_waiting_at": oldest,
            "limits": limits,
        }


async def queue_views(store: Store, now: float) -> list[QueueView]:
    """Every queue with work waiting or limits set, by name."""
    stats = {q.queue: q for q in await store.queue_stats(now)}
    limits = {q.queue: q for q in await store.queue_limits()}
    views = []
    for name in sorted(stats.keys() | limits.keys()):
        q = stats.get(name)
        oldest = [t for t in (q.oldest_task_at, q.oldest_run_at) if t is not None] if q else []
        views.append(
            QueueView(
                name,
                q.tasks_waiting if q else 0,
                q.tasks_delayed if q else 0,
                q.runs_waiting if q else 0,
                min(oldest) if oldest else None,
                limits.get(name) or QueueLimits(name),
            )
        )
    return views
