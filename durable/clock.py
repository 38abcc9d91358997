"""The one source of time: a `Clock` seam with a real and a virtual implementation.

Everything that stamps or compares times (journal entries, timers, retry backoff, leases)
asks the worker's or client's clock, so `durable.testing` can swap in a `VirtualClock`
and test a 90-day sleep in milliseconds.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable

__all__ = ["Clock", "RealClock", "VirtualClock"]


class Clock(abc.ABC):
    """A source of POSIX time that can tell listeners when it jumps."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []

    @abc.abstractmethod
    def now(self) -> float:
        """Seconds since the epoch."""

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the clock jumps; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _jumped(self) -> None:
        for listener in list(self._listeners):
            listener()


class RealClock(Clock):
    """Wall-clock time (`time.time`). It never jumps as far as listeners are concerned."""

    def now(self) -> float:
        return _wall()


# `time.time` as imported, before `durable.guard` wraps the module's (the worker's clock
# is not workflow code: it skips the wrapper's check, three times a step).
_wall = time.time


class VirtualClock(Clock):
    """A clock that stands still until told to move (by `advance_to`), never backwards."""

    def __init__(self, start: float | None = None) -> None:
        super().__init__()
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance_to(self, when: float) -> None:
        """Move to ``when`` if it is later, and wake whatever waits on timers."""
        if when > self._now:
            self._now = when
            self._jumped()
