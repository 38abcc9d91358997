"""Tasks served outside Python workers: remote activity attempts and external waits.

A worker in another language (over the HTTP API, or any program holding a `Client`) polls
a queue for activity tasks (`Client.poll_tasks`), gets each attempt as a `RemoteTask` with
a token (`durable.tokens`), heartbeats it (`Client.heartbeat_task`: the answer says whether
cancellation was requested) and ends it with `Client.complete` or `Client.fail`. The same
two calls complete an external wait (`durable.external`) by its token.

Everything goes through the store's existing task operations, so remote attempts have the
same rows, leases, retries and timeouts as Python ones:

- a poll is `Store.claim_tasks` as the remote worker (``names=None``: any name on the
  queue), long-polling on the store's ``tasks`` wake-ups; a task found with an expired lease
  counts that attempt as lost first (`durable.retry.lost`), exactly as a Python worker does;
- an attempt's lease lasts its ``heartbeat_timeout`` (else `REMOTE_LEASE` seconds), never
  past its start-to-close deadline (``timeout`` after the poll); each heartbeat renews it so
  (`Store.heartbeat`). An attempt whose lease expires is counted lost by whoever finds it
  first: another poll of that queue, or the sweep every Python worker runs (see
  `durable.worker`), so timeouts hold even when no remote worker polls again;
- completing and failing are `Store.finish_task`, fenced by the owner and attempt the token
  names: a late or repeated call writes nothing. What it then finds stored is the answer: the
  same end of the same attempt again is a no-op (idempotent); anything else raises
  `StaleTask` with ``.outcome``, what is stored. A result or heartbeat after the attempt's
  deadline is refused, and the attempt counted as timed out.

Remote workers that poll are listed in ``workers`` (renewed at most every `WORKER_RENEW`
seconds; ``activities`` are the names they poll for, ``("*",)`` for any), so
``describe().problem`` and ``durable workers`` see their queues served. A remote worker id
must not be a Python worker's, and must not start with ``durable:``. `TaskService` is the
part of `durable.client.Client` that does this.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from . import journal, payload, retry
from .definition import RetryPolicy
from .errors import RemoteError, SerializationError, StaleTask, TaskNotFound
from .jsonform import to_json
from .retry import AttemptResult
from .steps import readable_value
from .store import (
    EXTERNAL_OWNER,
    Store,
    TaskOutcome,
    TaskRecord,
    WorkerRecord,
)
from .tokens import TaskToken
from .topics import tasks_topics

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "MAX_POLL_TASKS",
    "POLL_RECHECK",
    "REMOTE_LEASE",
    "WORKER_RENEW",
    "RemoteTask",
    "TaskService",
    "remote_error",
]

REMOTE_LEASE = 60.0  # seconds a remote attempt lives without a heartbeat, if no heartbeat_timeout
WORKER_RENEW = 10.0  # seconds between renewals of a polling remote worker's row in `workers`
POLL_RECHECK = 1.0  # seconds between re-queries of a long poll when no wake-up arrives
MAX_POLL_TASKS = 1000  # most tasks one poll hands out
RESERVED_PREFIX = "durable:"  # worker ids durable keeps for itself (`EXTERNAL_OWNER`)


@dataclass(frozen=True)
class RemoteTask:
    """An activity attempt handed to a remote worker by `Client.poll_tasks`.

    ``args`` are the call's positional arguments as decoded values (keyword arguments, which
    only Python callers pass, come as a last mapping); ``deadline`` is when the attempt's
    start-to-close timeout ends (`None`: none); ``heartbeat_timeout`` how often, in seconds,
    it must heartbeat (`None`: within `REMOTE_LEASE`, or it is presumed lost);
    ``heartbeat_details`` what the previous attempt saved with its last heartbeat.
    End it with ``client.complete(task.token, result)`` or ``client.fail(task.token, error)``.
    """

    token: str
    name: str
    args: list[Any]
    attempt: int
    workflow_id: str
    run_id: str
    queue: str
    deadline: datetime | None
    heartbeat_timeout: float | None
    heartbeat_details: Any


def remote_error(value: Any) -> RemoteError:
    """A `RemoteError` from what a caller of ``fail`` passes: an exception, a message
    string, or a mapping ``{"type", "message", "details"?}``. Raises `TypeError` otherwise."""
    if isinstance(value, RemoteError):
        return value
    if isinstance(value, BaseException):
        return payload.error_record(value)
    if isinstance(value, str):
        return RemoteError("Error", value)
    if isinstance(value, Mapping) and isinstance(value.get("message"), str):
        kind = value.get("type") or "Error"
        if not isinstance(kind, str):
            raise TypeError(f"An error's 'type' must be a str, got {kind!r}")
        details = value.get("details")
        if details is not None:
            payload.encode(details, what="the error's details")  # storable, or say so now
        return RemoteError(kind, value["message"], str(value.get("traceback") or ""), details)
    raise TypeError(
        "An error must be an exception, a message str, or a mapping with 'type' and "
        f"'message' (and optional 'details'), got {value!r}"
    )


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _lease(token: TaskToken, now: float) -> float:
    return min(now + token.lease_seconds, token.deadline if token.deadline else math.inf)


class TaskService:
    """Remote tasks and external completion for one `Client` (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        # Remote worker id -> (queues it polled, when its row was last written).
        self._workers: dict[str, tuple[frozenset[str], float]] = {}
        # (queue, names) -> (watermark, loop time) taken before the last claim of a poll of
        # that queue and names that took everything claimable (see `poll`).
        self._empty: dict[tuple[str, tuple[str, ...] | None], tuple[int, float]] = {}

    async def _store(self) -> Store:
        return await self.client._open()

    def _now(self) -> float:
        return self.client.clock.now()

    # -- polling ------------------------------------------------------------------------

    async def poll(
        self,
        queue: str,
        *,
        worker: str,
        names: Collection[str] | None,
        max_tasks: int,
        wait: float | timedelta,
    ) -> list[RemoteTask]:
        """See `durable.client.Client.poll_tasks`."""
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue must be a non-empty str, got {queue!r}")
        if not isinstance(worker, str) or not worker or worker.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"worker must be a non-empty str naming the polling worker (e.g. its host and "
                f"process), not starting with {RESERVED_PREFIX!r}; got {worker!r}"
            )
        if names is not None:
            if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
                raise TypeError(f"names must be a collection of activity names, got {names!r}")
            names = sorted(set(names))
            if not names:
                raise ValueError("names is empty: pass None to take tasks of any name")
        if not isinstance(max_tasks, int) or not 1 <= max_tasks <= MAX_POLL_TASKS:
            raise ValueError(f"max_tasks must be 1..{MAX_POLL_TASKS}, got {max_tasks!r}")
        limit = _seconds(wait)
        if limit < 0:
            raise ValueError(f"wait must not be negative, got {wait!r}")
        store = await self._store()
        await self._register(store, worker, queue, names)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        key = (queue, None if names is None else tuple(names))
        topics = tasks_topics([queue])
        while True:
            found_empty = self._empty.get(key)
            remaining = deadline - loop.time()
            if found_empty is not None and remaining > 0:
                # A claim for the same queue and names took all there was (fewer than it
                # could) and no task has been notified since: a poll that comes back at once
                # (a remote worker polling again after completing what it had) waits for a
                # change instead of asking again for nothing. What becomes claimable
                # unnotified (a lost attempt's expired lease) is found as without this, by a
                # claim at most `POLL_RECHECK` later; every poll claims at least once.
                since, at = found_empty
                recheck = at + POLL_RECHECK - loop.time()
                if recheck > 0 and not store.hub.notified_since(topics, since):
                    await store.wait(topics, min(remaining, recheck), since=since)
                    continue
            mark = store.watermark()
            started = loop.time()
            now = self._now()
            claimed = await store.claim_tasks(
                worker,
                queues=[queue],
                names=names,
                now=now,
                lease_until=now + REMOTE_LEASE,
                limit=max_tasks,
            )
            fresh = [t for t in claimed if t.status != "running" and not t.cancel_requested]
            for task in claimed:
                if task.status == "running":  # its remote worker vanished: that attempt is lost
                    outcome = retry.lost(task, now, worker)
                elif task.cancel_requested:  # given up before it started: run nothing
                    outcome = retry.cancelled(task)
                else:
                    continue
                await store.finish_task(task.task_id, worker, task.attempt, outcome, now)
            if len(fresh) == len(claimed) < max_tasks:
                # All there was: the next poll need not ask before a task is notified.
                self._empty[key] = (mark, started)
            else:  # more may be there (or a lost attempt's retry, visible at once)
                self._empty.pop(key, None)
            if fresh:
                return await self._hand_out(store, worker, fresh, now)
            if len(claimed) > len(fresh):
                continue  # a lost attempt's retry may be visible at once
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await store.wait(topics, min(remaining, POLL_RECHECK), since=mark)

    async def _hand_out(
        self, store: Store, worker: str, tasks: list[TaskRecord], now: float
    ) -> list[RemoteTask]:
        out: list[RemoteTask] = []
        leases: dict[float, dict[str, tuple[int, bytes | None]]] = {}
        for task in tasks:
            spec = payload.decode(task.data)
            timeout = spec.get("timeout")
            heartbeat_timeout = spec.get("heartbeat_timeout")
            token = TaskToken(
                "a",
                task.workflow_id,
                task.run_id,
                task.seq,
                task.attempt,
                worker,
                now,
                now + timeout if timeout else None,
                heartbeat_timeout or REMOTE_LEASE,
            )
            lease = _lease(token, now)
            if lease != now + REMOTE_LEASE:
                leases.setdefault(lease, {})[task.task_id] = (task.attempt, None)
            out.append(
                RemoteTask(
                    token=token.encode(),
                    name=task.name,
                    args=_arguments(spec.get("args")),
                    attempt=task.attempt,
                    workflow_id=task.workflow_id,
                    run_id=task.run_id,
                    queue=task.queue,
                    deadline=None
                    if token.deadline is None
                    else datetime.fromtimestamp(token.deadline, UTC),
                    heartbeat_timeout=heartbeat_timeout,
                    heartbeat_details=readable_value(task.heartbeat_details),
                )
            )
        for lease, group in leases.items():  # shorter than the claim's: set them now
            await store.heartbeat(worker, runs=(), tasks=group, now=now, lease_until=lease)
        return out

    async def _register(
        self, store: Store, worker: str, queue: str, names: Collection[str] | None
    ) -> None:
        """List the remote worker in ``workers`` (at most every `WORKER_RENEW` seconds)."""
        now = self._now()
        queues, written = self._workers.get(worker, (frozenset(), -math.inf))
        if queue in queues and now - written < WORKER_RENEW:
            return
        queues = queues | {queue}
        record = WorkerRecord(
            worker_id=worker,
            queues=tuple(sorted(queues)),
            workflows=(),
            activities=tuple(names) if names is not None else ("*",),
            host=f"remote via {socket.gethostname()}",
            pid=os.getpid(),
            started_at=now,
            heartbeat_at=now,
        )
        await store.register_worker(record, unpark=False)
        self._workers[worker] = (queues, now)

    # -- heartbeats ---------------------------------------------------------------------

    async def heartbeat(self, token: str, details: Any) -> bool:
        """See `durable.client.Client.heartbeat_task`."""
        tok = TaskToken.parse(token)
        store = await self._store()
        if tok.kind == "x":
            await self._still_waiting(store, tok)
            return False
        encoded = None if details is None else payload.encode(details, what="heartbeat details")
        now = self._now()
        if tok.deadline is not None and now >= tok.deadline:
            raise await self._timed_out(store, tok, now)
        lost, cancelled = await store.heartbeat(
            tok.owner,
            runs=(),
            tasks={tok.task_id: (tok.attempt, encoded)},
            now=now,
            lease_until=_lease(tok, now),
        )
        if tok.owner in lost:  # its row was dropped as silent: list it again
            self._workers.pop(tok.owner, None)
        if tok.task_id in lost:
            outcome, _ = await self._stored(store, tok)
            raise _stale(tok, outcome)
        return tok.task_id in cancelled

    # -- completion ---------------------------------------------------------------------

    async def complete(self, token: str, value: Any) -> None:
        """See `durable.client.Client.complete`."""
        tok = TaskToken.parse(token)
        encoded = payload.encode(value, what=f"the result for {tok.what}")
        store = await self._store()
        now = self._now()
        record: journal.Record
        if tok.kind == "x":
            record = journal.ExternalCompleted(tok.seq, encoded)
            owner = EXTERNAL_OWNER
        else:
            if tok.deadline is not None and now > tok.deadline:
                raise await self._timed_out(store, tok, now)
            owner = tok.owner
            record = journal.ActivityCompleted(
                tok.seq, encoded, tok.started_at, tok.owner, tok.attempt
            )
        outcome = TaskOutcome("done", record.KIND, journal.encode(record))
        if await store.finish_task(tok.task_id, owner, tok.attempt, outcome, now):
            return
        await self._settled(store, tok, "completed", encoded)

    async def fail(self, token: str, error: Any, non_retryable: bool) -> None:
        """See `durable.client.Client.fail`."""
        tok = TaskToken.parse(token)
        remote = remote_error(error)
        if non_retryable:
            remote = dataclasses.replace(remote, non_retryable=True)
        store = await self._store()
        now = self._now()
        if tok.kind == "x":
            record = journal.ExternalFailed(tok.seq, remote)
            outcome = TaskOutcome("done", record.KIND, journal.encode(record))
            if await store.finish_task(tok.task_id, EXTERNAL_OWNER, 1, outcome, now):
                return
            await self._settled(store, tok, "failed", remote)
            return
        task = await store.read_task(tok.task_id)
        if task is not None and task.lease_owner == tok.owner and task.attempt == tok.attempt:
            if tok.deadline is not None and now > tok.deadline:
                raise await self._timed_out(store, tok, now)
            spec = payload.decode(task.data)
            spec["_seq"] = tok.seq
            policy = RetryPolicy.from_dict(spec["retry"])
            # Not retried when the workflow gave up on it: nobody wants another attempt.
            retryable = not task.cancel_requested
            result = AttemptResult(
                error=remote,
                retryable=retryable and remote.type not in policy.non_retryable_names(),
            )
            outcome = retry.decide(
                spec, tok.attempt, task.created_at, result, None,
                now=now, worker_id=tok.owner, started_at=tok.started_at,
            )  # fmt: skip
            if await store.finish_task(tok.task_id, tok.owner, tok.attempt, outcome, now):
                return
        await self._settled(store, tok, "failed", remote)

    async def _timed_out(self, store: Store, tok: TaskToken, now: float) -> StaleTask:
        """Count attempt ``tok`` as timed out (its start-to-close deadline passed) and say
        what that left stored."""
        task = await store.read_task(tok.task_id)
        if task is not None and task.lease_owner == tok.owner and task.attempt == tok.attempt:
            spec = payload.decode(task.data)
            spec["_seq"] = tok.seq
            error = RemoteError(
                "TimeoutError",
                f"Activity {task.name!r} attempt {tok.attempt} exceeded its timeout of "
                f"{spec.get('timeout'):g} s (start-to-close) without a result",
            )
            outcome = retry.decide(
                spec, tok.attempt, task.created_at, AttemptResult(error=error, retryable=True),
                None, now=now, worker_id=tok.owner, started_at=tok.started_at,
            )  # fmt: skip
            await store.finish_task(tok.task_id, tok.owner, tok.attempt, outcome, now)
        stored, _ = await self._stored(store, tok)
        return _stale(tok, stored, "its start-to-close timeout has passed")

    # -- what is stored -----------------------------------------------------------------

    async def _settled(
        self,
        store: Store,
        tok: TaskToken,
        how: Literal["completed", "failed"],
        value: bytes | RemoteError,
    ) -> None:
        """After a fenced end was refused: return quietly if what is stored is this very
        end (a repeated call), else raise `StaleTask` with it."""
        outcome, ends = await self._stored(store, tok)
        mine = ends.get(tok.attempt)
        if mine is not None and mine[0] in (how, "retrying" if how == "failed" else how):
            record = mine[1]
            if tok.kind == "x":
                if isinstance(value, bytes) and getattr(record, "result", None) == value:
                    return
                error = getattr(record, "error", None)
                if isinstance(value, RemoteError) and error is not None:
                    if (error.type, error.message) == (value.type, value.message):
                        return
            elif getattr(record, "worker", None) == tok.owner:
                return  # recorded by this very attempt (a lost one's record names no worker)
        raise _stale(tok, outcome)

    async def _still_waiting(self, store: Store, tok: TaskToken) -> None:
        task = await store.read_task(tok.task_id)
        if task is None or task.lease_owner != EXTERNAL_OWNER:
            outcome, _ = await self._stored(store, tok)
            raise _stale(tok, outcome)

    async def _stored(
        self, store: Store, tok: TaskToken
    ) -> tuple[dict[str, Any], dict[int, tuple[str, journal.Record]]]:
        """What is stored for the step ``tok`` names: its outcome as `StaleTask.outcome`
        says it, and how each of its attempts ended (attempt -> (how, record))."""
        run = await store.get_run(tok.workflow_id, tok.run_id)
        if run is None:
            raise TaskNotFound(
                f"The task token names run {tok.run_id!r} of workflow {tok.workflow_id!r}, "
                f"which does not exist in {store.url}: was it issued by another database?"
            )
        ends: dict[int, tuple[str, journal.Record]] = {}
        final: dict[str, Any] | None = None
        retried = 0
        # The inbox first: an end moves from the inbox into the journal (a worker's step),
        # never back, so reading the journal second cannot miss one that moved between the
        # two reads (read the other way round, a repeated completion was refused as stale).
        inbox = [(i.kind, i.data) for i in await store.read_inbox(run.run_id)]
        entries = [(e.kind, e.data) for e in await store.read_journal(run.run_id, tok.seq)]
        entries += inbox
        for kind, data in entries:
            rec = journal.decode(kind, data)
            if getattr(rec, "ref", None) != tok.seq:
                continue
            if isinstance(rec, journal.ActivityRetrying):
                retried = max(retried, rec.attempt)
                ends[rec.attempt] = ("retrying", rec)
            elif isinstance(rec, journal.ActivityCompleted):
                number = rec.attempt or retried + 1
                ends[number] = ("completed", rec)
                final = {"status": "completed", "attempt": number, "result": _value(rec.result)}
            elif isinstance(rec, journal.ActivityFailed):
                ends[rec.attempts] = ("failed", rec)
                final = {"status": "failed", "attempt": rec.attempts, "error": _error(rec.error)}
            elif isinstance(rec, journal.ExternalCompleted):
                ends[1] = ("completed", rec)
                final = {"status": "completed", "result": _value(rec.result)}
            elif isinstance(rec, journal.ExternalFailed):
                ends[1] = ("failed", rec)
                final = {"status": "failed", "error": _error(rec.error)}
        if final is not None:
            return final, ends
        task = await store.read_task(tok.task_id)
        if task is not None and task.lease_owner == EXTERNAL_OWNER:
            return {"status": "waiting"}, ends
        if task is not None:
            if task.status == "running":
                return {"status": "running", "attempt": task.attempt}, ends
            status = "retrying" if task.attempt > 1 else "scheduled"
            outcome: dict[str, Any] = {"status": status, "attempt": task.attempt}
            if task.last_error is not None:
                last = readable_value(task.last_error)
                if isinstance(last, dict):
                    outcome["error"] = _error(RemoteError.from_dict(last))
            return outcome, ends
        if run.closed_at is not None:
            return {"status": "closed", "run_status": run.status}, ends
        return {"status": "cancelled"}, ends


