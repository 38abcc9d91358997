"""Running one activity attempt: arguments in, a result or a classified failure out.

The executor knows nothing of the store. It decodes the arguments with the function's type
hints, runs the function (async directly, sync in a worker thread via anyio), enforces the
per-attempt timeout and the heartbeat timeout, and says whether a failure may be retried.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from . import frozen, journal, payload, steplogs, tracing
from .context import ActivityContext, _activity
from .definition import ActivityDefinition, RetryPolicy
from .errors import RemoteError
from .retry import AttemptResult, retryable  # AttemptResult lives with its judge
from .telemetry import FIGURES

__all__ = ["Attempt", "AttemptResult", "run_attempt"]

logger = logging.getLogger(__name__)

WATCHDOG_INTERVAL = 0.25  # seconds between heartbeat-timeout and cancellation checks


@dataclass(frozen=True)
class Attempt:
    """One attempt to run: the task's identity, its spec (the scheduled command) and context."""

    task_id: str
    definition: ActivityDefinition
    spec: dict[str, Any]  # the activity_scheduled command's data
    attempt: int
    context: ActivityContext


async def run_attempt(attempt: Attempt, seq: int | None = None) -> AttemptResult:
    """Run ``attempt`` to its end; never raises except for the caller's own cancellation.
    Its outcome and times go to `durable.telemetry.FIGURES`. ``seq``: its step's seq when
    the caller knows it (else read from the task id)."""
    began = time.perf_counter()
    ctx = attempt.context
    info = ctx.info
    name = attempt.definition.name
    if seq is None:
        seq = journal.parse_task_id(attempt.task_id)[1]
    with steplogs.attempt(info.run_id, seq, attempt.attempt) as captured:
        if tracing.enabled():
            with tracing.activity_span(name, info, attempt.attempt, ctx.trace) as span:
                result = await _run_attempt(attempt)
                if result.error is not None:
                    tracing.fail(span, f"{result.error.type}: {result.error.message}")
        else:  # no span to open or mark: not even a no-op context manager per attempt
            result = await _run_attempt(attempt)
    ctx.logs = captured.rows()
    outcome = "completed" if result.error is None else "cancelled" if result.cancelled else "failed"
    waited = None
    if attempt.attempt == 1 and ctx.started_at is not None:
        waited = ctx.started_at - info.scheduled_at.timestamp()
    FIGURES.attempt(
        name,
        info.queue,
        outcome,
        time.perf_counter() - began,
        waited,
    )
    return result


async def _run_attempt(attempt: Attempt) -> AttemptResult:
    defn = attempt.definition
    spec = attempt.spec
    timeout: float | None = spec.get("timeout")
    heartbeat_timeout: float | None = spec.get("heartbeat_timeout")
    ctx = attempt.context
    ctx.last_heartbeat = time.monotonic()
    try:
        args, kwargs = payload.decode_args(defn.fn, spec["args"])
    except Exception as exc:
        return AttemptResult(error=payload.error_record(exc), retryable=False)

    token = _activity.set(ctx)
    try:
        if defn.is_async:
            coro = defn.fn(*args, **kwargs)
            if timeout is not None or heartbeat_timeout is not None:
                coro = _contained(coro)  # its own task: contained there (awaited here, below)
        else:
            call = functools.partial(
                contextvars.copy_context().run, _contained_sync, defn.fn, *args, **kwargs
            )
            coro = anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        if timeout is None and heartbeat_timeout is None:
            # Nothing to watch: run it in this task, without a task and a watchdog per
            # attempt (a no-op activity then costs no event-loop iteration at all).
            try:
                value = await coro
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the caller's own cancellation
                return _cancelled(defn)
            except Exception as failure:
                return _failed(failure, spec)
            except GeneratorExit:
                raise  # the closing of this coroutine is asyncio's own
            except BaseException as exited:  # SystemExit, KeyboardInterrupt... (`_Exited`)
                return _failed(_Exited(exited), spec)
            return _succeeded(value, defn)
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
    finally:
        _activity.reset(token)

    started = time.monotonic()
    reason: str | None = None
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=WATCHDOG_INTERVAL)
            if task.done():
                break
            now = time.monotonic()
            if timeout is not None and now - started > timeout:
                reason = f"timed out after {timeout}s (the activity's per-attempt timeout)"
            elif heartbeat_timeout is not None and now - ctx.last_heartbeat > heartbeat_timeout:
                reason = (
                    f"sent no heartbeat for {heartbeat_timeout}s (its heartbeat_timeout); "
                    "call durable.heartbeat() more often or raise the timeout"
                )
            if reason is not None:
                task.cancel()
                await asyncio.wait({task})
                break
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task})
        raise

    if reason is not None:
        error = RemoteError(
            "TimeoutError",
            f"Activity {defn.name!r} attempt {attempt.attempt} {reason}",
        )
        return AttemptResult(error=error, retryable=True)
    if task.cancelled():
        return _cancelled(defn)
    raised = task.exception()
    if raised is not None:
        return _failed(raised, spec)
    return _succeeded(task.result(), defn)


class _Exited(Exception):
    """A `BaseException` that is not an `Exception` (`SystemExit`, `KeyboardInterrupt`, a
    user's own subclass) raised by activity code, carried as an ordinary exception: left
    alone, it would end the worker's task group (asyncio even re-raises the first two out
    of the event loop), and every worker that picks the task up again would stop too."""

    def __init__(self, raised: BaseException) -> None:
        super().__init__(repr(raised))
        self.raised = raised


async def _contained(coro: Any) -> Any:
    try:
        return await coro
    except (asyncio.CancelledError, GeneratorExit):
        raise  # cancellation, and the closing of the coroutine, are asyncio's own
    except Exception:
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, a user's own subclass
        raise _Exited(exc) from exc


def _contained_sync(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception:
        raise
    except BaseException as exc:
        raise _Exited(exc) from exc


def _cancelled(defn: ActivityDefinition) -> AttemptResult:
    error = RemoteError("CancelledError", f"Activity {defn.name!r} was cancelled")
    return AttemptResult(error=error, cancelled=True)


def _failed(failure: BaseException, spec: dict[str, Any]) -> AttemptResult:
    if isinstance(failure, asyncio.CancelledError):
        return AttemptResult(error=payload.error_record(failure), cancelled=True)
    if isinstance(failure, _Exited):
        failure = failure.raised
    policy = RetryPolicy.from_dict(spec["retry"])
    return AttemptResult(error=payload.error_record(failure), retryable=retryable(failure, policy))


def _succeeded(value: Any, defn: ActivityDefinition) -> AttemptResult:
    try:
        encoded = payload.encode(value, what=f"result of activity {defn.name!r}")
    except Exception as exc:
        return AttemptResult(error=payload.error_record(exc), retryable=False)
    fields = {"result": encoded, "error": None, "retryable": False, "cancelled": False}
    return frozen.build(AttemptResult, fields)  # one per attempt: no `__setattr__` a field
