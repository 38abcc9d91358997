"""`WorkflowHandle`: one workflow, by id, as a client sees it: wait for its result,
signal, update, query, cancel, terminate, retry, describe and read it. Made by
`durable.client.Client` (``start``, ``get_handle``); `WorkflowDescription` and `Event` are
what it describes a run and its journal with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import children, journal, payload, repair, steplogs, steps
from .asking import QueryMethods
from .errors import RemoteError, WorkflowCancelled, WorkflowFailed, WorkflowNotFound
from .store import CLOSED_STATUSES, RunRecord, run_topic
from .topics import end_topic
from .updates import send_update

if TYPE_CHECKING:
    from .client import Client

__all__ = ["RESULT_POLL", "Event", "WorkflowDescription", "WorkflowHandle"]

T = TypeVar("T")

#: Seconds between re-reads of a run while ``result()`` / ``read()`` wait and nothing is
#: notified: only a safety net. What wakes them is `Store.wait`, which sees this process's
#: commits at once and other processes' through the backend (SQLite's watcher, PostgreSQL's
#: LISTEN, with their own polls while those cannot tell). At 0.5 s, 500 waiters re-read
#: their runs ~1,000 times a second for nothing: a sixth of W2's CPU (benchmarks/README.md).
RESULT_POLL = 5.0


@dataclass(frozen=True)
class WorkflowDescription:
    """What `WorkflowHandle.describe` and `Client.list` return."""

    id: str
    run_id: str
    name: str
    status: str
    queue: str
    input: Any
    result: Any
    error: RemoteError | None
    created_at: datetime
    closed_at: datetime | None
    history_length: int
    pending: list[steps.PendingStep]
    problem: str | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """One journal entry, decoded: ``seq`` from 1, ``kind``, ``time``, ``data``."""

    seq: int
    kind: str
    time: datetime
    data: dict[str, Any]


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _error(data: bytes | None) -> RemoteError | None:
    """A run's stored error; one that cannot be read says so rather than hiding the rest."""
    if data is None:
        return None
    try:
        return RemoteError.from_dict(payload.decode(data))
    except Exception as exc:
        return RemoteError("DamagedEntry", f"the run's error cannot be read: {exc}")


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class WorkflowHandle(QueryMethods, Generic[T]):
    """A workflow, by id: wait for it, signal it, query it, cancel it, inspect it.

    ``handle.result()`` follows continue-as-new to the run that finally ends.
    ``created`` says whether `Client.start` created the run (``False``: it handed back an
    existing one); it is ``None`` on handles from `Client.get_handle`.
    """

    def __init__(
        self,
        client: Client,
        workflow_id: str,
        *,
        run_id: str | None = None,
        fn: Callable[..., Any] | None = None,
        created: bool | None = None,
    ) -> None:
        self.client = client
        self.id = workflow_id
        self.run_id = run_id
        self.created = created
        self._fn = fn

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.id!r}>"

    async def _current(self) -> RunRecord:
        store = await self.client._open()
        run = await store.get_run(self.id)
        if run is None:
            raise WorkflowNotFound(f"No workflow with id {self.id!r} in {store.url}.")
        return run

    async def result(self, timeout: float | timedelta | None = None) -> T:
        """Wait for the workflow to end and return its result.

        Raises `WorkflowFailed` (``.cause`` says why) or `WorkflowCancelled`, and
        `TimeoutError` if ``timeout`` passes first (the workflow goes on).
        """
        limit = _seconds(timeout)
        store = await self.client._open()
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while True:
            mark = store.watermark()
            run = await self._current()
            if run.status in CLOSED_STATUSES and run.status != "continued_as_new":
                return self._outcome(run)
            if run.status == "continued_as_new":
                continue  # the successor is current now; look again at once
            remaining = RESULT_POLL if deadline is None else deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"Workflow {self.id!r} is still {run.status} after {limit}s; it goes on. "
                    "Call result() again to keep waiting."
                )
            if self.client._waiter is not None:
                await self.client._waiter(self)  # time skipping (durable.testing)
            else:
                # Only a close is news here (a start, a problem or a published value is not).
                await store.wait([end_topic(self.id)], min(remaining, RESULT_POLL), since=mark)

    def _outcome(self, run: RunRecord) -> T:
        if run.status == "completed":
            assert run.result is not None
            if self._fn is not None:
                return payload.decode_result(self._fn, run.result)  # type: ignore[no-any-return]
            return payload.decode(run.result)  # type: ignore[no-any-return]
        error = _error(run.error)
        if run.status == "failed":
            cause = error or RemoteError("Exception", "unknown failure")
            raise WorkflowFailed(
                f"Workflow {run.name!r} ({self.id}) failed: {cause}", cause, self.id
            )
        reason = error.message if error else ""
        raise WorkflowCancelled(
            f"Workflow {run.name!r} ({self.id}) was {run.status}"
            + (f": {reason}" if reason else ""),
            self.id,
            reason,
        )

    async def signal(self, name: str, value: Any = None) -> None:
        """Send a signal: the workflow's next ``wait_signal(name)`` receives ``value``.

        Raises `WorkflowNotFound` if there is no such workflow or it has closed, `TypeError`
        if ``name`` is not a non-empty ``str`` (the name ``wait_signal`` waits for), and
        `SerializationError` if ``value`` cannot be encoded or could not be decoded back by
        the worker: nothing is sent then (the worker can only log a signal it cannot read,
        so the value is decoded once here, though `encode` already promises it decodes).
        """
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"A signal name must be a non-empty str, got {name!r}; the workflow waits "
                "for it with durable.wait_signal(name), which takes a str too."
            )
        what = f"signal {name!r}"
        encoded = payload.encode(value, what=what)
        payload.decode(encoded, what=f"{what} (checked before sending it)")
        store = await self.client._open()
        data = payload.envelope({"name": name, "value": encoded})
        went = await store.send(self.id, "signal_received", data, self.client.clock.now())
        if went is None:
            raise WorkflowNotFound(
                f"Workflow {self.id!r} has closed; signal {name!r} was not delivered."
            )

    async def update(self, name: str, *args: Any, update_id: str | None = None) -> Any:
        """Send update ``name`` (``durable.on_update``) and return its handler's result.

        Raises `UpdateRejected` (no such handler, its validator raised, or the run is closed:
        nothing was journaled), `UpdateFailed` (the handler raised, or the run closed first).
        ``update_id`` (default: a new uuid) makes it idempotent: sent again with the same id,
        e.g. after a lost connection, it returns the same outcome and the handler runs once.
        """
        return await send_update(self, name, args, update_id)

    async def cancel(self, reason: str = "") -> None:
        """Request cancellation: `asyncio.CancelledError` is raised in the workflow at its
        current await point; it may clean up (compensate) before it ends. No-op if closed."""
        store = await self.client._open()
        item = journal.CancelRequested(reason or "cancelled by client")
        await store.send(self.id, item.KIND, journal.encode(item), self.client.clock.now())

    async def terminate(self, reason: str = "") -> None:
        """Close the workflow now, without running any more of its code.

        The run is ``terminated`` when this returns, and the lease of any worker on it is
        revoked, so that worker's next write is rejected. Its children still running get
        their parent-close policies (`durable.children`): cancelled (the default),
        terminated, or left running. No-op if already closed (except that a terminated
        run's children get their policies again, which finishes the job if a process died
        half-way).
        """
        store = await self.client._open()
        run = await self._current()
        if run.status in CLOSED_STATUSES and run.status != "terminated":
            return
        reason = reason or "terminated by client"
        await children.terminate_run(store, run, reason, self.client.clock.now())

    async def retry(self, reason: str = "") -> None:
        """Re-open a failed, terminated or parked run where it stopped: its failed step runs
        again, completed steps do not (`durable.repair`). Raises `RepairError` saying what
        to do for a run in another state, `WorkflowNotFound`."""
        store = await self.client._open()
        await repair.retry(store, self.id, self.client.clock.now(), reason=reason)

    async def describe(self) -> WorkflowDescription:
        """Status, times, input, result or error, pending steps, and any problem."""
        run = await self._current()
        return await self.client._describe(run, detailed=True)

    async def history(self) -> list[Event]:
        """The current run's journal, decoded, in order. An entry that cannot be read
        (damaged, or of a kind this version does not know) has ``{"damaged": why}`` as its
        data; the others are shown as usual."""
        store = await self.client._open()
        run = await self._current()
        entries = await store.read_journal(run.run_id)
        return [Event(e.seq, e.kind, _dt(e.time), steps.readable(e.kind, e.data)) for e in entries]

    async def steps(self) -> list[steps.Step]:
        """The current run as people see it: one `Step` per durable operation (activity
        with its attempts, child workflow, timer, signal wait, published value, marker), in
        journal order, with its branch and group, status, times, input, output and error.
        See `durable.steps`."""
        store = await self.client._open()
        run = await self._current()
        rows = await store.read_journal_rows(run.run_id)
        extras = await store.read_extras(run.workflow_id, run.run_id)
        return steps.build_rows(run, rows, extras.tasks, extras.timers)

    async def logs(
        self, *, seq: int | None = None, after: int = 0, limit: int = 1000
    ) -> list[steplogs.Log]:
        """What the current run's activities and workflow code logged (`durable.steplogs`),
        in order: of the step at ``seq`` only when given; after the record whose ``id`` is
        ``after`` (to read on); at most ``limit``."""
        store = await self.client._open()
        run = await self._current()
        rows = await store.read_logs(run.run_id, seq=seq, after_id=after, limit=limit)
        return steplogs.logs_of(rows)

    async def read(self, key: str, timeout: float | timedelta | None = None) -> Any:
        """The latest value the workflow published under ``key``.

        Waits for the first one if none yet (up to ``timeout``; `TimeoutError` after). Raises
        `KeyError` if the workflow closed without publishing it.
        """
        store = await self.client._open()
        limit = _seconds(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if limit is None else loop.time() + limit
        while True:
            mark = store.watermark()
            run = await self._current()
            published = (await store.read_extras(self.id, run.run_id)).published
            if key in published:
                return payload.decode(published[key])
            if run.status in CLOSED_STATUSES and run.status != "continued_as_new":
                raise KeyError(f"Workflow {self.id!r} closed without publishing {key!r}")
            remaining = RESULT_POLL if deadline is None else deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"Workflow {self.id!r} published no {key!r} within {limit}s")
            await store.wait([run_topic(self.id)], min(remaining, RESULT_POLL), since=mark)
