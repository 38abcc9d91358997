"""The update endpoint (DESIGN §10): ``POST /v1/workflows/{id}/update/{name}``.

The body is ``{"args": [...], "update_id": "..."}`` (both optional): the handler's
arguments as JSON values, and an id that makes the call idempotent (default: a new one,
returned in the answer). Decisions, as documented in ``/openapi.json``:

- 200 once the handler ended: ``status`` is ``completed`` with ``result``, or ``failed``
  with ``error`` (the handler raised: its error, as ``result`` shows a failed run's).
- 202 with ``status: "pending"`` when the handler is still running after ``wait`` seconds
  (default and most: `MAX_WAIT`): POST again with the same ``update_id`` for its outcome;
  the handler does not run twice.
- 409 when the workflow refused it before journaling anything: no handler of that name,
  arguments that do not fit, or its validator raised (``cause.type`` is ``UnknownUpdate``
  or the validator's error type), or the run has closed (``WorkflowClosed``), also when it
  closed or continued as new before the handler ended. The problem's ``cause`` is the
  recorded error. 404 for no such workflow, 413 for arguments past the payload limit.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from ..errors import SerializationError, UpdateFailed, UpdateRejected, WorkflowNotFound
from ..updates import send_update
from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, Param, json_response

__all__ = ["ENDPOINTS", "MAX_WAIT"]

MAX_WAIT = 60.0  # most seconds one call waits for the handler (the caller asks again after)


async def update(call: Call) -> Response:
    workflow_id, name = call.path["id"], call.path["name"]
    body = call.body or {}
    args = body.get("args") or []
    update_id = body.get("update_id") or None
    wait: float = call.query["wait"]
    handle = call.service.client.get_handle(workflow_id)
    head = {"id": workflow_id, "name": name}

    async def send() -> Any:
        return await send_update(handle, name, tuple(args), update_id, timeout=wait)

    if update_id is None:  # chosen here, so that the answer names it and a retry reuses it
        update_id = str(uuid.uuid4())
    head["update_id"] = update_id
    try:
        done = await call.service.unless_closing(send)
    except WorkflowNotFound:
        raise Problem(
            404,
            f"No workflow with id {workflow_id!r}. Start one with POST "
            "/v1/workflows/{name}/start, or list them with GET /v1/workflows.",
        ) from None
    except SerializationError as exc:
        status = 413 if "payload limit" in str(exc) else 400
        raise Problem(status, f"Cannot accept the arguments of update {name!r}: {exc}") from None
    except UpdateRejected as exc:
        raise Problem(409, str(exc), cause=s.plain(exc.cause)) from None
    except UpdateFailed as exc:
        if exc.cause.type == "WorkflowClosed":
            raise Problem(409, str(exc), cause=s.plain(exc.cause)) from None
        return json_response({**head, "status": "failed", "error": s.plain(exc.cause)})
    except TimeoutError:
        return json_response({**head, "status": "pending"}, 202)
    if not done:  # the server is shutting down: the update goes on
        return json_response({**head, "status": "pending"}, 202)
    return json_response({**head, "status": "completed", "result": s.plain(done[0])})


_ANSWER = s.obj(
    {
        "id": {"type": "string"},
        "update_id": {"type": "string"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": ["completed", "failed", "pending"]},
        "result": s.VALUE,
        "error": s.NULL_ERROR,
    },
    ("id", "update_id", "name", "status"),
    description="completed: `result`; failed (the handler raised): `error`; pending: ask again",
)

ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/workflows/{id}/update/{name}",
        "updateWorkflow",
        "Send an update (durable.on_update) and wait for its handler's result",
        update,
        {
            200: ("The handler ended: its result, or its error", _ANSWER),
            202: ("Still running after `wait` seconds: POST again with the update_id", _ANSWER),
        },
        params=[
            Param("id", "path", s.ID, "workflow id", required=True),
            Param("name", "path", s.ID, "the update's name", required=True),
            Param(
                "wait",
                "query",
                {"type": "number", "minimum": 0, "maximum": MAX_WAIT, "default": MAX_WAIT},
                f"seconds to wait for the handler (at most {MAX_WAIT:g})",
            ),
        ],
        body=s.obj(
            {
                "args": {**s.array(s.VALUE), "description": "the handler's arguments"},
                "update_id": {
                    **s.ID,
                    "description": "idempotency: the same id gets the same outcome, once",
                },
            },
            closed=True,
        ),
        problems=(400, 404, 409, 413),
        tags=["workflows"],
    ),
)
