"""Wake-ups across processes on SQLite: `Wakeups`, the waiting half of `SQLiteStore`.

SQLite has no notifications between processes. A commit in this process notifies the
in-process `Hub` at once; another process's commit is noticed by ``PRAGMA
data_version`` changing: `Wakeups.wait` polls it while it waits for work (first after
`POLL_FIRST`, the delay doubling up to `POLL_INTERVAL` while nothing changes), and waits on
a workflow's topic (``result()``, ``read()``) share one watcher task per store, which
reads the watched workflows' current runs when the data version moves and notifies those
whose (run, status, journal length) changed since this store last saw them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Collection, Sequence
from typing import Any, Literal

import aiosqlite

from durable.errors import StoreError
from durable.notify import Hub
from durable.store import TOPIC_RUNS, TOPIC_TASKS, TOPIC_TIMERS, run_topic

__all__ = ["POLL_FIRST", "POLL_INTERVAL", "Wakeups"]

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.05  # most seconds between checks for other processes' commits while waiting
POLL_FIRST = 0.005  # the first check's delay; doubling up to POLL_INTERVAL while nothing changes

_WORK_TOPICS = frozenset({TOPIC_RUNS, TOPIC_TASKS, TOPIC_TIMERS})
_RUN_TOPIC = run_topic("")  # the prefix of every workflow's topic
_OBSERVED_MAX = 10_000  # workflows whose last seen state a store remembers for its watcher

# What a waiter on a workflow's topic may be waiting for: a new run, status, or step.
_Seen = tuple[str, str, int] | None


def _json(values: Collection[str]) -> str:
    return json.dumps(list(values))


class Wakeups:
    """`wait` and the watcher behind it, mixed into `SQLiteStore` (which sets the state
    below in its ``__init__`` and provides `_conn` and `_read`)."""

    hub: Hub
    path: str
    _db: aiosqlite.Connection | None
    _state: Literal["new", "open", "closed"]
    # data_version read at the start of the last query feeding each work topic: a wait
    # on that topic returns once another process has committed since.
    _seen: dict[str, int]
    # Workflow topics: waiters per workflow id, the state last seen of each, and the
    # task that watches for other processes' commits while anyone waits.
    _watched: dict[str, int]
    _newly_watched: bool  # the watcher must look even if nothing changed since
    _observed: dict[str, _Seen]
    _watcher: asyncio.Task[None] | None

    def _conn(self) -> aiosqlite.Connection:
        raise NotImplementedError  # SQLiteStore's

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError  # SQLiteStore's

    async def _data_version(self, db: aiosqlite.Connection) -> int:
        rows = list(await db.execute_fetchall("PRAGMA data_version"))
        return int(rows[0][0])

    async def wait(self, topics: Collection[str], timeout: float, since: int | None = None) -> None:
        """Wait on the hub; for work topics also return once another process has committed.

        Another process's commit is seen by ``PRAGMA data_version`` (checked after
        `POLL_FIRST`, then less often, up to every `POLL_INTERVAL`) differing from its value
        at the start of this store's last
        `claim_runs` / `claim_tasks` / `fire_timers` (the query feeding that topic), so a
        commit between that query and this wait is not missed either. A workflow's topic
        is compared with what this store's last `get_run` of it saw (``result()`` and
        ``read()`` query it so), by the watcher task the module docstring describes.
        """
        workflows = [t[len(_RUN_TOPIC) :] for t in topics if t.startswith(_RUN_TOPIC)]
        for workflow_id in workflows:
            count = self._watched.get(workflow_id, 0)
            self._watched[workflow_id] = count + 1
            if not count:
                # Another process may have committed to it since our get_run, and the
                # watcher may already have seen that data_version (looking at others).
                self._newly_watched = True
        idle = self._watcher is None or self._watcher.done()
        if workflows and idle and self._state == "open":
            self._watcher = asyncio.create_task(self._watch())
        try:
            await self._wait(topics, timeout, since)
        finally:
            for workflow_id in workflows:
                left = self._watched[workflow_id] - 1
                if left:
                    self._watched[workflow_id] = left
                else:
                    del self._watched[workflow_id]

    async def _wait(self, topics: Collection[str], timeout: float, since: int | None) -> None:
        work = [t for t in topics if t in _WORK_TOPICS]
        if not work:
            await self.hub.wait(topics, timeout, since)
            return
        db = self._conn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if since is None:
            since = self.hub.generation
        current = await self._data_version(db)
        baselines = {self._seen.get(t, current) for t in work}
        step = POLL_FIRST
        while True:
            if any(b != current for b in baselines):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            pause = min(step, remaining)
            step = min(step * 2, POLL_INTERVAL)
            started = loop.time()
            await self.hub.wait(topics, pause, since)
            if loop.time() - started < pause * 0.9:
                return  # notified in this process (a late one is caught on the next turn)
            current = await self._data_version(self._conn())

    def _observe(self, workflow_id: str, seen: _Seen) -> None:
        """Remember what this store last saw of a workflow; a change announces itself to
        the waiters in this process, which may have read it before the change."""
        old = self._observed.pop(workflow_id, "unseen")
        self._observed[workflow_id] = seen
        if len(self._observed) > _OBSERVED_MAX:
            # Forget the least recently seen that nobody waits on (a waiter's baseline stays).
            for oldest in self._observed:
                if oldest not in self._watched:
                    del self._observed[oldest]
                    break
        if old != "unseen" and old != seen:
            self.hub.notify([run_topic(workflow_id)])

    async def _watch(self) -> None:
        """While workflows are waited on, notice other processes' commits that changed them
        (see the module docstring); ends when nobody waits."""
        version: int | None = None
        step = POLL_FIRST
        try:
            while True:
                # Sleep first: a wait that an in-process notification ends within POLL_FIRST
                # (the worker in this process) costs no query at all.
                await asyncio.sleep(step)
                step = min(step * 2, POLL_INTERVAL)
                if not self._watched or self._db is None:
                    break
                current = await self._data_version(self._conn())
                if current != version or self._newly_watched:
                    version, self._newly_watched = current, False
                    await self._look(list(self._watched))
                    step = POLL_FIRST  # busy: the next change is likely soon
        except StoreError:
            pass  # closed meanwhile: waiters time out and query for themselves
        except Exception:
            # Waiters fall back to their own polling; the next wait starts a new watcher.
            logger.exception("Watching %s for other processes' commits failed", self.path)
        finally:
            if self._watcher is asyncio.current_task():
                self._watcher = None

    async def _look(self, workflow_ids: list[str]) -> None:
        found: dict[str, _Seen] = dict.fromkeys(workflow_ids)
        for i in range(0, len(workflow_ids), 500):
            rows = await self._read(
                "SELECT workflow_id, run_id, status, history_length FROM runs "
                "WHERE is_current = 1 AND workflow_id IN (SELECT value FROM json_each(?))",
                (_json(workflow_ids[i : i + 500]),),
            )
            for workflow_id, run_id, status, length in rows:
                found[workflow_id] = (run_id, status, length)
        for workflow_id, seen in found.items():
            self._observe(workflow_id, seen)
