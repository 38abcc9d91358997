"""The retention endpoint: ``POST /v1/prune`` deletes the runs closed longer ago than
``older_than_seconds`` (as ``client.prune`` and ``durable prune`` do; see
`durable.retention`) and answers how many went."""

from __future__ import annotations

from starlette.responses import Response

from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, json_response

__all__ = ["ENDPOINTS"]


async def prune(call: Call) -> Response:
    older_than: float = call.body["older_than_seconds"]
    try:
        deleted = await call.service.client.prune(older_than=older_than)
    except ValueError as exc:  # zero, negative or infinite (durable.retention)
        raise Problem(400, f"{exc}.") from None
    return json_response({"deleted": deleted, "older_than_seconds": older_than})


_AGE = {
    "type": "number",
    "exclusiveMinimum": 0,  # refused by the handler, which says why (durable.retention)
    "description": "runs closed longer ago than this many seconds are deleted (> 0; "
    "2592000 is 30 days)",
}

ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/prune",
        "pruneRuns",
        "Delete the runs closed longer ago than `older_than_seconds`, with their journals "
        "(never an open run, nor the child of an open parent)",
        prune,
        {
            200: (
                "How many runs were deleted",
                s.obj(
                    {"deleted": {"type": "integer"}, "older_than_seconds": {"type": "number"}},
                    ("deleted", "older_than_seconds"),
                ),
            )
        },
        body=s.obj({"older_than_seconds": _AGE}, ("older_than_seconds",), closed=True),
        body_required=True,
        problems=(400,),
        tags=["retention"],
    ),
)
