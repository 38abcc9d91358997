"""The workflow endpoints (DESIGN §7): start by name, list, describe, steps, history,
result (long poll), published values, signal, cancel, terminate.

Decisions, as documented in ``/openapi.json``:

- start answers 201 with ``{"id", "run_id", "created": true}`` when it created the run,
  and 200 with ``"created": false`` when ``if_exists`` handed back an existing one; an id
  taken by a *different* workflow is 409 (nothing is written). Arguments are checked
  against the signature a live worker serves (400 naming the parameter); a workflow no
  live worker serves is started anyway, as `Client.start` does (``describe`` then says
  what is missing in ``problem``), so a deploy may start workers after callers.
- result answers 200 once the run has closed, with its status and either ``result``
  (completed) or ``error`` (failed, cancelled, terminated), and 202 with the status while
  it still runs after ``wait`` seconds.
- signal answers 202 (queued for the run), or 409 if the run has closed; cancel (202) and
  terminate (200) on a closed run change nothing and answer its status, so a retry is safe.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from starlette.responses import Response

from ..client import WorkflowDescription
from ..errors import SerializationError, WorkflowAlreadyExists, WorkflowNotFound
from ..store import CLOSED_STATUSES, STATUSES, RunRecord
from . import schemas as s
from .paths import ID_DESCRIPTION
from .problems import Problem
from .routing import Call, Endpoint, Param, json_response

__all__ = ["ENDPOINTS", "MAX_LIST", "MAX_WAIT"]

MAX_WAIT = 60.0  # most seconds a result long poll waits (a client asks again after)
MAX_LIST = 1000  # most runs one list page holds
MAX_HISTORY = 10_000  # most journal entries one history page holds


def _value(value: Any) -> Any:
    return s.plain(value)


def _description(d: WorkflowDescription) -> dict[str, Any]:
    out: dict[str, Any] = s.plain(d)
    return out


async def _run(call: Call, run_id: str | None = None) -> RunRecord:
    workflow_id = call.path["id"]
    store = await call.service.store()
    run = await store.get_run(workflow_id, run_id)
    if run is None:
        if run_id is not None:
            raise Problem(
                404,
                f"Workflow {workflow_id!r} has no run {run_id!r}. Leave out run_id for its "
                "current run; GET /v1/workflows?name=... lists runs.",
            )
        raise Problem(
            404,
            f"No workflow with id {workflow_id!r}. Start one with POST "
            "/v1/workflows/{name}/start, or list them with GET /v1/workflows.",
        )
    return run


def _size_problem(exc: SerializationError, what: str) -> Problem:
    # The payload limit (durable.payload.MAX_PAYLOAD_BYTES) is a 413, other encoding
    # failures a 400; the message says which, and what to do.
    status = 413 if "payload limit" in str(exc) else 400
    return Problem(status, f"Cannot accept {what}: {exc}")


# ---- start -----------------------------------------------------------------------------


async def start(call: Call) -> Response:
    name = call.path["name"]
    body = call.body
    args = body.get("args", [])
    workflow_id = body.get("id")
    store = await call.service.store()
    if workflow_id is not None:
        existing = await store.get_run(workflow_id)
        if existing is not None and existing.name != name:
            raise Problem(
                409,
                f"Workflow id {workflow_id!r} belongs to a {existing.name!r} workflow (run "
                f"{existing.run_id}, {existing.status}), not {name!r}; nothing was started. "
                "Choose another id.",
            )
    try:
        handle = await call.service.client.start(
            name,
            *args,
            id=workflow_id,
            queue=body.get("queue"),
            if_exists=body.get("if_exists", "return"),
            tags=body.get("tags"),
        )
    except WorkflowAlreadyExists as exc:
        raise Problem(
            409,
            f'{exc} Nothing was started. Send "if_exists": "return" to get the existing '
            'run, or "restart" to start it again once it has closed.',
        ) from None
    except SerializationError as exc:
        raise _size_problem(exc, f"the arguments of workflow {name!r}") from None
    except TypeError as exc:  # the arguments do not fit what a live worker serves
        raise Problem(400, str(exc)) from None
    except ValueError as exc:  # tags that cannot be stored (durable.client.check_tags)
        raise Problem(400, f"{exc}. Nothing was started.") from None
    created = bool(handle.created)
    body_out = {"id": handle.id, "run_id": handle.run_id, "created": created}
    return json_response(body_out, 201 if created else 200)


_START_BODY = s.obj(
    {
        "args": {**s.array(s.VALUE), "description": "the workflow's positional arguments"},
        "id": {**s.ID, "description": "workflow id (default: random)"},
        "queue": {**s.ID, "description": "queue (default: the workflow's, else 'default')"},
        "if_exists": {
            "type": "string",
            "enum": ["return", "error", "restart"],
            "description": "when the id is taken: return that run (default; 200), "
            "refuse (409), or start it again if it has closed",
        },
        "tags": {
            "type": "object",
            "maxProperties": 32,
            "propertyNames": {"minLength": 1, "maxLength": 256, "pattern": "^[^:]*$"},
            "additionalProperties": {"type": "string", "maxLength": 256},
            "description": "labels stored on the run, string to string (keys without ':'; "
            "at most 32, each at most 256 characters); list filters on them",
        },
    },
    closed=True,
)
_STARTED = s.obj(
    {"id": {"type": "string"}, "run_id": {"type": "string"}, "created": {"type": "boolean"}},
    ("id", "run_id", "created"),
)


# ---- read ------------------------------------------------------------------------------


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for text in values:
        key, sep, value = text.partition(":")
        if not sep or not key:
            raise Problem(
                400, f"The tag filter {text!r} must be KEY:VALUE, e.g. tag=customer:acme."
            )
        tags[key] = value
    return tags


def _moment(query: dict[str, Any], name: str) -> datetime | None:
    text = query[name]
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.upper())  # RFC 3339 allows "t" and "z"
    except ValueError:
        raise Problem(
            400,
            f"The query parameter {name!r} must be an ISO 8601 date-time, like "
            f"2026-12-01T00:00:00Z, not {text!r} (without an offset it is taken as UTC).",
        ) from None


async def list_workflows(call: Call) -> Response:
    q = call.query
    limit: int = q["limit"]
    listing = call.service.client.list(
        status=q["status"],
        name=q["name"],
        limit=limit + 1,
        cursor=q["cursor"],
        tags=_tags(q["tag"]) or None,
        created_after=_moment(q, "created_after"),
        created_before=_moment(q, "created_before"),
    )
    try:
        runs = [d async for d in listing]
    except ValueError as exc:  # tags no run can have (durable.client.check_tags)
        raise Problem(400, f"{exc}.") from None
    more = len(runs) > limit
    runs = runs[:limit]
    return json_response(
        {
            "workflows": [_description(d) for d in runs],
            "next_cursor": runs[-1].run_id if more else None,
        }
    )


async def describe(call: Call) -> Response:
    run = await _run(call, call.query["run_id"])
    d = await call.service.client._describe(run, detailed=True)
    return json_response(_description(d))


async def steps(call: Call) -> Response:
    from .. import steps as _steps

    run = await _run(call, call.query["run_id"])
    store = await call.service.store()
    rows = await store.read_journal_rows(run.run_id)
    extras = await store.read_extras(run.workflow_id, run.run_id)
    built = _steps.build_rows(run, rows, extras.tasks, extras.timers)
    return json_response(
        {"id": run.workflow_id, "run_id": run.run_id, "steps": [s.plain(x) for x in built]}
    )


async def history(call: Call) -> Response:
    from .. import steps as _steps
    from ..handles import Event, _dt

    run = await _run(call, call.query["run_id"])
    store = await call.service.store()
    after: int = call.query["after"]
    limit: int = call.query["limit"]
    # A page and one more entry (whether there is a next page), not the rest of the journal.
    rows = await store.read_journal_rows(run.run_id, after_seq=after, limit=limit + 1)
    page = rows[:limit]
    events = [Event(seq, kind, _dt(t), _steps.readable(kind, data)) for seq, kind, t, data in page]
    more = len(rows) > limit
    return json_response(
        {
            "id": run.workflow_id,
            "run_id": run.run_id,
            "events": [s.plain(e) for e in events],
            "next_after": page[-1][0] if more else None,
        }
    )


def _outcome(run: RunRecord) -> dict[str, Any]:
    from ..handles import _error
    from ..steps import readable_value

    out: dict[str, Any] = {"id": run.workflow_id, "run_id": run.run_id, "status": run.status}
    if run.status == "completed":
        out["result"] = _value(readable_value(run.result))
    elif run.status in CLOSED_STATUSES:
        out["error"] = _value(_error(run.error))
    return out


async def result(call: Call) -> Response:
    wait: float = call.query["wait"]
    run = await _run(call)
    store = await call.service.store()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    handle = call.service.client.get_handle(run.workflow_id)

    async def settle() -> None:
        try:
            await handle.result(timeout=max(0.0, deadline - loop.time()))
        except TimeoutError:
            pass
        except WorkflowNotFound:
            raise
        except Exception:
            pass  # failed or cancelled: the outcome is read below

    if run.status not in CLOSED_STATUSES or run.status == "continued_as_new":
        if wait > 0:
            await call.service.unless_closing(settle)
        latest = await store.get_run(run.workflow_id)
        run = latest or run
    if run.status in CLOSED_STATUSES and run.status != "continued_as_new":
        return json_response(_outcome(run))
    return json_response(_outcome(run), 202)


async def published(call: Call) -> Response:
    run = await _run(call)
    key = call.path["key"]
    store = await call.service.store()
    values = (await store.read_extras(run.workflow_id, run.run_id)).published
    if key not in values:
        raise Problem(
            404,
            f"Workflow {run.workflow_id!r} has published nothing under {key!r} (yet). It "
            "publishes with durable.publish(key, value); GET .../steps lists what it did.",
        )
    from ..steps import readable_value

    return json_response(
        {"id": run.workflow_id, "key": key, "value": _value(readable_value(values[key]))}
    )


# ---- steer -----------------------------------------------------------------------------


def _steered(run: RunRecord) -> dict[str, Any]:
    return {"id": run.workflow_id, "run_id": run.run_id, "status": run.status}


async def signal(call: Call) -> Response:
    run = await _run(call)
    name = call.path["signal"]
    if run.status in CLOSED_STATUSES:
        raise Problem(
            409,
            f"Workflow {run.workflow_id!r} has closed ({run.status}); signal {name!r} was "
            "not delivered.",
        )
    handle = call.service.client.get_handle(run.workflow_id)
    try:
        await handle.signal(name, call.body.get("value"))
    except SerializationError as exc:
        raise _size_problem(exc, f"the value of signal {name!r}") from None
    except WorkflowNotFound as exc:  # closed meanwhile
        raise Problem(409, str(exc)) from None
    return json_response(_steered(run), 202)


async def cancel(call: Call) -> Response:
    run = await _run(call)
    if run.status not in CLOSED_STATUSES:
        await call.service.client.get_handle(run.workflow_id).cancel()
    return json_response(_steered(run), 202)


async def terminate(call: Call) -> Response:
    run = await _run(call)
    handle = call.service.client.get_handle(run.workflow_id)
    await handle.terminate(call.body.get("reason") or "")
    latest = await _run(call)
    return json_response(_steered(latest))


# ---- the definitions -------------------------------------------------------------------

_ID = Param("id", "path", s.ID, ID_DESCRIPTION, required=True)
_RUN_ID = Param("run_id", "query", {"type": "string"}, "a run of it (default: its current run)")
_STEERED = s.obj(
    {"id": {"type": "string"}, "run_id": {"type": "string"}, "status": {"type": "string"}},
    ("id", "run_id", "status"),
)
_OUTCOME = s.obj(
    {
        "id": {"type": "string"},
        "run_id": {"type": "string"},
        "status": {"type": "string"},
        "result": s.VALUE,
        "error": s.NULL_ERROR,
    },
    ("id", "run_id", "status"),
    description="completed: `result`; failed, cancelled or terminated: `error`",
)
_TAG = ["workflows"]

ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/workflows/{name}/start",
        "startWorkflow",
        "Start a workflow by name",
        start,
        {201: ("Started", _STARTED), 200: ("An existing run (if_exists)", _STARTED)},
        params=[Param("name", "path", s.ID, "the workflow's registered name", required=True)],
        body=_START_BODY,
        problems=(400, 409, 413),
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/workflows",
        "listWorkflows",
        "List runs, newest first, a page at a time",
        list_workflows,
        {
            200: (
                "A page of runs; next_cursor is null on the last",
                s.obj(
                    {
                        "workflows": s.array(s.DESCRIPTION),
                        "next_cursor": {"type": ["string", "null"]},
                    },
                    ("workflows", "next_cursor"),
                ),
            )
        },
        params=[
            Param("status", "query", {"type": "string", "enum": list(STATUSES)}, "only these"),
            Param("name", "query", {"type": "string"}, "only runs of this workflow"),
            Param(
                "tag",
                "query",
                s.array({"type": "string", "pattern": "^[^:]{1,256}:[\\s\\S]{0,256}$"}),
                "KEY:VALUE, repeatable: runs having all these tags",
            ),
            Param("created_after", "query", s.TIME, "only runs started at or after this"),
            Param("created_before", "query", s.TIME, "only runs started before this"),
            Param("cursor", "query", {"type": "string"}, "next_cursor of the previous page"),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LIST, "default": 100},
                "most runs on the page",
            ),
        ],
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/workflows/{id}",
        "describeWorkflow",
        "Describe a run: status, input, result or error, pending steps, problem",
        describe,
        {200: ("The run", s.DESCRIPTION)},
        params=[_ID, _RUN_ID],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/workflows/{id}/steps",
        "workflowSteps",
        "The run's steps, in journal order",
        steps,
        {
            200: (
                "Its steps",
                s.obj(
                    {
                        "id": {"type": "string"},
                        "run_id": {"type": "string"},
                        "steps": s.array(s.STEP),
                    },
                    ("id", "run_id", "steps"),
                ),
            )
        },
        params=[_ID, _RUN_ID],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/workflows/{id}/history",
        "workflowHistory",
        "The run's journal, decoded, a page at a time",
        history,
        {
            200: (
                "Entries with seq > after; next_after is null on the last page",
                s.obj(
                    {
                        "id": {"type": "string"},
                        "run_id": {"type": "string"},
                        "events": s.array(s.EVENT),
                        "next_after": {"type": ["integer", "null"]},
                    },
                    ("id", "run_id", "events", "next_after"),
                ),
            )
        },
        params=[
            _ID,
            _RUN_ID,
            Param(
                "after",
                "query",
                {"type": "integer", "minimum": 0, "default": 0},
                "entries after this seq (next_after of the previous page)",
            ),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_HISTORY, "default": 1000},
                "most entries on the page",
            ),
        ],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/workflows/{id}/result",
        "workflowResult",
        "The outcome, waiting up to `wait` seconds for it",
        result,
        {
            200: ("Closed: its result or error", _OUTCOME),
            202: ("Still running after `wait` seconds: ask again", _OUTCOME),
        },
        params=[
            _ID,
            Param(
                "wait",
                "query",
                {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": 0},
                f"seconds to wait for it to close (at most {MAX_WAIT:g})",
            ),
        ],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/workflows/{id}/published/{key}",
        "workflowPublished",
        "The latest value the workflow published under `key`",
        published,
        {
            200: (
                "The value",
                s.obj(
                    {"id": {"type": "string"}, "key": {"type": "string"}, "value": s.VALUE},
                    ("id", "key", "value"),
                ),
            )
        },
        params=[_ID, Param("key", "path", s.ID, "the key it published under", required=True)],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/workflows/{id}/signal/{signal}",
        "signalWorkflow",
        "Send a signal: the workflow's wait_signal(name) receives `value`",
        signal,
        {202: ("Queued for the run", _STEERED)},
        params=[_ID, Param("signal", "path", s.ID, "the signal's name", required=True)],
        body=s.obj({"value": s.VALUE}, closed=True),
        problems=(400, 404, 409, 413),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/workflows/{id}/cancel",
        "cancelWorkflow",
        "Request cancellation (the workflow may clean up); nothing on a closed run",
        cancel,
        {202: ("Requested (or already closed: see status)", _STEERED)},
        params=[_ID],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/workflows/{id}/terminate",
        "terminateWorkflow",
        "Close the run now, running no more of its code; nothing on a closed run",
        terminate,
        {200: ("Terminated (or already closed: see status)", _STEERED)},
        params=[_ID],
        body=s.obj({"reason": {"type": "string"}}, closed=True),
        problems=(400, 404),
        tags=_TAG,
    ),
)
