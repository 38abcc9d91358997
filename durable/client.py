"""Starting and steering workflows: `connect`, `Client`, `WorkflowHandle`.

    async with durable.connect("sqlite:///app.db") as client:
        handle = await client.start(place_order, order, id="order-42")
        print(await handle.result())

A client writes only to a workflow's inbox (signals, cancellation) or creates runs; the
worker holding a run's lease moves those into its journal. `terminate` is the one
exception: it closes the run itself and revokes any lease on it. A client also serves tasks
outside Python workers (`Client.poll_tasks`, `Client.heartbeat_task`, `Client.complete`,
`Client.fail`: remote activity attempts and external waits, see `durable.tasks`), through
the same fenced task operations a worker uses.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, Self, TypeVar, overload

from . import payload, repair, retention, signature, steps, tracing
from .clock import Clock, RealClock
from .definition import workflow_definition
from .errors import (
    StoreError,
)
from .handles import Event, WorkflowDescription, WorkflowHandle, _dt, _error
from .limits import LimitsAccess
from .schedules import ScheduleMethods
from .steps import PendingStep
from .store import CLOSED_STATUSES, STATUSES, RunRecord, Store, open_store
from .tasks import RemoteTask, TaskService

__all__ = [
    "DEFAULT_URL",
    "Client",
    "Event",
    "PendingStep",
    "WorkflowDescription",
    "WorkflowHandle",
    "check_tags",
    "connect",
]

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_URL = "sqlite:///durable.db"


class Client(ScheduleMethods, LimitsAccess):
    """A connection to one durable database, for starting and steering workflows, and
    their schedules (`schedule`, `get_schedule`, `list_schedules`: `durable.schedules`).

    Create it with `durable.connect`; use it as an async context manager (or call
    `aclose`). It opens on first use.
    """

    def __init__(self, url: str | None = None, *, clock: Clock | None = None) -> None:
        self.url = url or os.environ.get("DURABLE_DB") or DEFAULT_URL
        self.clock: Clock = clock or RealClock()
        self._store: Store | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._lock = asyncio.Lock()
        # Set by durable.testing to skip time while a test awaits a result.
        self._waiter: Callable[..., Awaitable[None]] | None = None
        self._tasks = TaskService(self)

    async def _open(self) -> Store:
        if self._state == "open" and self._store is not None:
            return self._store
        async with self._lock:
            if self._state == "closed":
                raise StoreError("Cannot use a client once it has been closed; connect again.")
            if self._store is None:
                store = open_store(self.url)
                await store.open()
                self._store = store
                self._state = "open"
            return self._store

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection. Idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._store is not None:
            await self._store.aclose()
            self._store = None

    @overload
    async def start(
        self,
        fn: Callable[P, Awaitable[T]],
        *args: Any,
        id: str | None = None,
        queue: str | None = None,
        if_exists: Literal["return", "error", "restart"] = "return",
        tags: Mapping[str, str] | None = None,
    ) -> WorkflowHandle[T]: ...
    @overload
    async def start(
        self,
        fn: str,
        *args: Any,
        id: str | None = None,
        queue: str | None = None,
        if_exists: Literal["return", "error", "restart"] = "return",
        tags: Mapping[str, str] | None = None,
    ) -> WorkflowHandle[Any]: ...

    async def start(
        self,
        fn: Callable[..., Awaitable[Any]] | str,
        *args: Any,
        id: str | None = None,
        queue: str | None = None,
        if_exists: Literal["return", "error", "restart"] = "return",
        tags: Mapping[str, str] | None = None,
    ) -> WorkflowHandle[Any]:
        """Start a workflow (a `@workflow` function, or its name) and return its handle.

        Idempotent on ``id``: with ``if_exists="return"`` (default) an existing workflow's
        handle comes back; ``"error"`` raises `WorkflowAlreadyExists`; ``"restart"`` starts
        a new run if the existing one has closed. Arguments are checked for
        serializability here, before anything is written; started by name, they are also
        checked against the workflow's signature as a live worker serves it (a wrong
        number of arguments, or a plainly annotated one of the wrong kind, raises
        `TypeError`).

        ``tags`` label the run for search (``client.list(tags={"customer": "acme"})``):
        string keys and values (see `check_tags`); a run that continues as new keeps them.
        """
        if if_exists not in ("return", "error", "restart"):
            raise ValueError(f"if_exists must be 'return', 'error' or 'restart', not {if_exists!r}")
        tags = check_tags(tags)
        plain: list[Any] | None = None
        if isinstance(fn, str):
            name, default_queue, timeout, func = fn, "default", None, None
            plain = [
                payload.decode(payload.encode(a, what=f"argument {i} of workflow {fn!r}"))
                for i, a in enumerate(args)
            ]
            encoded = payload.encode(
                {"args": plain, "kwargs": {}}, what=f"arguments of workflow {fn!r}"
            )
        else:
            defn = workflow_definition(fn)
            name, default_queue, timeout, func = defn.name, defn.queue, defn.timeout, defn.fn
            encoded = payload.encode_args(defn.fn, args, {}, what=f"arguments of workflow {name!r}")
        store = await self._open()
        if plain is not None:
            await signature.check_live(store, name, plain, "start")
        from .store import NewRun

        workflow_id = id or uuid.uuid4().hex
        with tracing.start_span(name, workflow_id) as trace:
            run, created = await store.create_run(
                NewRun(
                    workflow_id=workflow_id,
                    run_id=str(uuid.uuid4()),
                    name=name,
                    queue=queue or default_queue,
                    input=encoded,
                    created_at=self.clock.now(),
                    timeout=timeout,
                    tags=tags,
                    trace=trace,
                ),
                if_exists=if_exists,
            )
        return WorkflowHandle(self, workflow_id, run_id=run.run_id, fn=func, created=created)

    async def execute(
        self,
        fn: Callable[..., Awaitable[T]] | str,
        *args: Any,
        id: str | None = None,
        queue: str | None = None,
        timeout: float | timedelta | None = None,
        if_exists: Literal["return", "error", "restart"] = "return",
        tags: Mapping[str, str] | None = None,
    ) -> T:
        """Start a workflow and wait for its result (`start` + `WorkflowHandle.result`)."""
        handle: WorkflowHandle[T] = await self.start(
            fn, *args, id=id, queue=queue, if_exists=if_exists, tags=tags
        )
        return await handle.result(timeout=timeout)

    async def fork(self, id: str, *, at_seq: int, new_id: str | None = None) -> WorkflowHandle[Any]:
        """Start workflow ``new_id`` (default ``"{id}-fork-{8 hex}"``) from journal entries
        ``1..at_seq`` of ``id``: those steps are reused, the rest runs live (`durable.repair`).
        Raises `RepairError` for a seq it cannot cut at, `WorkflowNotFound`, and
        `WorkflowAlreadyExists`."""
        store = await self._open()
        return self.get_handle(await repair.fork(store, id, at_seq, new_id, self.clock.now()))

    def get_handle(
        self, workflow_id: str, fn: Callable[..., Any] | None = None
    ) -> WorkflowHandle[Any]:
        """A handle for an existing workflow (give ``fn`` to decode its result by type)."""
        return WorkflowHandle(self, workflow_id, fn=fn)

    async def _describe(self, run: RunRecord, *, detailed: bool) -> WorkflowDescription:
        store = await self._open()
        args: Any = None
        try:
            decoded = payload.decode(run.input)
            args = decoded.get("args") if isinstance(decoded, dict) else decoded
        except Exception:
            args = run.input
        result = None
        if run.result is not None:
            try:
                result = payload.decode(run.result)
            except Exception:
                result = run.result
        error = _error(run.error)
        pending: list[steps.PendingStep] = []
        problem = run.problem if run.parked else None
        if detailed and run.status not in CLOSED_STATUSES:
            rows = await store.read_journal_rows(run.run_id)
            extras = await store.read_extras(run.workflow_id, run.run_id)
            pending = steps.pending(steps.build_rows(run, rows, extras.tasks, extras.timers))
            if problem is None:
                workers = await store.list_workers()
                problem = steps.problem(run, workers, extras.tasks)
        return WorkflowDescription(
            id=run.workflow_id,
            run_id=run.run_id,
            name=run.name,
            status=run.status,
            queue=run.queue,
            input=args,
            result=result,
            error=error,
            created_at=_dt(run.created_at),
            closed_at=_dt(run.closed_at) if run.closed_at is not None else None,
            history_length=run.history_length,
            pending=pending,
            problem=problem,
            tags=dict(run.tags),
        )

    async def list(
        self,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        *,
        cursor: str | None = None,
        tags: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> AsyncIterator[WorkflowDescription]:
        """Workflow runs, newest first, optionally filtered by status, name, tags (a run
        matches when it has all the given tags) and creation time (``created_after``
        inclusive, ``created_before`` exclusive; naive datetimes are taken as UTC): at most
        ``limit`` of them, after ``cursor`` — the ``run_id`` of the last run of the
        previous page — when given:

            page = [wf async for wf in client.list(status="failed", limit=50)]
            more = [wf async for wf in client.list(status="failed", limit=50,
                                                   cursor=page[-1].run_id)]
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        tags = check_tags(tags)
        store = await self._open()
        runs = await store.list_runs(
            status=status,
            name=name,
            limit=limit,
            after=cursor,
            tags=tags,
            created_after=_timestamp(created_after),
            created_before=_timestamp(created_before),
        )
        for run in runs:
            yield await self._describe(run, detailed=False)

    async def prune(self, older_than: timedelta | float) -> int:
        """Delete the runs that closed more than ``older_than`` ago (a timedelta or
        seconds), with their journals and everything else of theirs; return how many.

            deleted = await client.prune(older_than=timedelta(days=30))

        Never an open run, nor the child of an open parent; in batches, each its own short
        transaction, so workers go on meanwhile (`durable.retention`). Raises `ValueError`
        for an age of zero or less, `TypeError` for one neither a timedelta nor seconds.
        """
        return await retention.prune(await self._open(), self.clock, older_than)

    # -- tasks served outside Python workers (durable.tasks) ----------------------------

    async def poll_tasks(
        self,
        queue: str,
        *,
        worker: str,
        names: Collection[str] | None = None,
        max_tasks: int = 1,
        wait: float | timedelta = 0,
    ) -> builtins.list[RemoteTask]:
        """Take up to ``max_tasks`` activity tasks of ``queue`` for remote worker ``worker``,
        waiting up to ``wait`` (seconds or a timedelta) for the first; ``[]`` if none came.

            for task in await client.poll_tasks("media-node", worker="node-1", wait=20):
                try:
                    await client.complete(task.token, resize(*task.args))
                except Exception as exc:
                    await client.fail(task.token, exc)

        ``names``: the activity names this worker implements (``None``: any on the queue).
        Each `RemoteTask` is one attempt, leased to ``worker`` for its ``heartbeat_timeout``
        (else `durable.tasks.REMOTE_LEASE` seconds) and never past its ``deadline``: call
        `heartbeat_task` within that, or the attempt counts as lost and is retried. A task
        found whose previous attempt's lease expired counts that attempt as lost first. The
        worker is listed in ``durable workers`` while it polls.

        Raises `ValueError`/`TypeError` for a bad queue, worker, names, max_tasks or wait.
        """
        return await self._tasks.poll(
            queue, worker=worker, names=names, max_tasks=max_tasks, wait=wait
        )

    async def heartbeat_task(self, token: str, details: Any = None) -> bool:
        """Renew the lease of the attempt ``token`` names (by its heartbeat timeout, or
        `durable.tasks.REMOTE_LEASE` seconds, never past its deadline) and save
        ``details`` for a later attempt (`RemoteTask.heartbeat_details`). Returns whether
        cancellation was requested: the workflow no longer wants the result, so stop and
        `fail` it (any error) or just drop it.

        Raises `StaleTask` (with ``.outcome``) when the attempt is over: declared lost,
        timed out, or ended; `TaskNotFound` for a token that names nothing.
        """
        return await self._tasks.heartbeat(token, details)

    async def complete(self, token: str, value: Any = None) -> None:
        """Complete an activity attempt (a `RemoteTask.token`) or an external wait
        (``durable.external(...).token``) with ``value``.

        Completing the same attempt again is a no-op. Raises `StaleTask` (``.outcome``:
        what is stored) when the attempt was declared lost or timed out, the step already
        ended otherwise, or the run closed; `TaskNotFound` for a token that names nothing
        (malformed, or from another database); `SerializationError` for a value that
        cannot be stored.
        """
        await self._tasks.complete(token, value)

    async def fail(self, token: str, error: Any, *, non_retryable: bool = False) -> None:
        """Fail an activity attempt or an external wait named by ``token``.

        ``error`` is an exception, a message str, or a mapping ``{"type", "message",
        "details"?}``. An activity attempt is retried per its `RetryPolicy` unless
        ``non_retryable`` (or its type is one of the policy's ``non_retryable``); an
        external wait's ``ext.wait()`` raises `durable.ExternalError`. Failing the same
        attempt again is a no-op. Raises as `complete` does, and `TypeError` for an error
        of another shape.
        """
        await self._tasks.fail(token, error, non_retryable)


