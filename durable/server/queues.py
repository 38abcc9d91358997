"""The queue endpoints: what waits on each queue, and queue limits (`durable.limits`).

``GET /v1/queues`` lists the queues with work waiting or limits set; ``GET`` and ``PUT
/v1/queues/{queue}/limits`` read and replace a queue's limits (a limit left out or null is
removed; all of them: the queue runs unlimited). A rate limit is ``{"count": N, "per":
SECONDS}``: at most N task starts in any window of that many seconds.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..limits import MAX_PER, MAX_PRIORITY
from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, Param, json_response

__all__ = ["ENDPOINTS"]


async def list_queues(call: Call) -> Response:
    views = await call.service.client.list_queues()
    return json_response([view.to_json() for view in views])


async def get_limits(call: Call) -> Response:
    limits = await call.service.client.queue_limits(call.path["queue"])
    return json_response(limits.to_json())


def _whole(value: Any) -> Any:
    # JSON Schema's integer admits 1.0; QueueLimits wants an int.
    return int(value) if isinstance(value, float) and value.is_integer() else value


async def put_limits(call: Call) -> Response:
    body = call.body
    rate = body.get("rate") or {}
    try:
        limits = await call.service.client.set_queue_limits(
            call.path["queue"],
            concurrency=_whole(body.get("concurrency")),
            key_concurrency=_whole(body.get("key_concurrency")),
            rate=_whole(rate.get("count")),
            per=rate.get("per"),
        )
    except (ValueError, TypeError) as exc:
        raise Problem(
            400, f"Cannot set the limits of queue {call.path['queue']!r}: {exc}"
        ) from None
    return json_response(limits.to_json())


_COUNT: dict[str, Any] = {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_PRIORITY}
_RATE = s.obj(
    {
        "count": {**_COUNT, "type": "integer", "description": "at most this many task starts"},
        "per": {
            "type": "number",
            "minimum": 0.001,
            "maximum": MAX_PER,
            "description": "in any window of this many seconds",
        },
    },
    ("count", "per"),
    closed=True,
)
_LIMIT_FIELDS: dict[str, dict[str, Any]] = {
    "concurrency": {
        **_COUNT,
        "description": "at most this many activity tasks of the queue running at once",
    },
    "key_concurrency": {
        **_COUNT,
        "description": "at most this many running at once with the same key",
    },
    "rate": {**_RATE, "type": ["object", "null"], "description": "a rate limit, or null"},
}
_LIMITS = s.obj(
    {"queue": {"type": "string"}, **_LIMIT_FIELDS},
    ("queue", "concurrency", "key_concurrency", "rate"),
    description="A queue's limits, enforced by the database; null: no such limit",
)
_QUEUE = s.obj(
    {
        "queue": {"type": "string"},
        "tasks_waiting": {"type": "integer", "description": "activity tasks due, not started"},
        "tasks_delayed": {"type": "integer", "description": "tasks waiting for a retry"},
        "runs_waiting": {"type": "integer", "description": "runs a worker could take now"},
        "oldest_waiting_at": s.NULL_TIME,
        "limits": s.obj(_LIMIT_FIELDS, ("concurrency", "key_concurrency", "rate")),
    },
    ("queue", "tasks_waiting", "tasks_delayed", "runs_waiting", "oldest_waiting_at", "limits"),
)
_QUEUE_PARAM = Param("queue", "path", s.ID, "the queue's name", required=True)
_TAG = ["queues"]

ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/queues",
        "listQueues",
        "Queues with work waiting or limits set: depth and limits",
        list_queues,
        {200: ("The queues, by name", s.array(_QUEUE))},
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/queues/{queue}/limits",
        "getQueueLimits",
        "A queue's limits (all null: none)",
        get_limits,
        {200: ("The limits in force", _LIMITS)},
        params=[_QUEUE_PARAM],
        tags=_TAG,
    ),
    Endpoint(
        "PUT",
        "/v1/queues/{queue}/limits",
        "setQueueLimits",
        "Replace a queue's limits (one left out or null is removed)",
        put_limits,
        {200: ("The limits now in force", _LIMITS)},
        params=[_QUEUE_PARAM],
        body=s.obj(_LIMIT_FIELDS, closed=True),
        body_required=True,
        problems=(400,),
        tags=_TAG,
    ),
)
