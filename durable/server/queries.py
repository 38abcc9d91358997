"""The query endpoint (DESIGN §10): ``POST /v1/workflows/{id}/query/{name}`` with
``{"args": [...]}`` asks a run's query (`durable.queries`) and answers ``{"result": ...}``.

Nothing is written to the run. Errors, as ``/openapi.json`` documents them (each problem
carries ``reason``, the `durable.QueryError` reason, where there is one):

- 404: no workflow with that id, or the run has no query of that name
  (``unknown_query``: the detail lists the names it registers);
- 400: the run refused the query (``refused``: the arguments do not fit the query
  function, or the function is async, awaits, or calls a durable operation), or an
  argument cannot be encoded;
- 422: the query function raised (``failed``; ``cause`` holds its type and message);
- 504: no worker serving the workflow answered within ``timeout`` seconds (``no_answer``:
  start one).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..errors import QueryError, SerializationError, WorkflowNotFound
from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, Param, json_response

__all__ = ["ENDPOINTS", "MAX_QUERY_WAIT", "STATUS"]

MAX_QUERY_WAIT = 60.0  # most seconds a query waits for an answer
DEFAULT_QUERY_WAIT = 10.0  # seconds it waits unless told

#: The status answered for each `QueryError` reason.
STATUS = {"unknown_query": 404, "refused": 400, "failed": 422, "no_answer": 504}


async def query(call: Call) -> Response:
    workflow_id, name = call.path["id"], call.path["name"]
    args = (call.body or {}).get("args", [])
    handle = call.service.client.get_handle(workflow_id)
    timeout = float(call.query.get("timeout") or DEFAULT_QUERY_WAIT)
    try:
        value = await handle.query(name, *args, timeout=timeout)
    except WorkflowNotFound as exc:
        raise Problem(404, str(exc)) from None
    except SerializationError as exc:
        status = 413 if "payload limit" in str(exc) else 400
        raise Problem(status, f"Cannot send the arguments of query {name!r}: {exc}") from None
    except QueryError as exc:
        extra: dict[str, Any] = {"reason": exc.reason}
        if exc.reason == "failed" and exc.cause is not None:
            extra["cause"] = {"type": exc.cause.type, "message": exc.cause.message}
        raise Problem(STATUS.get(exc.reason, 400), str(exc), **extra) from None
    return json_response({"result": s.plain(value, f"the result of query {name!r}")})


ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/workflows/{id}/query/{name}",
        "queryWorkflow",
        "Ask a query the workflow registered (durable.on_query): its function's value for "
        "`args`, on the run's current state; nothing is written to the run",
        query,
        {200: ("The query's value", s.obj({"result": s.VALUE}, ("result",)))},
        params=[
            Param("id", "path", s.ID, "workflow id", required=True),
            Param("name", "path", s.ID, "the query's name", required=True),
            Param(
                "timeout",
                "query",
                {"type": "number", "minimum": 0.001, "maximum": MAX_QUERY_WAIT},
                f"seconds to wait for a worker's answer (default {DEFAULT_QUERY_WAIT:g}, "
                f"at most {MAX_QUERY_WAIT:g})",
            ),
        ],
        body=s.obj(
            {"args": {**s.array(s.VALUE), "description": "the query function's arguments"}},
            closed=True,
        ),
        problems=(400, 404, 413, 422, 504),
        tags=["workflows"],
    ),
)