def _timestamp(when: datetime | None) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


MAX_TAGS = 32  # tags per run: labels to find runs by, not a place for data
MAX_TAG_LENGTH = 256  # characters in a tag's key or value


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str] | None:
    """``tags`` as stored, or ``None`` for none.

    Raises:
        ValueError: not a mapping of non-empty ``str`` keys (without ``:``, which separates
            key and value in ``tag=key:value`` filters) to ``str`` values, more than
            `MAX_TAGS` of them, or one longer than `MAX_TAG_LENGTH` characters.
    """
    if tags is None:
        return None
    if not isinstance(tags, Mapping):
        raise ValueError(
            f'tags must be a mapping of str to str, like {{"customer": "acme"}}, not {tags!r:.80}'
        )
    if len(tags) > MAX_TAGS:
        raise ValueError(f"A run takes at most {MAX_TAGS} tags, not {len(tags)}")
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(
                f"Tag {key!r:.80}: {value!r:.80}: tags map str keys to str values "
                '(write numbers as strings: {"tier": "2"})'
            )
        if not key or ":" in key:
            raise ValueError(f"Tag key {key!r:.80} must be non-empty and without ':'")
        if len(key) > MAX_TAG_LENGTH or len(value) > MAX_TAG_LENGTH:
            raise ValueError(
                f"Tag {key[:40]!r} is too long: keys and values take at most "
                f"{MAX_TAG_LENGTH} characters"
            )
    return dict(tags) if tags else None


def connect(url: str | None = None, *, clock: Clock | None = None) -> Client:
    """A `Client` for ``url`` (default: ``$DURABLE_DB``, else ``sqlite:///durable.db``).

    async with durable.connect("postgresql://app@db/app") as client: ...
    """
    return Client(url, clock=clock)
