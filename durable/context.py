"""What user code calls from inside a workflow or an activity.

Workflow helpers (`sleep`, `wait_signal`, `external`, `map`, `publish`, `now`, `random`, `uuid4`,
`patched`, `deprecate_patch`, `continue_as_new`, `info`, `logger`) are deterministic: they
go through the current `WorkflowRun`, so replay sees exactly what the live run saw. Activity
helpers (`heartbeat`, `activity_info`) reach the attempt running in this context.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random as _random
import uuid
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NoReturn, TypeVar, overload

from . import mapping, payload
from .engine import WorkflowInfo, WorkflowRun, current_run
from .errors import DurableError, NotInWorkflowError
from .queries import QUERY_SAFE
from .waits import External

__all__ = [
    "ActivityInfo",
    "activity_info",
    "continue_as_new",
    "deprecate_patch",
    "external",
    "heartbeat",
    "info",
    "logger",
    "map",
    "now",
    "patched",
    "publish",
    "random",
    "sleep",
    "sleep_until",
    "uuid4",
    "wait_signal",
]

T = TypeVar("T")
R = TypeVar("R")


def _run(what: str) -> WorkflowRun:
    run = current_run()
    if run is None:
        raise NotInWorkflowError(
            f"durable.{what}() only works inside a workflow (code run by a worker from a "
            "@workflow function)."
        )
    if run.answering is not None and what not in QUERY_SAFE:
        raise run.refuse_in_query(f"durable.{what}()")
    return run


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def sleep(duration: float | timedelta) -> None:
    """Sleep durably: seconds or a timedelta, any length (minutes, months).

    The worker holds no memory for a sleeping workflow; it is rebuilt by replay when the
    timer fires. ``asyncio.sleep`` inside a workflow does the same.
    """
    _run("sleep")
    seconds = _seconds(duration)
    if seconds <= 0:
        return
    await asyncio.sleep(seconds)


async def sleep_until(when: datetime) -> None:
    """Sleep durably until ``when`` (an aware datetime; naive means UTC)."""
    run = _run("sleep_until")
    target = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    delay = target - run._now
    if delay > 0:
        await asyncio.sleep(delay)


async def wait_signal(name: str, timeout: float | timedelta | None = None) -> Any:
    """The next signal called ``name`` sent to this workflow (a FIFO mailbox per name).

    Signals that arrive before anyone waits are kept, in order. Raises `TimeoutError`
    after ``timeout`` (a durable timer) if none arrives.

        approved = await durable.wait_signal("approved", timeout=timedelta(days=3))

    Raises:
        TypeError: ``name`` is not a non-empty ``str`` (signals are sent by that name).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"durable.wait_signal() needs a non-empty str name, got {name!r}: signals are "
            "sent by name (handle.signal(name, value)), and only a str names one."
        )
    run = _run("wait_signal")
    return await run.wait_signal(name, None if timeout is None else _seconds(timeout))


