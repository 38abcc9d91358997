"""The run page's update form (``POST /runs/{id}/update``): send an update with JSON
arguments and show its outcome on a page of its own (the handler's result, its error, or
why it was rejected). The form is ``templates/update_form.html``, included in the run page;
the outcome page is ``templates/update.html``; `durable.console.pages` routes the POST."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from ..cli import render
from ..client import Client
from ..errors import (
    RemoteError,
    SerializationError,
    UpdateFailed,
    UpdateRejected,
    WorkflowNotFound,
)
from ..updates import send_update

__all__ = ["UPDATE_WAIT", "Sent", "send"]

UPDATE_WAIT = 10.0  # seconds the page waits for the handler (it goes on after)


@dataclass(frozen=True)
class Sent:
    """What became of an update sent from the console, as its page shows it."""

    status: int  # the page's HTTP status
    name: str
    update_id: str
    outcome: str  # completed | failed | rejected | pending | invalid | missing
    result: str = ""  # the result as pretty JSON (completed)
    why: str = ""  # what went wrong, in words
    error: RemoteError | None = None

    def context(self) -> dict[str, Any]:
        """The template's variables."""
        return {
            "name": self.name,
            "update_id": self.update_id,
            "outcome": self.outcome,
            "result": self.result,
            "why": self.why,
            "error": self.error,
        }


async def send(client: Client, workflow_id: str, fields: dict[str, str]) -> Sent:
    """Send the update the form describes (``name``, ``args`` as a JSON array)."""
    name = fields.get("name", "").strip()
    update_id = fields.get("update_id", "").strip() or str(uuid.uuid4())
    text = fields.get("args", "").strip() or "[]"

    def invalid(why: str) -> Sent:
        return Sent(400, name, update_id, "invalid", why=why)

    if not name:
        return invalid("Give the update's name (what the workflow registered with on_update).")
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        return invalid(
            f"The arguments are not JSON ({exc.msg}): {text[:80]!r}. Give a JSON array of "
            'the handler\'s arguments, like ["apple", 2].'
        )
    if not isinstance(args, list):
        return invalid(f'Give the arguments as a JSON array, like ["apple", 2], not {text[:80]!r}.')
    handle = client.get_handle(workflow_id)
    try:
        value = await send_update(handle, name, tuple(args), update_id, timeout=UPDATE_WAIT)
    except WorkflowNotFound as exc:
        return Sent(404, name, update_id, "missing", why=str(exc))
    except (SerializationError, TypeError) as exc:
        return invalid(str(exc))
    except UpdateRejected as exc:
        return Sent(409, name, update_id, "rejected", why=str(exc), error=exc.cause)
    except UpdateFailed as exc:
        return Sent(200, name, update_id, "failed", why=str(exc), error=exc.cause)
    except TimeoutError:
        why = (
            f"The handler is still running after {UPDATE_WAIT:g}s; it goes on. Its outcome "
            "is kept: `durable update` or the HTTP API with this update id returns it."
        )
        return Sent(202, name, update_id, "pending", why=why)
    return Sent(200, name, update_id, "completed", result=render.dumps(value, indent=2))