def _json(value: Any, what: str) -> Any:
    """``value`` in its JSON form (`durable.jsonform`), so that `StaleTask.outcome` can be
    sent as it is; a value with none is shown by its ``repr``."""
    try:
        return to_json(value, what=what)
    except SerializationError:
        return repr(value)


def _value(data: bytes | None) -> Any:
    return _json(readable_value(data), "result") if data is not None else None


def _error(error: RemoteError) -> dict[str, Any]:
    details = _json(error.details, "details")
    return {"type": error.type, "message": error.message, "details": details}


def _arguments(data: Any) -> list[Any]:
    decoded = readable_value(data) if isinstance(data, bytes) else data
    if isinstance(decoded, dict) and isinstance(decoded.get("args"), list):
        kwargs = decoded.get("kwargs") or {}
        return [*decoded["args"], kwargs] if kwargs else list(decoded["args"])
    return [decoded]


def _stale(tok: TaskToken, outcome: dict[str, Any], why: str = "") -> StaleTask:
    status = outcome.get("status")
    said = {
        "completed": "the step already completed",
        "failed": "the step already failed",
        "retrying": f"that attempt ended; attempt {outcome.get('attempt')} waits to run",
        "scheduled": "that attempt ended; the next waits to run",
        "running": f"attempt {outcome.get('attempt')} holds the task now",
        "closed": f"the run closed ({outcome.get('run_status')}) first",
        "cancelled": "the workflow no longer waits for it",
        "waiting": "the wait is still open",
    }.get(str(status), str(status))
    reason = f"{why}; " if why else ""
    return StaleTask(
        f"The token for {tok.what} is stale: {reason}{said}. Nothing was written; the "
        "stored outcome is in .outcome. Stop working on it (a worker should take its next "
        "task).",
        outcome,
    )