def external(name: str, result_type: Any = None) -> External[Any]:
    """Start an external wait: a step completed from outside, by token.

        ext = durable.external("payment-callback", result_type=Receipt)
        await send_payment_link(order_id, ext.token)    # hand the token out in an activity
        receipt = await ext.wait(timeout=timedelta(days=2))

    ``ext.token`` is deterministic (the same on replay) and durable (valid while the run is
    open). Anyone holding it completes the wait once: ``client.complete(token, value)`` or
    ``client.fail(token, error)`` (or the HTTP task endpoints). ``ext.wait()`` returns the
    value (rebuilt as ``result_type`` when given), raises `ExternalError` if it was failed,
    and `TimeoutError` after ``timeout`` (the wait goes on; waiting again still gets it).
    It shows in ``handle.steps()`` as a step of kind ``external``, ``waiting`` until done.

    Raises:
        TypeError: ``name`` is not a non-empty ``str``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"durable.external() needs a non-empty str name, got {name!r}")
    return _run("external").external(name, result_type)


@overload
async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    max_concurrency: int | None = None,
    tolerated_failures: Literal[0] = 0,
    batch_size: None = None,
) -> list[R]: ...
@overload
async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    max_concurrency: int | None = None,
    tolerated_failures: int | float = 0,
    batch_size: int | None = None,
) -> list[R | DurableError]: ...


async def map(
    fn: Callable[[T], Awaitable[R]],
    items: Iterable[T],
    max_concurrency: int | None = None,
    tolerated_failures: int | float = 0,
    batch_size: int | None = None,
) -> list[Any]:
    """Run an activity or child workflow once per item; results in item order.

        sizes = await durable.map(measure, chromosomes, max_concurrency=8)
        scores = await durable.map(score, rows, tolerated_failures=0.01, batch_size=1000)

    At most ``max_concurrency`` are in flight at once (``None``: all). By default the first
    failure raises (as ``asyncio.gather`` does); the others keep their journaled results.

    ``tolerated_failures`` (a count, or a fraction of the items in (0, 1)): a failed item
    comes back as its `ActivityError` (`ChildWorkflowError` for a child workflow) in the
    list, until more than that many have failed; then the rest are cancelled and
    `durable.MapFailed` is raised. ``batch_size``: the items run in child workflows of
    that many items each, so no journal holds them all (see `durable.mapping`).

    Raises:
        ValueError: ``max_concurrency`` or ``batch_size`` below 1, a negative
            ``tolerated_failures`` or a fraction not in (0, 1).
        MapFailed: more items failed than tolerated (with a tolerance or batches).
    """
    _run("map")
    if max_concurrency is not None and max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1 or None, got {max_concurrency}")
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(
            f"batch_size must be an int >= 1 (items per child workflow) or None, got {batch_size!r}"
        )
    listed = list(items)
    mapping.tolerance(tolerated_failures, len(listed))  # refuses what is not a tolerance
    # A tolerance given (even one that rounds down to 0 items) means MapFailed past it.
    if batch_size is not None or tolerated_failures:
        return await mapping.map_items(fn, listed, max_concurrency, tolerated_failures, batch_size)
    return list(await _gather_map(fn, listed, max_concurrency))


def publish(key: str, value: Any) -> None:
    """Set a named value clients read with ``handle.read(key)`` (progress, partial results)."""
    _run("publish").publish(key, value)


def now() -> datetime:
    """The workflow's current time: that of the event being applied (aware, UTC)."""
    return _run("now").now()


def random() -> _random.Random:
    """A `random.Random` seeded per run: the same numbers on replay."""
    return _run("random").random


def uuid4() -> uuid.UUID:
    """A random UUID that replays identically."""
    return uuid.UUID(int=_run("uuid4").random.getrandbits(128), version=4)


def patched(change_id: str) -> bool:
    """Code versioning: ``True`` for runs that reach this point with the new code.

        if durable.patched("send-sms"):
            await send_sms(order)      # new behaviour
        else:
            await send_email(order)    # what runs recorded before the change did

    Runs recorded before the change replay with ``False``; new runs (and old ones reaching
    this point for the first time) get ``True`` and a marker in their journal.
    """
    return _run("patched").patched(change_id)


def deprecate_patch(change_id: str) -> None:
    """Step two of retiring a patch: once no run takes the old path, keep only the new code
    and call this where ``patched(change_id)`` was, so runs that recorded the marker still
    replay. Remove it once those runs are closed."""
    _run("deprecate_patch").patched(change_id, deprecated=True)


def continue_as_new(*args: Any, **kwargs: Any) -> NoReturn:
    """End this run and start a fresh one of the same workflow and id, with an empty journal.

    Use it for long-lived loops, so no journal grows without bound. Signals not yet
    delivered to this run move to the new one; signals it already received that no
    `wait_signal` took are not carried over (take them first, as Temporal users drain
    theirs). ``handle.result()`` follows to the run that finally ends.
    """
    run = _run("continue_as_new")
    encoded = payload.encode_args(
        run.definition.fn,
        args,
        kwargs,
        what=f"continue_as_new arguments of {run.definition.name!r}",
    )
    run.continue_as_new(encoded)
    raise AssertionError("unreachable")  # pragma: no cover


