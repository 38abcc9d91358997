"""In-process wake-ups: a store that commits tells every waiter on the same database at once.

Stores of one database in one process (a client and a worker side by side, as in tests,
notebooks and the benchmarks) share a `Hub`, found by `hub_for(key)`. Cross-process
wake-ups are each backend's business (LISTEN/NOTIFY, a data_version poll); they feed the
same hub with `Hub.notify`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable

from .topics import TOPIC_LIMITS

__all__ = ["ALL", "PINNED_TOPICS", "TOPICS_REMEMBERED", "Hub", "hub_for"]

ALL = "*"  # notifying this topic wakes every waiter (a change seen from another process)
TOPICS_REMEMBERED = 4096  # topics whose last notification a hub remembers (see Hub)
#: Topics whose last notification a hub never forgets (`Hub.pinned_since`): rare ones a
#: worker asks about on its hot path, where an early "yes" would cost it its fast path.
PINNED_TOPICS = frozenset({TOPIC_LIMITS, ALL})

_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


class Hub:
    """Waiters keyed by topic; `notify` wakes those on any of the given topics.

    Waiters are futures on whatever loop awaited; notifying from another loop or thread is
    safe (the wake-up is scheduled on the waiter's loop).

    For ``since``, the hub remembers the generation of the last notification of the
    `TOPICS_REMEMBERED` most recently notified topics (one per workflow would grow without
    bound); a topic forgotten counts as notified at the latest generation forgotten, so
    at worst a wait returns early (allowed), never late.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped by every notify; read it before a query, pass as since
        self._topic_generation: OrderedDict[str, int] = OrderedDict()  # oldest first
        self._forgotten = 0  # the latest generation of a topic dropped from the above
        self._pinned: dict[str, int] = {}  # PINNED_TOPICS -> generation, never forgotten
        #: Called with the topics of every `notify` made here (not of those passed on
        #: from other processes): a backend's way to tell its other processes (SQLite's
        #: doorbells, `durable_sqlite.doorbell`).
        self.forward: Callable[[set[str]], None] | None = None

    def _last_notified(self, topic: str) -> int:
        return self._topic_generation.get(topic, self._forgotten)

    def notify(self, topics: Iterable[str], *, forward: bool = True) -> None:
        """Wake every waiter on any of ``topics`` (``ALL`` wakes everyone); with ``forward``
        (the default: a change made in this process) also hand them to `forward`."""
        woken: set[asyncio.Future[None]] = set()
        topics = set(topics)
        if forward and self.forward is not None:
            self.forward(topics)
        with self._lock:
            self.generation += 1
            remembered = self._topic_generation
            for topic in topics:
                remembered[topic] = self.generation
                remembered.move_to_end(topic)
                if topic in PINNED_TOPICS:
                    self._pinned[topic] = self.generation
            while len(remembered) > TOPICS_REMEMBERED:
                _, generation = remembered.popitem(last=False)
                self._forgotten = max(self._forgotten, generation)
            if ALL in topics:
                for waiters in self._waiters.values():
                    woken |= waiters
            else:
                for topic in topics:
                    woken |= self._waiters.get(topic, set())
        for fut in woken:
            loop = fut.get_loop()
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                if not fut.done():
                    fut.set_result(None)
            else:
                loop.call_soon_threadsafe(_resolve, fut)

    def topics_since(self, since: int) -> list[str] | None:
        """The topics notified after generation ``since``, latest first; ``None`` when that
        cannot be told (``ALL`` was notified, or one of them was forgotten): then anything
        may have changed."""
        with self._lock:
            if self._forgotten > since:
                return None
            out = []
            for topic, generation in reversed(self._topic_generation.items()):
                if generation <= since:
                    break
                if topic == ALL:
                    return None
                out.append(topic)
            return out

    def pinned_since(self, topic: str, since: int) -> bool:
        """Whether ``topic`` (one of `PINNED_TOPICS`) or ``ALL`` was notified after
        generation ``since``: exact, where `notified_since` may answer yes early.

        Without the lock (a worker asks once per step): each read of ``_pinned`` is atomic,
        and a `notify` racing this call is seen or not, as it would be just before or
        after taking the lock."""
        pinned = self._pinned
        return pinned.get(topic, 0) > since or pinned.get(ALL, 0) > since

    def notified_since(self, topics: Collection[str], since: int) -> bool:
        """Whether one of ``topics`` (or ``ALL``) was notified after generation ``since``."""
        with self._lock:
            return any(self._last_notified(t) > since for t in (*topics, ALL))

    async def wait(self, topics: Collection[str], timeout: float, since: int | None = None) -> None:
        """Return when one of ``topics`` is notified or ``timeout`` seconds pass.

        With ``since`` (a `generation` read before the caller's last query), return at once
        if one of the topics was notified after it: no wake-up falls between query and wait.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if since is not None:
                seen = max(self._last_notified(t) for t in (*topics, ALL))
                if seen > since:
                    return
            for topic in topics:
                self._waiters.setdefault(topic, set()).add(fut)
        # The timeout resolves the private future as a notification would: one timer and
        # one wake-up, where wait_for(shield(...)) took three futures and their callbacks.
        timer = loop.call_later(timeout, _resolve, fut) if timeout is not None else None
        try:
            await fut
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                for topic in topics:
                    waiters = self._waiters.get(topic)
                    if waiters is not None:
                        waiters.discard(fut)
                        if not waiters:
                            del self._waiters[topic]


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def hub_for(key: str) -> Hub:
    """The process-wide hub for one database (key: a resolved file path or a server URL)."""
    with _hubs_lock:
        hub = _hubs.get(key)
        if hub is None:
            hub = _hubs[key] = Hub()
        return hub
