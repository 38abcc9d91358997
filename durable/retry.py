"""Retry decisions, in one place: is a failed activity attempt tried again, and when?

The policy (`durable.RetryPolicy`, a frozen option of `@activity` and `durable.call`) says
how many attempts and how long between them; this module applies it to one attempt's
outcome, with the activity's ``schedule_to_close`` budget, and says what the worker records:
`decide` returns the `durable.store.TaskOutcome` — the task done (completed or failed for
good) or retried at a given time — with the journal record that goes with it. `retryable`
says whether an exception may be retried at all (`ApplicationError(non_retryable=True)` and
the policy's ``non_retryable`` types may not).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import frozen, journal, payload
from .definition import RetryPolicy
from .errors import ApplicationError, RemoteError
from .store import TaskOutcome, TaskRecord

if TYPE_CHECKING:
    from .context import ActivityContext

__all__ = ["AttemptResult", "cancelled", "completed", "decide", "lost", "retryable"]

logger = logging.getLogger("durable.worker")


@dataclass(frozen=True)
class AttemptResult:
    """A finished attempt: ``result`` (encoded) or ``error``; ``retryable`` if it may be tried
    again under its policy (the caller checks attempts and deadlines)."""

    result: bytes | None = None
    error: RemoteError | None = None
    retryable: bool = False
    cancelled: bool = False


def retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether ``exc`` may be retried under ``policy`` (attempts and time aside)."""
    if isinstance(exc, ApplicationError) and exc.non_retryable:
        return False
    names = set(policy.non_retryable_names())
    for cls in type(exc).__mro__:
        if cls.__qualname__ in names or f"{cls.__module__}.{cls.__qualname__}" in names:
            return False
    return True


def decide(
    spec: dict[str, Any],
    attempt: int,
    created_at: float,
    result: AttemptResult,
    ctx: ActivityContext | None,
    *,
    now: float,
    worker_id: str,
    started_at: float | None = None,
) -> TaskOutcome:
    """What to record for attempt ``attempt`` of the task scheduled as ``spec`` (the
    ``activity_scheduled`` data, with ``_seq``) at ``created_at``, that ended as ``result``.

    Retried when the failure is retryable, the policy allows another attempt, and the next
    attempt would start within ``schedule_to_close`` of the scheduling (counting the wait
    before it); then the outcome carries the attempt's last heartbeat details for the next
    one. ``ctx`` is the attempt's context when it ran in this worker: when it began;
    ``started_at`` says it for an attempt that ran elsewhere (a remote worker's).
    """
    ref = int(spec.get("_seq", 0))
    if ctx is not None:
        started_at = ctx.started_at
    if result.error is None:
        done = completed(ref, result.result, attempt, started_at, worker_id)
        return TaskOutcome("done", done.KIND, journal.encode(done), record=done)
    worker = worker_id if started_at is not None else None
    error = result.error
    policy = RetryPolicy.from_dict(spec["retry"])
    delay = policy.delay(attempt)
    deadline = spec.get("schedule_to_close")
    in_time = deadline is None or now + delay - created_at < float(deadline)
    if result.retryable and not error.non_retryable and policy.allows_another(attempt) and in_time:
        logger.info(
            "Activity %r (step %s) attempt %d failed: %s; attempt %d in %.3g s",
            spec.get("name"),
            ref,
            attempt,
            error,
            attempt + 1,
            delay,
        )
        retrying = journal.ActivityRetrying(ref, attempt, error, started_at, worker)
        return TaskOutcome(
            "retry",
            retrying.KIND,
            journal.encode(retrying),
            visible_at=now + delay,
            last_error=payload.envelope(error.to_dict()),
            details=ctx.details if ctx is not None else None,
        )
    logger.info(
        "Activity %r (step %s) failed for good after %d attempt(s): %s",
        spec.get("name"),
        ref,
        attempt,
        error,
    )
    failed = journal.ActivityFailed(ref, error, attempt, started_at, worker)
    return TaskOutcome("done", failed.KIND, journal.encode(failed))


def completed(
    ref: int, result: bytes | None, attempt: int, started_at: float | None, worker_id: str
) -> journal.ActivityCompleted:
    """The record of attempt ``attempt`` of the activity scheduled at step ``ref`` that
    returned ``result``: what `decide` records for a success (the worker's fast path
    builds it alone, with no `TaskOutcome` around it). ``started_at``: when it began
    (``None`` for an attempt of which this worker knows no start: no worker is named)."""
    worker = worker_id if started_at is not None else None
    fields = {
        "ref": ref,
        "result": result,
        "started_at": started_at,
        "worker": worker,
        "attempt": attempt,
    }
    return frozen.build(journal.ActivityCompleted, fields)  # once per step: no `__init__`


def lost(task: TaskRecord, now: float, worker_id: str) -> TaskOutcome:
    """What to record for the attempt of ``task`` whose lease expired with no result (claimed
    back with ``status="running"``): that attempt counts as failed — retried at once if the
    policy allows, else the activity fails.

    Whoever finds such a task applies this: a worker serving its name (its task loop), any
    worker's sweep of expired leases (`durable.worker`, so that the timeouts of attempts
    run by remote workers are enforced even when no one polls), or a remote worker's poll.
    """
    spec = payload.decode(task.data)
    spec["_seq"] = task.seq
    limits = [
        f"{label} of {spec[key]:g} s"
        for key, label in (("heartbeat_timeout", "heartbeat timeout"), ("timeout", "timeout"))
        if spec.get(key)
    ]
    why = "its worker stopped renewing its lease"
    if limits:
        why += f", or the attempt outlived its {' or its '.join(limits)}"
    logger.info(
        "Worker %s reclaimed task %s (%r attempt %d): %s, so that attempt counts as lost",
        worker_id,
        task.task_id,
        task.name,
        task.attempt,
        why,
    )
    error = RemoteError(
        "WorkerLost",
        f"Activity {task.name!r} attempt {task.attempt} was lost (lease expired): {why}",
    )
    outcome = decide(
        spec,
        task.attempt,
        task.created_at,
        AttemptResult(error=error, retryable=True),
        None,
        now=now,
        worker_id=worker_id,
    )
    if outcome.kind == "retry":  # at once: the lost attempt already took its time
        outcome = TaskOutcome(
            "retry", outcome.item_kind, outcome.item_data, now, outcome.last_error
        )
    return outcome


def cancelled(task: TaskRecord) -> TaskOutcome:
    """What to record for ``task`` claimed with ``cancel_requested`` before its attempt
    started: its workflow gave up on it, so it ends cancelled and nothing runs."""
    error = RemoteError("CancelledError", f"Activity {task.name!r} was cancelled")
    failed = journal.ActivityFailed(task.seq, error, task.attempt)
    return TaskOutcome("done", failed.KIND, journal.encode(failed))
