"""Server-sent events (``GET /v1/events?topic=``): live updates for the console and scripts.

Two topics, one per stream:

- ``runs``: an ``event: run`` (a run summary) whenever a run is created or its status
  changes.
- ``run:{workflow_id}``: an ``event: run`` with the run's state at once and whenever its
  status changes, an ``event: step`` (a `durable.steps.Step`) whenever one of its steps
  is new or changed, and ``event: end`` when the run has closed, which ends the stream.
  Subscribe first, then ``GET .../steps``: nothing falls between the two.

Streams are driven by the stores' wake-ups (`durable.store.Store.wait` on `TOPIC_STATUS`,
`run_topic` and `steps_topic`, which commits notify), not by polling the database on a
timer: a stream queries only when woken, and sends a keep-alive comment after
`KEEPALIVE_SECONDS` of quiet. A stream ends cleanly when the server shuts down
(`durable.server.Service.close`) or the client goes away.

On SQLite, another process's commits are noticed by the backend's ``data_version`` checks
(see ``durable_sqlite.wakeups``) rather than named notifications, so a ``runs`` stream
then looks at the `RECENT_RUNS` newest runs; on PostgreSQL and within one process the
notified workflows are looked at too, however old.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any, Literal

from starlette.responses import Response, StreamingResponse

from .. import steps as _steps
from ..runsteps import RunSteps
from ..store import (
    CLOSED_STATUSES,
    TOPIC_STATUS,
    TOPIC_STEPS,
    RunRecord,
    Store,
    run_topic,
    steps_topic,
)
from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, Param

__all__ = ["ENDPOINTS", "KEEPALIVE_SECONDS", "RECENT_RUNS"]

KEEPALIVE_SECONDS = 15.0  # a comment after this much quiet keeps proxies from closing a stream
RECENT_RUNS = 100  # newest runs a `runs` stream compares on each wake-up
NAMED_LOOKUPS = 50  # most notified workflows a `runs` stream looks up on one wake-up
REMEMBERED = 10_000  # runs whose last status sent a `runs` stream remembers
RETRY_MS = 2000  # how soon a browser's EventSource reconnects after the stream ends

_RUN_PREFIX = run_topic("")


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _summary(run: RunRecord) -> dict[str, Any]:
    from ..handles import _dt

    return {
        "id": run.workflow_id,
        "run_id": run.run_id,
        "name": run.name,
        "status": run.status,
        "queue": run.queue,
        "created_at": _dt(run.created_at).isoformat(),
        "closed_at": _dt(run.closed_at).isoformat() if run.closed_at is not None else None,
        "history_length": run.history_length,
    }


async def _wait(
    call: Call, store: Store, topics: list[str], since: int
) -> Literal["woken", "quiet", "closing"]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    done = await call.service.unless_closing(
        lambda: store.wait(topics, KEEPALIVE_SECONDS, since=since)
    )
    if not done:
        return "closing"
    # A return before the timeout is a wake-up (perhaps spurious: the caller looks).
    return "woken" if loop.time() - started < KEEPALIVE_SECONDS * 0.98 else "quiet"


async def _runs(call: Call, store: Store) -> AsyncIterator[str]:
    known: OrderedDict[str, str] = OrderedDict()  # run id -> status sent (or seen at first)

    def news(run: RunRecord) -> bool:
        if known.get(run.run_id) == run.status:
            return False
        known[run.run_id] = run.status
        known.move_to_end(run.run_id)
        while len(known) > REMEMBERED:
            known.popitem(last=False)
        return True

    mark = store.watermark()
    for run in await store.list_runs(limit=RECENT_RUNS):
        news(run)
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        woke = await _wait(call, store, [TOPIC_STATUS], mark)
        if woke == "closing":
            return
        if woke == "quiet":
            yield ": keep-alive\n\n"
            continue
        named = store.hub.topics_since(mark) or []
        mark = store.watermark()
        changed = {r.run_id: r for r in await store.list_runs(limit=RECENT_RUNS) if news(r)}
        workflows = [t[len(_RUN_PREFIX) :] for t in named if t.startswith(_RUN_PREFIX)]
        for workflow_id in workflows[:NAMED_LOOKUPS]:
            found = await store.get_run(workflow_id)
            if found is not None and found.run_id not in changed and news(found):
                changed[found.run_id] = found
        for run in sorted(changed.values(), key=lambda r: (r.created_at, r.run_id)):
            yield _sse("run", _summary(run))


def _fingerprint(step: _steps.Step) -> tuple[Any, ...]:
    return (step.status, len(step.attempts), step.closed_at, step.kind)


async def _run(call: Call, store: Store, workflow_id: str) -> AsyncIterator[str]:
    mark = store.watermark()
    run = await store.get_run(workflow_id)
    assert run is not None  # checked before the stream began

    kept = RunSteps(run.run_id)  # the stream reads only what each change wrote

    async def current_steps(run: RunRecord) -> list[_steps.Step]:
        nonlocal kept
        if kept.run_id != run.run_id:
            kept = RunSteps(run.run_id)
        await kept.read(store, run)
        extras = await store.read_extras(run.workflow_id, run.run_id)
        return kept.steps(run, extras.tasks, extras.timers)

    sent = {step.seq: _fingerprint(step) for step in await current_steps(run)}
    yield f"retry: {RETRY_MS}\n\n"
    yield _sse("run", _summary(run))
    topics = [run_topic(workflow_id), steps_topic(workflow_id), TOPIC_STEPS]
    while True:
        if run.status in CLOSED_STATUSES and run.status != "continued_as_new":
            yield _sse("end", _summary(run))
            return
        woke = await _wait(call, store, topics, mark)
        if woke == "closing":
            return
        if woke == "quiet":
            yield ": keep-alive\n\n"
            continue
        mark = store.watermark()
        latest = await store.get_run(workflow_id)
        if latest is None:
            return
        same_run = latest.run_id == run.run_id
        if same_run and (latest.status, latest.history_length) == (
            run.status,
            run.history_length,
        ):
            continue  # woken for another workflow's steps, or spuriously
        if not same_run:
            sent = {}  # continued as new (or restarted): every step of the new run is news
            yield _sse("run", _summary(latest))
        for step in await current_steps(latest):
            seen = _fingerprint(step)
            if sent.get(step.seq) != seen:
                sent[step.seq] = seen
                data = {"id": latest.workflow_id, "run_id": latest.run_id, "step": s.plain(step)}
                yield _sse("step", data)
        if same_run and latest.status != run.status:
            yield _sse("run", _summary(latest))  # after the steps that got it there
        run = latest


async def events(call: Call) -> Response:
    topic: str = call.query["topic"]
    store = await call.service.store()
    if topic == "runs":
        stream = _runs(call, store)
    elif topic.startswith(_RUN_PREFIX) and len(topic) > len(_RUN_PREFIX):
        workflow_id = topic[len(_RUN_PREFIX) :]
        if await store.get_run(workflow_id) is None:
            raise Problem(
                404,
                f"No workflow with id {workflow_id!r} to follow. Start it first, or subscribe "
                "to topic=runs to hear of new runs.",
            )
        stream = _run(call, store, workflow_id)
    else:
        raise Problem(
            400,
            f"Unknown topic {topic!r}: use topic=runs (every run's status) or "
            "topic=run:WORKFLOW_ID (one workflow's status and steps).",
        )
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/events",
        "events",
        "Server-sent events: run status changes (topic=runs), or one workflow's status "
        "and steps (topic=run:WORKFLOW_ID)",
        events,
        {
            200: (
                "A text/event-stream of `run`, `step` and `end` events (data: JSON), with "
                "keep-alive comments",
                {"type": "string"},
            )
        },
        params=[
            Param(
                "topic",
                "query",
                {"type": "string", "pattern": "^(runs|run:.+)$"},
                "runs, or run:WORKFLOW_ID",
                required=True,
            )
        ],
        problems=(400, 404),
        media_type="text/event-stream",
        tags=["events"],
    ),
)
