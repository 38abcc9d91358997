"""Updates outside the engine: the caller's side (send one, wait for its outcome), the
worker's screening of update items (`admit`, `answer_closed`), and the outcome's format.

``handle.update(name, *args, update_id=None)`` (`send_update`):

1. If the workflow already holds an outcome for ``update_id`` (a retry after a lost
   connection), that outcome is the answer: nothing is sent, nothing runs again.
2. Otherwise the request goes to the workflow's inbox as an ``update_accepted`` item (the
   arguments as ``{"args": [...], "kwargs": {}}``, checked to encode here). A closed run
   takes nothing: `UpdateRejected` (``WorkflowClosed``), nothing written.
3. The worker holding the run screens it against the live state (`admit`,
   `durable.handlers`): an id admitted before (by this run, or answered by one it
   continued from) is dropped; an unknown name, arguments that do not fit or a validator's
   raise is a rejection written to the ``updates`` table only; an admitted one is
   journaled and its handler runs. The handler's end writes its outcome with the step that
   journals it.
4. The caller waits on the workflow's run topic for the outcome row. A run that closes or
   continues as new before the handler ended answers with `UpdateFailed` (``WorkflowClosed``),
   written by the closing step; a run closed from outside (terminated) is seen as closed
   with no outcome, and answered the same way. So a caller never hangs on a closed run.

An outcome is an envelope of ``{"status": "completed", "result": <payload>}``, or
``{"status": "failed" | "rejected", "error": <RemoteError map>}``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any

from . import journal, payload
from .errors import RemoteError, UpdateFailed, UpdateRejected, WorkflowNotFound
from .store import CLOSED_STATUSES, StepCommit, run_topic

if TYPE_CHECKING:
    from .client import WorkflowHandle
    from .engine import WorkflowRun

__all__ = [
    "UPDATE_POLL",
    "admit",
    "answer_closed",
    "completed",
    "failed",
    "outcome",
    "raise_or_return",
    "rejected",
    "send_update",
    "unanswered",
]

UPDATE_POLL = 5.0  # most seconds between re-reads while waiting (wake-ups come sooner)


def completed(result: bytes | None) -> bytes:
    """The outcome of an update whose handler returned ``result`` (a payload)."""
    return payload.envelope({"status": "completed", "result": result or payload.encode(None)})


def failed(error: RemoteError) -> bytes:
    """The outcome of an update whose handler raised, or whose run closed first."""
    return payload.envelope({"status": "failed", "error": error.to_dict()})


def rejected(error: RemoteError) -> bytes:
    """The outcome of an update refused before anything was journaled."""
    return payload.envelope({"status": "rejected", "error": error.to_dict()})


def unanswered(name: object, status: str) -> bytes:
    """The outcome of an update a closing run (``status``) will never answer."""
    error = RemoteError(
        "WorkflowClosed",
        f"the run closed ({status}) before update {name!r} was answered; wait for running "
        "handlers with durable.all_handlers_finished() before the workflow returns",
    )
    return failed(error)


def outcome(rec: journal.UpdateCompleted) -> bytes:
    """The outcome an ``update_completed`` command records."""
    if rec.failure is None:
        return completed(rec.result)
    return failed(RemoteError.from_dict(rec.failure))


def answer_closed(commit: StepCommit, data: bytes, status: str) -> None:
    """Answer an update item that reached a run closed (``status``) before taking it."""
    item = payload.decode(data)
    commit.updates.setdefault(str(item.get("id")), unanswered(item.get("name"), status))


def admit(
    engine: WorkflowRun, item: dict[str, Any], commit: StepCommit, known: bytes | None
) -> bool:
    """Whether the worker journals an update item, screened against the live state: not
    when its id has an outcome already (``known``: answered by a run this one continued
    from), nor when this run admitted it before, nor when `WorkflowRun.screen_update`
    rejects it (no such handler, arguments that do not fit, the validator raised), in
    which case the rejection is the outcome ``commit`` writes."""
    if known is not None:
        return False
    verdict = engine.screen_update(item)
    if isinstance(verdict, RemoteError):
        commit.updates[str(item.get("id"))] = rejected(verdict)
        return False
    return verdict


def raise_or_return(outcome: bytes, workflow_id: str, name: str, update_id: str) -> Any:
    """The result an outcome holds, or the error it says (`UpdateRejected`/`UpdateFailed`)."""
    data = payload.decode(outcome, what=f"outcome of update {name!r}")
    status = data.get("status")
    if status == "completed":
        return payload.decode(data["result"], what=f"result of update {name!r}")
    error = RemoteError.from_dict(data.get("error") or {})
    where = f"Update {name!r} (id {update_id!r}) of workflow {workflow_id!r}"
    if status == "rejected":
        raise UpdateRejected(
            f"{where} was rejected: {error.message}", error, workflow_id, update_id
        )
    raise UpdateFailed(f"{where} failed: {error}", error, workflow_id, update_id)


async def send_update(
    handle: WorkflowHandle[Any],
    name: str,
    args: tuple[Any, ...],
    update_id: str | None = None,
    timeout: float | None = None,
) -> Any:
    """See `durable.client.WorkflowHandle.update` (the steps are in the module docstring)."""
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"An update name must be a non-empty str, got {name!r}; the workflow handles it "
            "with durable.on_update(name, handler), which takes a str too."
        )
    if update_id is None:
        update_id = str(uuid.uuid4())
    elif not isinstance(update_id, str) or not update_id:
        raise TypeError(f"update_id must be a non-empty str, got {update_id!r}")
    what = f"arguments of update {name!r}"
    encoded = payload.encode({"args": list(args), "kwargs": {}}, what=what)
    payload.decode(encoded, what=f"{what} (checked before sending them)")
    client = handle.client
    store = await client._open()
    workflow_id = handle.id
    known = await store.read_update(workflow_id, update_id)
    if known is not None:
        return raise_or_return(known, workflow_id, name, update_id)
    item = journal.UpdateAccepted(update_id, name, encoded)
    went = await store.send(workflow_id, item.KIND, journal.encode(item), client.clock.now())
    if went is None:
        run = await store.get_run(workflow_id)
        status = run.status if run is not None else "closed"
        error = RemoteError(
            "WorkflowClosed",
            f"workflow {workflow_id!r} has closed ({status}); nothing was sent. Updates "
            "reach open runs only.",
        )
        raise UpdateRejected(
            f"Update {name!r} (id {update_id!r}) was not delivered: {error.message}",
            error,
            workflow_id,
            update_id,
        )
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        mark = store.watermark()
        outcome = await store.read_update(workflow_id, update_id)
        if outcome is not None:
            return raise_or_return(outcome, workflow_id, name, update_id)
        run = await store.get_run(workflow_id)
        if run is None:
            raise WorkflowNotFound(
                f"Workflow {workflow_id!r} was deleted while update {name!r} waited."
            )
        if run.status in CLOSED_STATUSES and run.status != "continued_as_new":
            # The step that closed the run wrote the outcomes it owed: read once more.
            outcome = await store.read_update(workflow_id, update_id)
            if outcome is not None:
                return raise_or_return(outcome, workflow_id, name, update_id)
            error = RemoteError(
                "WorkflowClosed",
                f"workflow {workflow_id!r} closed ({run.status}) before update {name!r} was "
                "answered",
            )
            raise UpdateFailed(
                f"Update {name!r} (id {update_id!r}) of workflow {workflow_id!r} failed: {error}",
                error,
                workflow_id,
                update_id,
            )
        wait = UPDATE_POLL
        if deadline is not None:
            wait = min(wait, deadline - loop.time())
            if wait <= 0:
                raise TimeoutError(
                    f"Update {name!r} (id {update_id!r}) of workflow {workflow_id!r} has no "
                    f"outcome after {timeout}s; it may still complete: call again with the "
                    "same update_id to get its outcome."
                )
        if client._waiter is not None:  # time skipping (durable.testing)

            async def answered() -> bool:
                return await store.read_update(workflow_id, update_id) is not None

            await client._waiter(handle, answered)
        else:
            await store.wait([run_topic(workflow_id)], wait, since=mark)
