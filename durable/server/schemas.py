"""The JSON shapes the API sends and takes, as JSON Schema: checked on the way in
(`durable.server.routing.check`) and published in ``/openapi.json``.

Values (arguments, results, signal values, step inputs and outputs) are in their JSON
forms (`durable.jsonform`): any JSON, so their schema is ``{}``. `plain` makes them so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ..errors import SerializationError
from ..jsonform import to_json

__all__ = [
    "DESCRIPTION",
    "ERROR",
    "EVENT",
    "ID",
    "STEP",
    "VALUE",
    "array",
    "obj",
    "plain",
]

VALUE: dict[str, Any] = {"description": "any JSON value (see the JSON forms in the README)"}
ID: dict[str, Any] = {"type": "string", "minLength": 1}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
NULL_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}


def obj(
    properties: Mapping[str, dict[str, Any]],
    required: tuple[str, ...] = (),
    *,
    closed: bool = False,
    description: str = "",
) -> dict[str, Any]:
    """An object schema; ``closed``: other members are refused."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(properties)}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def array(items: dict[str, Any]) -> dict[str, Any]:
    """An array schema."""
    return {"type": "array", "items": items}


#: A failure as recorded (`durable.errors.RemoteError`).
ERROR: dict[str, Any] = obj(
    {
        "type": {"type": "string"},
        "message": {"type": "string"},
        "traceback": {"type": "string"},
        "details": VALUE,
        "non_retryable": {"type": "boolean"},
        "cause": {"type": ["object", "null"], "description": "the error that caused it"},
    },
    ("type", "message"),
    description="A recorded failure: its type, message, traceback and details.",
)
NULL_ERROR: dict[str, Any] = {**ERROR, "type": ["object", "null"]}

_PENDING = obj(
    {
        "kind": {"type": "string", "description": "activity, timer, child, signal, external, ..."},
        "name": {"type": "string"},
        "attempt": {"type": "integer"},
        "scheduled_at": TIME,
        "last_error": NULL_ERROR,
    },
    ("kind", "name", "attempt", "scheduled_at"),
)

#: A run as `WorkflowHandle.describe` and `Client.list` describe it.
DESCRIPTION: dict[str, Any] = obj(
    {
        "id": {"type": "string"},
        "run_id": {"type": "string"},
        "name": {"type": "string"},
        "status": {
            "type": "string",
            "enum": [
                "pending",
                "running",
                "completed",
                "failed",
                "cancelled",
                "terminated",
                "continued_as_new",
            ],
        },
        "queue": {"type": "string"},
        "input": VALUE,
        "result": VALUE,
        "error": NULL_ERROR,
        "created_at": TIME,
        "closed_at": NULL_TIME,
        "history_length": {"type": "integer"},
        "pending": {**array(_PENDING), "description": "steps in flight (describe only)"},
        "problem": {"type": ["string", "null"], "description": "why it cannot progress"},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    ("id", "run_id", "name", "status", "queue", "created_at"),
    description="A workflow run: status, times, input, result or error.",
)

_ATTEMPT = obj(
    {
        "number": {"type": "integer"},
        "started_at": NULL_TIME,
        "closed_at": NULL_TIME,
        "worker": {"type": ["string", "null"]},
        "error": NULL_ERROR,
        "heartbeat": VALUE,
    },
    ("number",),
)

#: One step of a run (`durable.steps.Step`).
STEP: dict[str, Any] = obj(
    {
        "seq": {"type": "integer"},
        "kind": {
            "type": "string",
            "description": "activity, compensation (a saga's undo), child, timer, signal, "
            "external, publish, marker, damaged (kinds may be added)",
        },
        "name": {"type": "string"},
        "branch": {"type": "string"},
        "group": {"type": ["integer", "null"]},
        "status": {
            "type": "string",
            "enum": [
                "scheduled",
                "running",
                "retrying",
                "waiting",
                "completed",
                "failed",
                "cancelled",
            ],
        },
        "attempts": array(_ATTEMPT),
        "scheduled_at": NULL_TIME,
        "started_at": NULL_TIME,
        "closed_at": NULL_TIME,
        "input": VALUE,
        "output": VALUE,
        "error": NULL_ERROR,
        "logs": array(VALUE),
        "child_id": {"type": ["string", "null"]},
    },
    ("seq", "kind", "name", "status"),
    description="One durable operation of a run, as people see it.",
)

#: One journal entry, decoded.
EVENT: dict[str, Any] = obj(
    {
        "seq": {"type": "integer"},
        "kind": {"type": "string"},
        "time": TIME,
        "data": {"type": "object"},
    },
    ("seq", "kind", "time", "data"),
)


def plain(value: Any, what: str = "value") -> Any:
    """``value`` in its JSON form (`durable.jsonform.to_json`); a part that has none (a NaN,
    an unsupported object from an old payload) becomes its ``repr`` rather than failing
    the whole answer."""
    try:
        return to_json(value, what=what)
    except SerializationError:
        pass
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return repr(value)
