"""Parent-close policies: what happens to a run's children still running when it closes.

A child workflow's policy is chosen where it is started,
``durable.call(child, ..., parent_close=...)``, and recorded in its ``child_started``
command (`journal.ChildStarted`), so replay and every closing path use the recorded value,
whatever the code says later:

- ``"cancel"`` (the default, and what journals recorded before policies existed mean):
  cancellation is requested; the child sees `asyncio.CancelledError` at its await point and
  may clean up (compensate) before it ends ``cancelled``.
- ``"terminate"``: the child is terminated, as ``handle.terminate`` does (no more of its
  code runs), and its own children get their policies in turn.
- ``"abandon"``: the child is left running; its result goes to no one.

The policy applies whenever the parent closes while the child runs: it completes, fails
(a timeout included), is cancelled, continues as new (the successor does not inherit its
predecessor's children: as in Temporal), or is terminated (``handle.terminate``, the CLI,
the HTTP API, the console, a schedule's ``terminate_other``).

Where it happens: when the code closes the run, the cancellation requests ride the
worker's closing commit (one transaction); children to terminate are terminated right
after that commit. When a client terminates the run, the policies are applied right after
the termination, from the journal of the run, which nothing can extend once it is closed.
Neither of these two follow-ups is in the parent's transaction: a process dying between
them leaves those children running. Terminating the parent again (a no-op for the parent
itself) applies its children's policies again, which finishes the job; so does
terminating the children by id.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from . import journal, payload
from .errors import RemoteError, WorkflowNotFound
from .rows import JournalEntry, RunRecord
from .store import CLOSED_STATUSES, Outgoing, Store

__all__ = ["OpenChild", "close_children", "open_children", "terminate_children", "terminate_run"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenChild:
    """A child a run started and has had no answer from: its workflow id, the run id the
    parent started it as, and its parent-close policy (one of `journal.PARENT_CLOSE`)."""

    workflow_id: str
    run_id: str
    parent_close: str


def open_children(entries: Iterable[JournalEntry]) -> list[OpenChild]:
    """The children started in ``entries`` (a run's journal) and not answered there, in the
    order they were started."""
    started: dict[str, journal.ChildStarted] = {}  # by run id, in order
    for entry in entries:
        rec = journal.decode(entry.kind, entry.data)
        if isinstance(rec, journal.ChildStarted):
            started[rec.run_id] = rec
        elif isinstance(rec, journal.ChildCompleted | journal.ChildFailed):
            key = rec.run_id if rec.run_id in started else None
            if key is None:  # an answer from a successor, or recorded before answers named
                # their run: the oldest open child of that id, as the engine matches it
                key = next((k for k, c in started.items() if c.id == rec.workflow_id), None)
            if key is not None:
                del started[key]
    return [OpenChild(c.id, c.run_id, c.parent_close) for c in started.values()]


async def terminate_run(store: Store, run: RunRecord, reason: str, now: float) -> bool:
    """Terminate ``run`` (telling its parent, if it has one), then apply its open
    children's policies. False when ``run`` was closed already; a run closed as
    ``terminated`` still has its children's policies applied (again: it is idempotent), so
    terminating again finishes what a process dying half-way left undone."""
    error = RemoteError("Terminated", reason)
    parent = None
    if run.parent_id is not None:
        item = journal.ChildFailed(run.workflow_id, error, "terminated", run.run_id)
        parent = Outgoing(run.parent_id, item.KIND, journal.encode(item), run_id=run.parent_run_id)
    done = run.status not in CLOSED_STATUSES and await store.terminate(
        run.run_id,
        entry_data=journal.encode(journal.WorkflowTerminated(reason)),
        error=payload.envelope(error.to_dict()),
        now=now,
        parent_item=parent,
    )
    if done or run.status == "terminated":
        why = f"parent workflow {run.workflow_id!r} was terminated: {reason}"
        await close_children(store, run.workflow_id, run.run_id, why, now)
    return done


async def close_children(
    store: Store, workflow_id: str, run_id: str, reason: str, now: float
) -> None:
    """Apply the parent-close policy of each open child of closed run ``run_id`` (of
    workflow ``workflow_id``), read from its journal."""
    entries = await store.read_journal(run_id)
    children = open_children(entries)
    doomed = [(c.workflow_id, c.run_id) for c in children if c.parent_close == "terminate"]
    for child in children:
        if child.parent_close == "cancel":
            item = journal.CancelRequested(reason)
            with contextlib.suppress(WorkflowNotFound):  # never created: nothing to cancel
                await store.send(
                    child.workflow_id, item.KIND, journal.encode(item), now, run_id=child.run_id
                )
    await terminate_children(store, run_id, doomed, reason, now)


async def terminate_children(
    store: Store,
    parent_run_id: str,
    children: Iterable[tuple[str, str]],
    reason: str,
    now: float,
) -> None:
    """Terminate each child ``(workflow id, run id)`` that run ``parent_run_id`` started:
    the run it started or, if that continued as new, its current successor; never a run
    that merely holds the same id (a stranger, which refused the child)."""
    for child_id, child_run in children:
        target = await store.get_run(child_id)
        if target is None or target.status in CLOSED_STATUSES:
            continue
        if target.run_id != child_run and target.parent_run_id != parent_run_id:
            continue
        logger.info("Terminating child %s of run %s: %s", child_id, parent_run_id, reason)
        await terminate_run(store, target, reason, now)
