"""Wake-ups across processes on SQLite: `Wakeups`, the waiting half of `SQLiteStore`.

SQLite has no notifications between processes. A commit in this process notifies the
in-process `Hub` at once, and a waiter in this process wakes from that alone: no query
stands between a commit and its wake-up. Another process's commit is noticed by ``PRAGMA
data_version`` changing: `Wakeups.wait` polls it while it waits for work (first after
`POLL_FIRST`, the delay doubling up to `POLL_INTERVAL` while nothing changes; where other
processes ring this one's doorbell, `durable_sqlite.doorbell`, their commits wake it by the
ring, and the poll is only the net under a lost ring, every `POLL_INTERVAL`), and waits on
a workflow's topic (``result()``, ``read()``) share one watcher task per store, which
checks the data version and, when it moved, reads the watched workflows' current runs in
the same thread hop, notifying those whose (run, status, journal length) changed since
this store last saw them.

Commits of another store of the same file in this process (the worker beside a client)
move the data version too, and a step changes the journal length without notifying the
workflow's topic (the hub is told of what its waiters wait for: a new status, a
published value). So every store of the file in this process records, in
`local_writes`, the state its steps left each workflow in; the watcher takes a state
found there as seen, not as news, and polls fast only while it finds news. Otherwise an
in-process worker's every step would wake every ``result()`` in the process for a query,
and keep the watcher polling at full rate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import weakref
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Literal, TypeVar

import aiosqlite

from durable.errors import StoreError
from durable.notify import Hub
from durable.store import TOPIC_RUNS, TOPIC_STATUS, TOPIC_TASKS, TOPIC_TIMERS, run_topic
from durable.topics import TOPIC_ANSWERS, TOPIC_QUERIES, end_topic

from . import transact as _tx
from .doorbell import Doorbell

__all__ = ["POLL_FIRST", "POLL_INTERVAL", "Wakeups"]

logger = logging.getLogger(__name__)

POLL_INTERVAL = 0.05  # most seconds between checks for other processes' commits while waiting
POLL_FIRST = 0.005  # the first check's delay; doubling up to POLL_INTERVAL while nothing changes

# Topics another process's commits may concern, noticed by data_version: work, run
# status changes for live views (durable server's events; only they wait on it), and
# queries and their answers (durable_sqlite.queries).
_WORK_TOPICS = frozenset(
    {TOPIC_RUNS, TOPIC_TASKS, TOPIC_TIMERS, TOPIC_STATUS, TOPIC_QUERIES, TOPIC_ANSWERS}
)
_RUN_TOPIC = run_topic("")  # the prefix of every workflow's topic
_END_TOPIC = end_topic("")  # ... and of its close's (``result()`` waits on that one)
_OBSERVED_MAX = 10_000  # workflows whose last seen state a store remembers for its watcher
_LOCAL_MAX = 2_000  # workflows whose last state written in this process is remembered: it
# matters only until their waiters have read it; one forgotten costs a needless wake-up

# What a waiter on a workflow's topic may be waiting for: a new run, status, or step.
_Seen = tuple[str, str, int] | None

T = TypeVar("T")

_LOCAL: weakref.WeakKeyDictionary[Hub, OrderedDict[str, _Seen]] = weakref.WeakKeyDictionary()


def local_writes(hub: Hub) -> OrderedDict[str, _Seen]:
    """The (run, status, journal length) that steps committed in this process last wrote,
    per workflow id, shared by the stores of the file whose `Hub` this is."""
    found = _LOCAL.get(hub)
    if found is None:
        found = _LOCAL[hub] = OrderedDict()
    return found


_LOOK = (
    "SELECT workflow_id, run_id, status, history_length FROM runs "
    "WHERE is_current = 1 AND workflow_id IN (SELECT value FROM json_each(?))"
)


def _poll(
    db: sqlite3.Connection, version: int | None, workflow_ids: list[str], force: bool
) -> tuple[int, dict[str, _Seen] | None]:
    """The data version and, if it moved from ``version`` (or with ``force``), the current
    (run, status, journal length) of each of ``workflow_ids``: the watcher's one hop."""
    current = _tx.data_version(db)
    if current == version and not force:
        return current, None
    found: dict[str, _Seen] = dict.fromkeys(workflow_ids)
    for i in range(0, len(workflow_ids), 500):
        rows = db.execute(_LOOK, (_json(workflow_ids[i : i + 500]),)).fetchall()
        for workflow_id, run_id, status, length in rows:
            found[workflow_id] = (run_id, status, length)
    return current, found


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

    _local: OrderedDict[str, _Seen]  # `local_writes` of this store's hub
    _bell: Doorbell | None  # its process's doorbell of the file, if it has one

    def _conn(self) -> aiosqlite.Connection:
        raise NotImplementedError  # SQLiteStore's

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SQLiteStore's

    async def wait(self, topics: Collection[str], timeout: float, since: int | None = None) -> None:
        """Wait on the hub; for work topics also return once another process has committed.

        Another process's commit is seen by ``PRAGMA data_version`` (checked after
        `POLL_FIRST`, then less often, up to every `POLL_INTERVAL`) differing from its value
        at the start of this store's last
        `claim_runs` / `claim_tasks` / `fire_timers` (the query feeding that topic), so a
        commit between that query and this wait is not missed either (it is seen at the
        first check: waiting does not begin with a query, so that a wake-up from this
        process, the common case, costs none). A workflow's topic
        is compared with what this store's last `get_run` of it saw (``result()`` and
        ``read()`` query it so), by the watcher task the module docstring describes.
        """
        workflows = [
            t[len(prefix) :]
            for t in topics
            for prefix in (_RUN_TOPIC, _END_TOPIC)
            if t.startswith(prefix)
        ]
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
        self._conn()  # closed, or the file replaced: say so now, not after a poll
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if since is None:
            since = self.hub.generation
        baselines = {self._seen.get(t) for t in work}
        if None in baselines:
            # No query has fed this topic yet: from now on, then (rare: the worker claims
            # before it waits). This one check before waiting is off the hot path.
            now = await self._call(_tx.data_version)
            baselines = {now if b is None else b for b in baselines}
        step = POLL_INTERVAL if self._rung() else POLL_FIRST
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            pause = min(step, remaining)
            step = min(step * 2, POLL_INTERVAL)
            started = loop.time()
            await self.hub.wait(topics, pause, since)
            if loop.time() - started < pause * 0.9:
                return  # notified in this process (a late one is caught on the next turn)
            current = await self._call(_tx.data_version)
            if any(b != current for b in baselines):
                return

    def _rung(self) -> bool:
        """Whether other processes' commits that concern this one's waits ring its doorbell:
        it has one, and so do they (`durable_sqlite.doorbell`). A ring wakes the hub's wait at
        once, so a wait on work need not look at ``data_version`` early: its check is then
        the net under a lost ring or a writer with no doorbell (another user's, another
        ``TMPDIR``'s), made every `POLL_INTERVAL`. Otherwise each commit of a neighbour that
        concerns no waiter here (a ``durable server``'s claim of a remote task, its lease
        renewals) would wake every wait on work in this process for a query each."""
        return self._bell is not None and self._bell.has_peers()

    def _observe(self, workflow_id: str, seen: _Seen) -> bool:
        """Remember what this store last saw of a workflow; a change announces itself to
        the waiters in this process, which may have read it before the change, unless a
        step of this process wrote it (its commit announced what they wait for). Returns
        whether it announced one."""
        old = self._observed.pop(workflow_id, "unseen")
        self._observed[workflow_id] = seen
        if len(self._observed) > _OBSERVED_MAX:
            # Forget the least recently seen that nobody waits on (a waiter's baseline stays).
            for oldest in self._observed:
                if oldest not in self._watched:
                    del self._observed[oldest]
                    break
        if not self._written_here(workflow_id, seen) and old != "unseen" and old != seen:
            # What changed is not said (the close, or only a step): both topics.
            self.hub.notify([run_topic(workflow_id), end_topic(workflow_id)])
            return True
        return False

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
                watched, force = list(self._watched), self._newly_watched
                self._newly_watched = False  # a wait during the hop sets it again
                version, found = await self._call(
                    lambda db: _poll(db, version, watched, force)  # noqa: B023 (awaited here)
                )
                if found is not None and self._take(found):
                    step = POLL_FIRST  # news: the next change is likely soon
        except StoreError:
            pass  # closed meanwhile: waiters time out and query for themselves
        except Exception:
            # Waiters fall back to their own polling; the next wait starts a new watcher.
            logger.exception("Watching %s for other processes' commits failed", self.path)
        finally:
            if self._watcher is asyncio.current_task():
                self._watcher = None

    def _wrote(self, written: Mapping[str, _Seen]) -> None:
        """Record in `local_writes` what this store's steps just committed (called on the
        database thread: each dict operation is atomic, and readers only ``get``)."""
        local = self._local
        for workflow_id, seen in written.items():
            local.pop(workflow_id, None)
            local[workflow_id] = seen
        while len(local) > _LOCAL_MAX:
            local.popitem(last=False)

    def _written_here(self, workflow_id: str, seen: _Seen) -> bool:
        """Whether ``seen`` is the state a step of this process left the workflow in, or an
        earlier one of the same run (read before this process's latest commit to it)."""
        local = self._local.get(workflow_id)
        if seen is None or local is None:
            return False
        return seen[0] == local[0] and seen[2] <= local[2]

    def _take(self, found: dict[str, _Seen]) -> bool:
        """Observe what the watcher found; whether any of it was news."""
        news = False
        observed = self._observed
        for workflow_id, seen in found.items():
            # Unchanged since last seen (most of them, most times): nothing to announce.
            # Its place in `_observed` stays: watched entries are never the ones forgotten.
            if observed.get(workflow_id, "unseen") != seen:
                news |= self._observe(workflow_id, seen)
        return news
