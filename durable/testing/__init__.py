"""`WorkflowEnvironment`: an in-process backend, worker and client for tests.

    async with WorkflowEnvironment(workflows=[approve], activities=[notify]) as env:
        handle = await env.client.start(approve, request)
        await handle.signal("decision", True)
        assert await handle.result() == "approved"   # a 90-day timeout costs milliseconds

With ``time_skipping=True`` (the default) the clock is virtual: it stands still, except that
while a test awaits ``handle.result()``, ``handle.update(...)`` or ``env.sleep(...)`` and
nothing else can happen first — no activity running, no unprocessed inbox item, every
workflow blocked — it jumps to the next due timer (or delayed retry, or schedule tick:
schedules fire in virtual time).

Why "nothing else can happen first" holds exactly, not by waiting and hoping
----------------------------------------------------------------------------
Before every jump the environment takes a *look* (`WorkflowEnvironment._quiet`):

1. ``token = worker.idle_token()`` and ``generation = hub.generation``, with no await
   between them; ``token`` is ``None`` while the worker holds any work in memory;
2. one read transaction on the private database, so one snapshot: can the worker claim a
   run (ready, or its lease lapsed), can it claim a task (visible now, or its lease
   lapsed), is a timer or a schedule due at or before now? And in the same snapshot, the
   next due time of a timer, delayed task or schedule (a schedule fires like a timer:
   its due tick becomes a ready run in one transaction);
3. ``worker.idle_token()`` and ``hub.generation`` again.

The clock moves only if 1 and 3 found the worker idle with equal tokens, 2 found no work,
and the generation did not change. Then nothing can happen before the next due time:

- Anything that can progress without the clock moving is work, held in the database (a
  claimable run or task, a due timer) or in the worker's memory (a claim under way, a
  step, a commit, an activity attempt). The hand-overs between the two overlap, so work is
  visible in one of them at every instant: a claim loop counts as busy from before its
  query until what it found is kicked as a step or holds an activity slot; a step or an
  attempt counts until the write handing back its result has committed; and writes move
  work inside the database atomically (a timer firing makes its run ready in the same
  transaction; a step giving back its lease marks the run ready again if items arrived).
- Memory was empty at 1 and at 3, and equal tokens say the worker started nothing in
  between (no step kicked, no activity slot taken); a claim that found something would
  still be under way at 3 or have kicked a step. So no work went from the database into
  memory between 1 and 3 — what ran was at most a claim query that found nothing, the
  timer loop (it turns a due timer into a ready run: 2 sees one or the other) and a
  heartbeat (it renews leases) — and none came back from memory. The database's work at 3
  is therefore what 2 saw, none, and memory at 3 is empty: only the clock can make
  progress, and the environment alone moves it.
- The next due time read in 2 is still right at 3: only steps create timers and tasks.
- Later checks that the token and generation are unchanged extend the same argument to
  that moment. ``handle.result()`` reads its run after a look and jumps only if they
  are, so the status it saw holds at the jump: it never jumps once its run has closed.

The one thing a look cannot see is a client call the test makes from *another* task while
it awaits ``result()`` or ``env.sleep()``: one that finished shows in 2 or changes the
generation, but one still on its way may land after the jump, as it could land after the
timer with a real clock. Await such calls before awaiting the result.

Waiting for a look to come out quiet is polling (every `SETTLE_STEP` while the worker is
busy), but what it decides does not depend on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Self

import aiosqlite

from durable_sqlite.claims import runs_claimable, tasks_claimable, timers_due
from durable_sqlite.schedules import schedules_due

from ..client import Client, WorkflowHandle
from ..clock import RealClock, VirtualClock
from ..errors import StoreError
from ..replayer import replay
from ..store import CLOSED_STATUSES, TOPIC_RUNS, TOPIC_TIMERS, run_topic
from ..topics import tasks_topics
from ..worker import Worker

__all__ = ["WorkflowEnvironment", "replay"]

SETTLE_STEP = 0.002  # real seconds between looks while the worker is busy
SETTLE_LIMIT = 30.0  # real seconds env.sleep() waits for the worker to go quiet, then fails
RESULT_SLICE = 0.05  # most real seconds one wait inside handle.result() takes before it
# returns to look at the run again (and at its own timeout)


class _Look(NamedTuple):
    """What a quiet look saw: the next due time, and the worker's idle token and the hub's
    generation that bracket it (equal later: still nothing has happened)."""

    next_due: float | None
    token: int
    generation: int


class WorkflowEnvironment:
    """A private SQLite database in a temporary folder, a `Worker` serving the given
    workflows and activities, and a `Client` (``env.client``) — all in this process.

    The database is thrown away on exit, so it is opened with ``synchronous=normal``: no
    fsync per commit (durability against power loss is of no use to a test)."""

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
        self._probe_db: aiosqlite.Connection | None = None  # for looks (time skipping)
        self._probe_lock = asyncio.Lock()  # one read transaction at a time on it

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
        path = self._dir / "test.db"
        try:
            self._client = Client(f"sqlite:///{path}?synchronous=normal", clock=self._clock)
            await self._client.__aenter__()
            self._worker = Worker(
                self._client,
                workflows=self._workflows,
                activities=self._activities,
                max_concurrency=self._max_concurrency,
            )
            await self._worker.__aenter__()
            if self.time_skipping:
                # Its own connection: a look's read transaction never waits for the client's.
                self._probe_db = await aiosqlite.connect(path, isolation_level=None)
                await self._probe_db.execute("PRAGMA query_only = ON")
                self._client._waiter = self._skip
        except BaseException:
            with contextlib.suppress(Exception):
                await self.__aexit__()  # the first error is the one to see
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Last in, first out, each even if one before it failed: worker, probe, client, files.
        async with contextlib.AsyncExitStack() as stack:
            if self._dir is not None:
                stack.callback(shutil.rmtree, self._dir, ignore_errors=True)
            if self._client is not None:
                stack.push_async_callback(self._client.aclose)
            if self._probe_db is not None:
                stack.push_async_callback(self._probe_db.close)
            if self._worker is not None:
                stack.push_async_callback(self._worker.aclose)

    # -- looks (see the module docstring for why they are exact) ---------------------------

    async def _probe(self) -> tuple[bool, float | None]:
        """One snapshot of the database: ``(whether it holds work the worker could claim
        now or a due timer, the next due time of a timer or delayed task)``."""
        db = self._probe_db
        assert db is not None
        worker = self.worker
        # One read transaction: in WAL mode all its queries see one snapshot, so a commit
        # between them (a timer firing: timer gone, run ready) cannot hide work from both.
        # The lock: result() calls awaited together look concurrently.
        async with self._probe_lock:
            now = self._clock.now()
            await db.execute("BEGIN")
            try:
                names = list(worker.workflows)
                if names and await runs_claimable(
                    db, worker.worker_id, queues=worker.queues, names=names, now=now
                ):
                    return True, None
                names = list(worker.activities)
                if names and await tasks_claimable(
                    db, queues=worker.queues, names=names, now=now, exclude=()
                ):
                    return True, None
                due, next_due = await timers_due(db, now)
                if due:
                    return True, None
                # A due schedule is work too; the next one's due time is a time to jump to.
                scheduled, next_scheduled = await schedules_due(db, now)
                if scheduled:
                    return True, None
                if next_scheduled is not None and (next_due is None or next_scheduled < next_due):
                    next_due = next_scheduled
                return False, next_due
            finally:
                await db.execute("COMMIT")

    async def _quiet(self) -> _Look | None:
        """One look: what it saw if nothing can happen before the clock moves, else None."""
        worker = self.worker
        hub = worker.store.hub
        token, generation = worker.idle_token(), hub.generation
        if token is None:
            return None
        work, next_due = await self._probe()
        if work or worker.idle_token() != token or hub.generation != generation:
            return None
        return _Look(next_due, token, generation)

    def _still(self, look: _Look) -> bool:
        """Whether nothing has happened since ``look`` (extending its bracket to now)."""
        worker = self.worker
        return worker.idle_token() == look.token and worker.store.hub.generation == look.generation

    async def _settle(self, limit: float) -> _Look | None:
        """Look until quiet, for up to ``limit`` real seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            look = await self._quiet()
            if look is not None or loop.time() >= deadline:
                return look
            await asyncio.sleep(SETTLE_STEP)

    async def _settled(self) -> float | None:
        """Wait until quiet (`TimeoutError` after `SETTLE_LIMIT`); the next due time."""
        look = await self._settle(SETTLE_LIMIT)
        if look is None:
            raise TimeoutError(
                f"env.sleep(): the worker was still busy after {SETTLE_LIMIT:g} s of real "
                "time (an activity still running, or work it cannot finish), so virtual time "
                "was not moved. Is an activity blocking or waiting on something real?"
            )
        return look.next_due

    async def _skip(
        self, handle: WorkflowHandle[Any], done: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Called by ``handle.result()`` (and ``handle.update()``, whose ``done`` says
        whether its outcome is in) while it waits: once quiet, jump to the next due time,
        unless the awaited run has closed (or ``done()``) meanwhile: nothing need move."""
        look = await self._settle(RESULT_SLICE)
        if look is None:
            return  # result() looks at the run again and comes back
        run = await handle._current()
        if run.status in CLOSED_STATUSES:
            return  # result() returns it (or follows a continue-as-new) without a jump
        if done is not None and await done():
            return  # the update's outcome is in: handle.update() returns it
        if not self._still(look):
            return  # something happened while we read the run (another task's call)
        if look.next_due is None:
            # Blocked on something only the test can send (a signal): wait for it.
            topics = [
                TOPIC_RUNS,
                TOPIC_TIMERS,
                run_topic(handle.id),
                *tasks_topics(self.worker.queues),
            ]
            await self.worker.store.hub.wait(topics, RESULT_SLICE, since=look.generation)
            return
        assert isinstance(self._clock, VirtualClock)
        self._clock.advance_to(look.next_due)

    async def sleep(self, duration: timedelta | float) -> None:
        """Let ``duration`` pass: in virtual time, firing every timer due on the way in
        order, each only once nothing else can happen first, and returning once nothing
        more can happen at the end time; in real time without time skipping.

        Raises `TimeoutError` if the worker stays busy for `SETTLE_LIMIT` real seconds.
        """
        seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
        if not seconds >= 0:
            raise ValueError(
                f"env.sleep() takes a duration >= 0 (seconds or a timedelta), got {duration!r}"
            )
        if not isinstance(self._clock, VirtualClock):
            await asyncio.sleep(seconds)
            return
        target = self._clock.now() + seconds
        while True:
            next_due = await self._settled()
            if next_due is None or next_due > target:
                break
            self._clock.advance_to(next_due)
        if target > self._clock.now():
            self._clock.advance_to(target)
            await self._settled()
