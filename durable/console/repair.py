"""The console's repair actions (`durable.repair`): ``POST /runs/{id}/retry`` and
``POST /runs/{id}/fork``, from the run page's forms (CSRF-checked by `pages.act`).

Fork takes either ``at_seq`` (the run-level form: entries to keep) or ``step`` (a step's
"Fork from here": the journal is cut right after the commands issued with that step, so
the step and everything after it run again, and every step before it is reused).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..client import Client
from ..cuts import fork_points
from ..errors import RepairError, WorkflowNotFound
from .nodes import run_href

__all__ = ["ACTIONS", "act", "point_after"]

ACTIONS = ("retry", "fork")


def point_after(points: list[int], seq: int) -> int | None:
    """The first seq at or after ``seq`` the journal may be cut at, or ``None``."""
    return next((p for p in points if p >= seq), None)


def _whole(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise RepairError(f"{what} must be a whole number, not {text.strip()[:40]!r}.") from None


async def act(client: Client, workflow_id: str, action: str, fields: Mapping[str, str]) -> str:
    """Do ``action`` on ``workflow_id``; the URL to go to next. Raises `RepairError`
    (shown as the reason it was not done) and `WorkflowNotFound`."""
    if action == "retry":
        reason = fields.get("reason", "").strip() or "retried from the console"
        await client.get_handle(workflow_id).retry(reason)
        return f"{run_href(workflow_id)}?done=retry"
    new_id = fields.get("id", "").strip() or None
    if fields.get("step", "").strip():
        step = _whole(fields["step"], "The step")
        store = await client._open()
        run = await store.get_run(workflow_id)
        if run is None:
            raise WorkflowNotFound(f"No workflow with id {workflow_id!r}.")
        entries = await store.read_journal(run.run_id)
        at_seq = point_after(fork_points(entries), step)
        if at_seq is None:
            raise RepairError(
                f"Step {step} of {workflow_id!r} is not followed by a place its journal can "
                "be cut (it is how the run ended); fork at an earlier step."
            )
    else:
        at_seq = _whole(fields.get("at_seq", ""), "The seq to fork at")
    handle = await client.fork(workflow_id, at_seq=at_seq, new_id=new_id)
    return f"{run_href(handle.id)}?done=fork"
