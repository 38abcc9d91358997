"""``GET /v1/workflows/{id}/logs``: a run's step logs (`durable.steplogs`), a page at a time."""

from __future__ import annotations

from starlette.responses import Response

from ..steplogs import logs_of
from . import schemas as s
from .routing import Call, Endpoint, Param, json_response
from .workflows import _ID, _RUN_ID, _TAG, _run

__all__ = ["ENDPOINTS", "MAX_LOGS"]

MAX_LOGS = 5_000  # most records one page holds

_LOG = s.obj(
    {
        "id": {"type": "integer"},
        "seq": {"type": "integer"},
        "attempt": {"type": "integer", "description": "0: logged by workflow code"},
        "at": {"type": "string", "format": "date-time"},
        "level": {"type": "string"},
        "logger": {"type": "string"},
        "message": {"type": "string"},
    },
    ("id", "seq", "attempt", "at", "level", "logger", "message"),
)


async def logs(call: Call) -> Response:
    run = await _run(call, call.query["run_id"])
    store = await call.service.store()
    limit: int = call.query["limit"]
    rows = await store.read_logs(
        run.run_id, seq=call.query["seq"], after_id=call.query["after"], limit=limit + 1
    )
    page = logs_of(rows[:limit])
    return json_response(
        {
            "id": run.workflow_id,
            "run_id": run.run_id,
            "logs": [
                {
                    "id": g.id,
                    "seq": g.seq,
                    "attempt": g.attempt,
                    "at": g.at.isoformat(),
                    "level": g.level,
                    "logger": g.logger,
                    "message": g.message,
                }
                for g in page
            ],
            "next_after": page[-1].id if len(rows) > limit else None,
        }
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/workflows/{id}/logs",
        "workflowLogs",
        "What the run's activities and workflow code logged, a page at a time",
        logs,
        {
            200: (
                "Records with id > after, oldest first; next_after is null on the last page",
                s.obj(
                    {
                        "id": {"type": "string"},
                        "run_id": {"type": "string"},
                        "logs": s.array(_LOG),
                        "next_after": {"type": ["integer", "null"]},
                    },
                    ("id", "run_id", "logs", "next_after"),
                ),
            )
        },
        params=[
            _ID,
            _RUN_ID,
            Param("seq", "query", {"type": "integer", "minimum": 1}, "only this step's records"),
            Param(
                "after",
                "query",
                {"type": "integer", "minimum": 0, "default": 0},
                "records after this id (next_after of the previous page)",
            ),
            Param(
                "limit",
                "query",
                {"type": "integer", "minimum": 1, "maximum": MAX_LOGS, "default": 1000},
                f"at most this many (up to {MAX_LOGS})",
            ),
        ],
        problems=(400, 404),
        tags=_TAG,
    ),
)
