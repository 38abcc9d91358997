"""The console's query form (`durable.queries`): the run page shows a small form (a
query's name and its arguments as a JSON array); ``POST /runs/{id}/query`` (CSRF-checked by
`pages.act`) asks the run's query and shows the answer, or why there is none, on a page of
its own with the form again, so that it works without JavaScript and never disturbs the
run page's live part. Every value is shown through the autoescaping templates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..client import Client
from ..errors import QueryError, SerializationError

__all__ = ["CONSOLE_QUERY_WAIT", "ask"]

CONSOLE_QUERY_WAIT = 10.0  # seconds the console waits for a worker's answer


async def ask(client: Client, workflow_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """Ask query ``fields["query"]`` of ``workflow_id`` with ``fields["query_args"]`` (a JSON
    array); the context of the answer page: ``answered`` and ``result``, or ``error`` and
    ``reason``. Raises `WorkflowNotFound` (shown as a missing run)."""
    name = fields.get("query", "").strip()
    text = fields.get("query_args", "").strip()
    out: dict[str, Any] = {"workflow_id": workflow_id, "query": name, "args_text": text}
    if not name:
        return {
            **out,
            "error": "Give the query's name (one the workflow registers with durable.on_query).",
            "reason": "refused",
        }
    try:
        args = json.loads(text) if text else []
    except json.JSONDecodeError as exc:
        return {
            **out,
            "error": f"The arguments are not JSON ({exc.msg}): {text[:80]!r}. "
            'Give a JSON array, like ["apple", 2], or leave it empty.',
            "reason": "refused",
        }
    if not isinstance(args, list):
        return {
            **out,
            "error": f"The arguments must be a JSON array, like [{text[:40]}], "
            "one value per argument; or leave it empty.",
            "reason": "refused",
        }
    handle = client.get_handle(workflow_id)
    try:
        result = await handle.query(name, *args, timeout=CONSOLE_QUERY_WAIT)
    except QueryError as exc:
        return {**out, "error": str(exc), "reason": exc.reason}
    except SerializationError as exc:
        return {**out, "error": str(exc), "reason": "refused"}
    return {**out, "answered": True, "result": result}
