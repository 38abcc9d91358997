"""The task endpoints (DESIGN §7): activities served by programs in other languages, and
external completion by token.

A program in any language long-polls ``POST /v1/queues/{queue}/poll`` for the activity
tasks scheduled with ``durable.call("name", ..., queue=...)``, then heartbeats, completes
or fails each by its token (`durable.Client.poll_tasks`, `heartbeat_task`, `complete`,
`fail`). The same token endpoints complete an external wait (``durable.external``).
``POST /v1/tasks/complete`` completes many tokens in one request (a poller that got a batch
completes it at once): the store writes them together, and each gets its own answer.

Answers: an unknown or malformed token is 404; a token of an attempt that is no longer
current (retried after its lease ran out, cancelled, the run closed) is 409 with the
``outcome`` already stored; completing the same attempt twice is 200 both times.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from ..errors import SerializationError, StaleTask, TaskNotFound
from . import schemas as s
from .problems import PROBLEM_SCHEMA, Problem, problem_body
from .routing import Call, Endpoint, Param, json_response

__all__ = ["ENDPOINTS", "MAX_COMPLETIONS", "MAX_TASKS", "MAX_WAIT_MS"]

MAX_WAIT_MS = 30_000  # longest poll; a worker polls again after an empty answer
MAX_TASKS = 100  # most tasks one poll hands out
MAX_COMPLETIONS = 1000  # most tokens one batch completion takes


def _task_problem(exc: Exception, token: str) -> Problem:
    if isinstance(exc, TaskNotFound):
        return Problem(
            404,
            f"{exc} Use the token exactly as the poll (or durable.external) gave it.",
        )
    if isinstance(exc, StaleTask):
        return Problem(409, str(exc), outcome=s.plain(exc.outcome))
    raise exc


def _task(task: Any) -> dict[str, Any]:
    return {
        "token": task.token,
        "name": task.name,
        "args": s.plain(list(task.args)),
        "attempt": task.attempt,
        "workflow_id": task.workflow_id,
        "run_id": task.run_id,
        "queue": task.queue,
        "deadline": task.deadline.isoformat() if task.deadline is not None else None,
        "heartbeat_timeout": task.heartbeat_timeout,
        "heartbeat_details": s.plain(task.heartbeat_details),
    }


async def poll(call: Call) -> Response:
    body = call.body
    wait = body.get("wait_ms", 0) / 1000

    async def fetch() -> list[Any]:
        return await call.service.client.poll_tasks(
            call.path["queue"],
            worker=body["worker"],
            names=body.get("names"),
            max_tasks=int(body.get("max_tasks", 1)),
            wait=wait,
        )

    try:
        if wait > 0:
            got = await call.service.unless_closing(fetch)
            tasks = got[0] if got else []
        else:
            tasks = await fetch()
    except (ValueError, TypeError) as exc:  # what Client.poll_tasks refuses
        raise Problem(400, f"Cannot poll: {exc}.") from None
    return json_response([_task(t) for t in tasks])


async def heartbeat(call: Call) -> Response:
    token = call.path["token"]
    try:
        cancel = await call.service.client.heartbeat_task(token, call.body.get("details"))
    except (TaskNotFound, StaleTask) as exc:
        raise _task_problem(exc, token) from None
    except SerializationError as exc:
        raise Problem(400, f"Cannot record the heartbeat details: {exc}") from None
    return json_response({"cancel_requested": bool(cancel)})


async def complete(call: Call) -> Response:
    token = call.path["token"]
    try:
        await call.service.client.complete(token, call.body.get("result"))
    except (TaskNotFound, StaleTask) as exc:
        raise _task_problem(exc, token) from None
    except SerializationError as exc:
        status = 413 if "payload limit" in str(exc) else 400
        raise Problem(status, f"Cannot accept the result: {exc}") from None
    return json_response({"token": token, "status": "completed"})


async def _complete_one(call: Call, token: str, result: Any) -> dict[str, Any]:
    """One member of a batch completion: as `complete` answers it, a problem in its body."""
    try:
        await call.service.client.complete(token, result)
    except (TaskNotFound, StaleTask) as exc:
        refused = _task_problem(exc, token)
    except SerializationError as exc:
        status = 413 if "payload limit" in str(exc) else 400
        refused = Problem(status, f"Cannot accept the result: {exc}")
    else:
        return {"token": token, "status": "completed"}
    return {
        "token": token,
        "status": "refused",
        "problem": problem_body(refused.status, refused.detail, **refused.extra),
    }


async def complete_many(call: Call) -> Response:
    # Concurrent completions are written together (one transaction on SQLite, a pooled
    # few on PostgreSQL); the answers keep the order of the request.
    answers = await asyncio.gather(
        *(_complete_one(call, item["token"], item.get("result")) for item in call.body["tasks"])
    )
    return json_response({"results": list(answers)})


async def fail(call: Call) -> Response:
    token = call.path["token"]
    error = call.body["error"]
    try:
        await call.service.client.fail(
            token, error, non_retryable=bool(call.body.get("non_retryable", False))
        )
    except (TaskNotFound, StaleTask) as exc:
        raise _task_problem(exc, token) from None
    except SerializationError as exc:
        raise Problem(400, f"Cannot accept the error's details: {exc}") from None
    return json_response({"token": token, "status": "failed"})


_TOKEN = Param("token", "path", s.ID, "the task's token, as the poll gave it", required=True)
_DONE = s.obj(
    {"token": {"type": "string"}, "status": {"type": "string", "enum": ["completed", "failed"]}},
    ("token", "status"),
)
_TASK = s.obj(
    {
        "token": {"type": "string"},
        "name": {"type": "string"},
        "args": s.array(s.VALUE),
        "attempt": {"type": "integer"},
        "workflow_id": {"type": "string"},
        "run_id": {"type": "string"},
        "queue": {"type": "string"},
        "deadline": s.NULL_TIME,
        "heartbeat_timeout": {"type": ["number", "null"]},
        "heartbeat_details": s.VALUE,
    },
    ("token", "name", "args", "attempt", "workflow_id", "deadline", "heartbeat_timeout"),
    description="An activity attempt to run: finish it by its token before its deadline",
)
_TAG = ["tasks"]

ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/queues/{queue}/poll",
        "pollTasks",
        "Long-poll activity tasks of a queue (for workers in other languages)",
        poll,
        {200: ("The tasks now leased to this worker (none if the wait ran out)", s.array(_TASK))},
        params=[Param("queue", "path", s.ID, "the queue durable.call(..., queue=) named", True)],
        body=s.obj(
            {
                "worker": {
                    **s.ID,
                    "pattern": "^(?!durable:)",
                    "description": "who polls, e.g. host and process (shown on the attempts; "
                    "names starting with 'durable:' are reserved)",
                },
                "names": {**s.array(s.ID), "minItems": 1, "description": "only these activities"},
                "max_tasks": {"type": "integer", "minimum": 1, "maximum": MAX_TASKS},
                "wait_ms": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_MS},
            },
            ("worker",),
            closed=True,
        ),
        body_required=True,
        problems=(400,),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/tasks/{token}/heartbeat",
        "heartbeatTask",
        "Say the task is alive (with progress details); learn if it should stop",
        heartbeat,
        {
            200: (
                "Recorded",
                s.obj({"cancel_requested": {"type": "boolean"}}, ("cancel_requested",)),
            )
        },
        params=[_TOKEN],
        body=s.obj({"details": s.VALUE}, closed=True),
        problems=(400, 404, 409),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/tasks/{token}/complete",
        "completeTask",
        "Complete a task or an external wait with its result (twice is harmless)",
        complete,
        {200: ("Completed", _DONE)},
        params=[_TOKEN],
        body=s.obj({"result": s.VALUE}, closed=True),
        problems=(400, 404, 409, 413),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/tasks/complete",
        "completeTasks",
        "Complete many tasks or external waits at once, each with its result",
        complete_many,
        {
            200: (
                "What became of each, in the order sent: completed (twice is harmless), or "
                "refused with the problem its own completion would have answered (404, 409 "
                "with the stored outcome, 400, 413)",
                s.obj(
                    {
                        "results": s.array(
                            s.obj(
                                {
                                    "token": {"type": "string"},
                                    "status": {
                                        "type": "string",
                                        "enum": ["completed", "refused"],
                                    },
                                    "problem": PROBLEM_SCHEMA,
                                },
                                ("token", "status"),
                            )
                        )
                    },
                    ("results",),
                ),
            )
        },
        body=s.obj(
            {
                "tasks": {
                    **s.array(
                        s.obj(
                            {
                                "token": {**s.ID, "description": "a task's token"},
                                "result": s.VALUE,
                            },
                            ("token",),
                            closed=True,
                        )
                    ),
                    "minItems": 1,
                    "maxItems": MAX_COMPLETIONS,
                    "description": "the tokens to complete, each with its result",
                }
            },
            ("tasks",),
            closed=True,
        ),
        body_required=True,
        problems=(400, 413),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/tasks/{token}/fail",
        "failTask",
        "Fail a task (retried per its policy unless non_retryable) or an external wait",
        fail,
        {200: ("Failed", _DONE)},
        params=[_TOKEN],
        body=s.obj(
            {
                "error": s.obj(
                    {
                        "type": {**s.ID, "description": "a name for the kind of failure"},
                        "message": {"type": "string"},
                        "details": s.VALUE,
                    },
                    ("type", "message"),
                    closed=True,
                ),
                "non_retryable": {"type": "boolean"},
            },
            ("error",),
            closed=True,
        ),
        body_required=True,
        problems=(400, 404, 409),
        tags=_TAG,
    ),
)
