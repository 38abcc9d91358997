"""`durable.map` at scale: tolerated failures, and batches of items as child workflows.

    results = await durable.map(score, rows, max_concurrency=500,
                                tolerated_failures=0.01, batch_size=1000)

**Tolerated failures.** With ``tolerated_failures`` (a count, or a fraction of the items in
(0, 1)), an item whose call fails for good — `ActivityError` (or `ChildWorkflowError` for
a child workflow) — comes back as that error, in its place in the result list; once more
items have failed than tolerated, the items still running are cancelled and
`durable.MapFailed` says how many failed of how many, with the first errors. With the
default (0, no batches) the first failure raises as it is, as ``asyncio.gather`` does.

**Batches.** With ``batch_size``, ``fn`` (an activity or a workflow) is not called by this
run: the items are split into batches of that many, and each batch is a child workflow,
`BATCH_WORKFLOW` (``durable.map.batch``), that every worker serving a workflow registers by
itself. A batch calls ``fn`` by name for each item — schedules the activity with the
arguments this run encoded, or starts the child workflow with them — and returns the
results encoded, so it never needs ``fn``'s code; this run rebuilds them from ``fn``'s
type hints. This
run's journal holds two entries per batch, each batch's journal two or three per item: a
map over a million items is a thousand journals of a few thousand entries, not one of
millions. The batches run on this run's queue. ``max_concurrency`` still bounds the items
in flight: ``max_concurrency // batch_size`` batches at once (at least one), each running
up to ``max_concurrency`` of its items; without it, every batch and item at once.
Failures are counted over all batches (a batch that fails as a whole counts all its items);
past the tolerance, the batches still running are cancelled and `MapFailed` is raised.

Replay: the batching is plain code over the journal's answers, deterministic like any
workflow code; items are encoded for a batch only when it starts live, not on replay.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import payload
from .definition import ActivityDefinition, RetryPolicy, WorkflowDefinition, workflow
from .engine import WorkflowRun
from .errors import ActivityError, ChildWorkflowError, DurableError, MapFailed, RemoteError
from .loop import current_run

__all__ = ["BATCH_WORKFLOW", "batch", "map_items", "tolerance"]

#: The name of the built-in child workflow that runs one batch of a `durable.map`.
BATCH_WORKFLOW = "durable.map.batch"
ERRORS_SHOWN = 3  # failed items MapFailed names in its message


def tolerance(tolerated_failures: int | float, total: int) -> int:
    """How many of ``total`` items may fail: a count as given, a fraction of ``total``
    rounded down.

    Raises:
        ValueError: a negative count, or a fraction not in (0, 1).
        TypeError: neither an int nor a float.
    """
    if isinstance(tolerated_failures, bool) or not isinstance(tolerated_failures, int | float):
        raise TypeError(
            "tolerated_failures must be a count (an int >= 0) or a fraction (a float in "
            f"(0, 1)), got {tolerated_failures!r}"
        )
    if isinstance(tolerated_failures, int):
        if tolerated_failures < 0:
            raise ValueError(
                f"tolerated_failures must be >= 0 (a count of items), got {tolerated_failures}"
            )
        return tolerated_failures
    if not 0 < tolerated_failures < 1 or math.isnan(tolerated_failures):
        raise ValueError(
            "tolerated_failures as a float is a fraction of the items and must be in (0, 1), "
            f"got {tolerated_failures!r}; to tolerate a number of items give an int (for "
            "every item to be allowed to fail, len(items))"
        )
    return math.floor(tolerated_failures * total)


def _describe(allowed: int, tolerated_failures: int | float) -> str:
    if isinstance(tolerated_failures, float):
        return f"{allowed} tolerated ({tolerated_failures:g} of the items)"
    return f"{allowed} tolerated"


def _failed(
    name: str,
    failures: Sequence[tuple[int, DurableError]],
    total: int,
    allowed: int,
    tolerated_failures: int | float,
) -> MapFailed:
    first = sorted(failures, key=lambda f: f[0])[:ERRORS_SHOWN]
    shown = "; ".join(f"item {i}: {err}" for i, err in first)
    return MapFailed(
        f"durable.map over {name!r}: {len(failures)} of {total} items failed, more than the "
        f"{_describe(allowed, tolerated_failures)}; the items still running were cancelled. "
        f"First errors: {shown}",
        len(failures),
        total,
        list(first),
    )


async def map_items(
    fn: Callable[[Any], Awaitable[Any]],
    items: list[Any],
    max_concurrency: int | None,
    tolerated_failures: int | float,
    batch_size: int | None,
) -> list[Any]:
    """`durable.map` with a tolerance or batches (the arguments are checked already)."""
    run = current_run()
    assert run is not None
    allowed = tolerance(tolerated_failures, len(items))
    if batch_size is not None:
        defn = getattr(fn, "__durable_activity__", None) or getattr(
            fn, "__durable_workflow__", None
        )
        if not isinstance(defn, ActivityDefinition | WorkflowDefinition):
            raise TypeError(
                f"durable.map(..., batch_size=...) runs an @activity or a @workflow per item, "
                f"got {getattr(fn, '__qualname__', fn)!r}: batches call them by name (for a "
                "plain function, map without batch_size)."
            )
        return await _batched(
            run, defn, items, max_concurrency, allowed, tolerated_failures, batch_size
        )
    defined = getattr(fn, "__durable_activity__", None) or getattr(fn, "__durable_workflow__", None)
    name = str(getattr(defined, "name", None) or getattr(fn, "__name__", repr(fn)))
    failures: list[tuple[int, DurableError]] = []
    semaphore = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    async def one(index: int, item: Any) -> Any:
        try:
            if semaphore is None:
                return await fn(item)
            async with semaphore:
                return await fn(item)
        except (ActivityError, ChildWorkflowError) as err:
            failures.append((index, err))
            if len(failures) > allowed:
                raise _failed(name, failures, len(items), allowed, tolerated_failures) from err
            return err

    return await _all(one(i, item) for i, item in enumerate(items))


async def _all(coros: Any) -> list[Any]:
    """Results in order; on the first error, cancel the rest and raise it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def _batched(
    run: WorkflowRun,
    defn: ActivityDefinition | WorkflowDefinition,
    items: list[Any],
    max_concurrency: int | None,
    allowed: int,
    tolerated_failures: int | float,
    size: int,
) -> list[Any]:
    total = len(items)
    failures: list[tuple[int, DurableError]] = []
    in_flight = max(1, max_concurrency // size) if max_concurrency else None
    semaphore = asyncio.Semaphore(in_flight) if in_flight else None
    spec: dict[str, Any] = {
        "name": defn.name,
        "queue": defn.queue,
        "timeout": defn.timeout,
        "max_concurrency": min(max_concurrency, size) if max_concurrency else None,
    }
    if isinstance(defn, ActivityDefinition):
        spec.update(
            retry=defn.retry.to_dict(),
            heartbeat_timeout=defn.heartbeat_timeout,
            schedule_to_close=defn.schedule_to_close,
        )
    else:
        spec["workflow"] = True
    batch_defn = batch.__durable_workflow__  # type: ignore[attr-defined]

    async def one(start: int) -> list[Any]:
        chunk = items[start : start + size]
        if semaphore is not None:
            await semaphore.acquire()
        try:
            # Encoded live only: on replay the command is compared, its arguments not used.
            encoded = (
                []
                if run.is_replaying
                else [
                    payload.encode_args(
                        defn.fn,
                        (item,),
                        {},
                        what=f"item {start + i} of durable.map over {defn.name!r}",
                    )
                    for i, item in enumerate(chunk)
                ]
            )
            try:
                answers = await run.start_child(
                    batch_defn, (spec, encoded), {}, {"queue": run.queue}
                )
            except ChildWorkflowError as err:  # the batch as a whole: each of its items failed
                answers = [err] * len(chunk)
        finally:
            if semaphore is not None:
                semaphore.release()
        out = []
        for i, answer in enumerate(answers):
            if isinstance(answer, bytes):
                out.append(payload.decode_result(defn.fn, answer))
                continue
            if isinstance(answer, dict):
                message = str(answer.get("message", ""))
                cause = RemoteError.from_dict(answer.get("error") or {})
                answer = (
                    ChildWorkflowError(message, cause, str(answer["child"]))
                    if "child" in answer
                    else ActivityError(message, cause, int(answer.get("attempts", 1)))
                )
            failures.append((start + i, answer))
            out.append(answer)
        if len(failures) > allowed:
            raise _failed(defn.name, failures, total, allowed, tolerated_failures)
        return out

    chunks = await _all(one(start) for start in range(0, total, size))
    return [result for chunk in chunks for result in chunk]


async def _batch(spec: dict[str, Any], items: list[bytes]) -> list[Any]:
    """One batch of a `durable.map`: each item's activity (or child workflow), by name,
    with its arguments as encoded by the parent; the results encoded (bytes), or for a
    failed item ``{"message", "error", "attempts"}`` (a child: ``{"message", "error",
    "child"}``, its workflow id), in item order."""
    run = current_run()
    assert run is not None
    limit = spec.get("max_concurrency")
    semaphore = asyncio.Semaphore(limit) if limit else None
    call = _child if spec.get("workflow") else _activity

    async def one(encoded: bytes) -> Any:
        if semaphore is not None:
            await semaphore.acquire()
        try:
            return await call(run, spec, encoded)
        finally:
            if semaphore is not None:
                semaphore.release()

    return list(await asyncio.gather(*(one(encoded) for encoded in items)))


def _keep(data: bytes) -> bytes:
    return data


async def _activity(run: WorkflowRun, spec: dict[str, Any], encoded: bytes) -> Any:
    """The item's activity, scheduled with the parent's encoding; its result kept encoded."""
    fut = run._schedule(
        spec["name"],
        spec["queue"] or run.queue,  # none of its own: the batch's, which is the caller's
        encoded,
        RetryPolicy.from_dict(spec["retry"]),
        spec.get("timeout"),
        spec.get("heartbeat_timeout"),
        spec.get("schedule_to_close"),
        _keep,
    )
    try:
        return await fut
    except ActivityError as err:
        return {"message": str(err), "error": err.cause.to_dict(), "attempts": err.attempts}


async def _any_call(*args: Any, **kwargs: Any) -> Any:
    """Stands for the item's workflow, whose code the batch does not have: it takes and
    returns plain values (the child and the parent rebuild them from their hints)."""
    raise NotImplementedError  # never run: only its signature is used


async def _child(run: WorkflowRun, spec: dict[str, Any], encoded: bytes) -> Any:
    """The item's child workflow, started by name with the parent's arguments (decoded
    plainly, encoded again: the child rebuilds them from its own hints); its result
    encoded again for the parent, which rebuilds it from the workflow's return hint."""
    name, timeout = spec["name"], spec.get("timeout")
    stand_in = WorkflowDefinition(name, _any_call, spec["queue"], timeout)
    call = payload.decode(encoded, what=f"arguments of child workflow {name!r}")
    try:
        value = await run.start_child(stand_in, tuple(call["args"]), call["kwargs"], {})
    except ChildWorkflowError as err:
        return {"message": str(err), "error": err.cause.to_dict(), "child": err.workflow_id}
    return payload.encode(value, what=f"result of child workflow {name!r}")


#: The built-in child workflow of batched maps; `durable.Worker` registers it by itself.
batch = workflow(name=BATCH_WORKFLOW)(_batch)
