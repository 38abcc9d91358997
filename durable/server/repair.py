"""The repair endpoints (DESIGN §8; the rules: `durable.repair`): retry a failed,
terminated or parked run where it stopped, and fork a run from a prefix of its journal.

- retry answers 200 with the run re-opened (``{"id", "run_id", "status"}``), 404 for an
  unknown id, and 409 when the run is in a state that has nothing to retry (open and not
  parked, completed, cancelled), saying what to do instead.
- fork answers 201 with the new workflow (``{"id", "run_id", "status"}``), 404 for an
  unknown id, and 409 for an ``at_seq`` where this run's journal cannot be cut (past its
  end, its ending, or between an input and its commands: the message names the nearest
  seqs that work; well-formed, so not a 400, but at odds with the run as it is) or a new
  id that is taken.
"""

from __future__ import annotations

from starlette.responses import Response

from ..errors import RepairError, WorkflowAlreadyExists, WorkflowNotFound
from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, json_response
from .workflows import _ID

__all__ = ["ENDPOINTS"]


async def _steered(call: Call, workflow_id: str, status: int) -> Response:
    store = await call.service.store()
    run = await store.get_run(workflow_id)
    if run is None:  # pruned meanwhile
        raise Problem(404, f"No workflow with id {workflow_id!r}.")
    body = {"id": run.workflow_id, "run_id": run.run_id, "status": run.status}
    return json_response(body, status)


async def retry(call: Call) -> Response:
    workflow_id = call.path["id"]
    handle = call.service.client.get_handle(workflow_id)
    try:
        await handle.retry(call.body.get("reason") or "retried over HTTP")
    except WorkflowNotFound as exc:
        raise Problem(404, str(exc)) from None
    except RepairError as exc:
        raise Problem(409, str(exc)) from None
    return await _steered(call, workflow_id, 200)


async def fork(call: Call) -> Response:
    workflow_id = call.path["id"]
    at_seq = int(call.body["at_seq"])
    try:
        handle = await call.service.client.fork(
            workflow_id, at_seq=at_seq, new_id=call.body.get("id")
        )
    except WorkflowNotFound as exc:
        raise Problem(404, str(exc)) from None
    except WorkflowAlreadyExists as exc:
        raise Problem(409, str(exc)) from None
    except RepairError as exc:
        raise Problem(409, str(exc)) from None
    return await _steered(call, handle.id, 201)


_RUN = s.obj(
    {"id": {"type": "string"}, "run_id": {"type": "string"}, "status": {"type": "string"}},
    ("id", "run_id", "status"),
)
_TAG = ["workflows"]

ENDPOINTS = (
    Endpoint(
        "POST",
        "/v1/workflows/{id}/retry",
        "retryWorkflow",
        "Re-open a failed or terminated run where it stopped: its failed step runs again, "
        "completed steps do not; a parked run is tried again now",
        retry,
        {200: ("Re-opened; workers take it up", _RUN)},
        params=[_ID],
        body=s.obj(
            {"reason": {"type": "string", "description": "kept in the run_retried entry"}},
            closed=True,
        ),
        problems=(400, 404, 409),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/workflows/{id}/fork",
        "forkWorkflow",
        "Start a new workflow from the first `at_seq` journal entries of this one: those "
        "steps are reused, and from there the code deployed now runs",
        fork,
        {201: ("Forked: the new workflow", _RUN)},
        params=[_ID],
        body=s.obj(
            {
                "at_seq": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "journal entries to keep (seqs: GET .../history)",
                },
                "id": {**s.ID, "description": "the new workflow id (default: {id}-fork-XXXXXXXX)"},
            },
            ("at_seq",),
            closed=True,
        ),
        body_required=True,
        problems=(400, 404, 409),
        tags=_TAG,
    ),
)
