"""`WorkflowEnvironment`: an in-process backend, worker and client for tests.

    async with WorkflowEnvironment(workflows=[approve], activities=[notify]) as env:
        handle = await env.client.start(approve, request)
        await handle.signal("decision", True)
        assert await handle.result() == "approved"   # a 90-day timeout costs milliseconds

With ``time_skipping=True`` (the default) the clock is virtual: it stands still, except that
while a test awaits ``handle.result()`` or ``env.sleep(...)`` and nothing else can happen
first — no activity running, no unprocessed inbox item, every workflow blocked — it jumps to
the next due timer (or delayed retry).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from ..client import Client, WorkflowHandle
from ..clock import RealClock, VirtualClock
from ..errors import StoreError
from ..worker import Worker

__all__ = ["WorkflowEnvironment"]

SETTLE_STEP = 0.002  # real seconds between idleness checks while skipping time
SETTLE_LIMIT = 30.0  # real seconds to wait for the worker to go idle before giving up


class WorkflowEnvironment:
    """A private SQLite database in a temporary folder, a `Worker` serving the given
    workflows and activities, and a `Client` (``env.client``) — all in this process."""

    def __init__(
        self,
        workflows: Iterable[Any] = (),
        activities: Iterable[Any] = (),
        time_skipping: bool = True,
        *,
        max_concurrency: int = 100,
    ) -> None:
        self.time_skipping = time_skipping
        self._workflows = list(workflows)
        self._activities = list(activities)
        self._max_concurrency = max_concurrency
        self._dir: Path | None = None
        self._clock = VirtualClock() if time_skipping else RealClock()
        self._client: Client | None = None
        self._worker: Worker | None = None

    @property
    def client(self) -> Client:
        """The environment's client."""
        if self._client is None:
            raise StoreError("Enter the environment first: async with WorkflowEnvironment(...)")
        return self._client

    @property
    def worker(self) -> Worker:
        """The environment's worker."""
        if self._worker is None:
            raise StoreError("Enter the environment first: async with WorkflowEnvironment(...)")
        return self._worker

    def now(self) -> datetime:
        """The environment's current time (virtual with time skipping)."""
        return datetime.fromtimestamp(self._clock.now(), UTC)

    async def __aenter__(self) -> Self:
        self._dir = Path(tempfile.mkdtemp(prefix="durable-test-"))
        self._client = Client(f"sqlite:///{self._dir / 'test.db'}", clock=self._clock)
        await self._client.__aenter__()
        self._worker = Worker(
            self._client,
            workflows=self._workflows,
            activities=self._activities,
            max_concurrency=self._max_concurrency,
        )
        await self._worker.__aenter__()
        if self.time_skipping:
            self._client._waiter = self._skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._worker is not None:
                await self._worker.aclose()
            if self._client is not None:
                await self._client.aclose()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)

    async def _settle(self) -> bool:
        """Wait (in real time) until the worker is idle; False if it never gets there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_LIMIT
        while loop.time() < deadline:
            await asyncio.sleep(SETTLE_STEP)
            if self.worker.is_idle():
                # Twice in a row: a wake-up may be on its way through the loop.
                await asyncio.sleep(SETTLE_STEP)
                if self.worker.is_idle():
                    return True
        return False

    async def _next_due(self) -> float | None:
        store = await self.client._open()
        return await store.fire_timers(self._clock.now(), 0)

    async def _skip(self, handle: WorkflowHandle[Any]) -> None:
        """Called by ``handle.result()`` while it waits: jump to the next timer when idle."""
        await asyncio.sleep(SETTLE_STEP)
        if not self.worker.is_idle():
            return
        await asyncio.sleep(SETTLE_STEP)
        if not self.worker.is_idle():
            return
        due = await self._next_due()
        if due is not None and isinstance(self._clock, VirtualClock):
            self._clock.advance_to(due)

    async def sleep(self, duration: timedelta | float) -> None:
        """Let ``duration`` pass: in virtual time, firing every timer due on the way in order;
        in real time without time skipping."""
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        if not isinstance(self._clock, VirtualClock):
            await asyncio.sleep(seconds)
            return
        target = self._clock.now() + seconds
        while True:
            await self._settle()
            due = await self._next_due()
            if due is None or due > target:
                break
            self._clock.advance_to(due)
        self._clock.advance_to(target)
        await self._settle()