def info() -> WorkflowInfo:
    """The current run's `WorkflowInfo` (id, run id, name, queue, replaying, ...)."""
    return _run("info").info()


class _ReplaySilentAdapter(logging.LoggerAdapter[logging.Logger]):
    """Adds workflow id and step to records, and drops them while replaying."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        run = current_run()
        if run is not None:
            extra = dict(kwargs.get("extra") or {})
            extra.setdefault("workflow_id", run.workflow_id)
            extra.setdefault("step", run.history_length)
            kwargs["extra"] = extra
            msg = f"[{run.workflow_id} #{run.history_length}] {msg}"
        return msg, kwargs

    def isEnabledFor(self, level: int) -> bool:
        run = current_run()
        if run is not None and run.is_replaying:
            return False
        return self.logger.isEnabledFor(level)


#: A logger for workflow code: adds the workflow id and step, silent while replaying.
logger = _ReplaySilentAdapter(logging.getLogger("durable.workflow"), {})


# -- activities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivityInfo:
    """What `durable.activity_info()` returns inside an activity."""

    workflow_id: str
    run_id: str
    name: str
    attempt: int
    heartbeat_details: Any
    queue: str
    task_id: str
    scheduled_at: datetime
    timeout: float | None
    heartbeat_timeout: float | None


@dataclass
class ActivityContext:
    """The worker's side of a running attempt: heartbeats in, cancellation out."""

    info: ActivityInfo
    details: bytes | None = None  # the last heartbeat's details, encoded when given
    last_heartbeat: float = 0.0
    cancelled: bool = False
    started: bool = False
    started_at: float | None = None  # when the attempt began running (the worker's clock)
    trace: str | None = None  # its run's traceparent, for its span (`durable.tracing`)
    logs: list[Any] = field(default_factory=list)  # records it logged (`durable.steplogs`)
    on_heartbeat: Callable[[], None] | None = field(default=None, repr=False)


_activity: contextvars.ContextVar[ActivityContext | None] = contextvars.ContextVar(
    "durable_activity", default=None
)


def heartbeat(details: Any = None) -> None:
    """Tell the worker this activity is alive, optionally saving progress ``details``.

    The details are saved with the task (at the worker's next lease renewal, and when the
    attempt fails) and handed to the next attempt in ``activity_info().heartbeat_details``,
    so a retry can resume where this one got to. This is also where cancellation is delivered:
    if the workflow no longer wants the result, it raises `asyncio.CancelledError`.
    Outside an activity it does nothing (so activities stay callable in plain tests).
    """
    ctx = _activity.get()
    if ctx is None:
        return
    import time

    ctx.last_heartbeat = time.monotonic()
    if details is not None:
        what = f"heartbeat details of activity {ctx.info.name!r}"
        ctx.details = payload.encode(details, what=what)
    if ctx.on_heartbeat is not None:
        ctx.on_heartbeat()
    if ctx.cancelled:
        raise asyncio.CancelledError(f"activity {ctx.info.name!r} was cancelled by its workflow")


def activity_info() -> ActivityInfo:
    """The running activity's `ActivityInfo`; raises `NotInWorkflowError` elsewhere."""
    ctx = _activity.get()
    if ctx is None:
        raise NotInWorkflowError("durable.activity_info() only works inside an activity.")
    return ctx.info


def _gather_map(
    fn: Callable[[Any], Awaitable[Any]], items: list[Any], max_concurrency: int | None
) -> Awaitable[list[Any]]:
    """`durable.map`'s body: one call per item, at most ``max_concurrency`` at once."""
    if not max_concurrency:
        return asyncio.gather(*(fn(item) for item in items))
    semaphore = asyncio.Semaphore(max_concurrency)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await fn(item)

    return asyncio.gather(*(one(item) for item in items))
