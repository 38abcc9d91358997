"""What a step writes besides its journal entries: the rows its commands imply (activity
tasks, leased at once to this worker when it serves them; external waits' rows; timers;
child runs; published values, tags, update outcomes), its effects (cancelled tasks, timers
and children), and what closing the run sends (its successor, its parent's answer).

`StepRows` is a part of `durable.stepping.RunStepping` (so of `durable.worker.Worker`),
kept apart for size: `RunStepping._step` calls these while it builds a
`durable.store.StepCommit`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from . import children, frozen, journal, payload, updates
from .clock import Clock
from .context import ActivityContext, ActivityInfo
from .definition import ActivityDefinition
from .engine import Command, WorkflowRun
from .errors import RemoteError
from .executor import Attempt
from .store import (
    EXTERNAL_OWNER,
    NEVER,
    TOPIC_LIMITS,
    NewRun,
    NewTask,
    NewTimer,
    Outgoing,
    StepCommit,
    Store,
)

if TYPE_CHECKING:
    from .stepping import Driver

__all__ = ["StepRows"]

logger = logging.getLogger("durable.worker")


class StepRows:
    """The rows and items a step's commands, effects and close put in its commit."""

    worker_id: str
    clock: Clock
    activities: dict[str, ActivityDefinition]
    queues: tuple[str, ...]
    lease_seconds: float
    _stopping: asyncio.Event
    _remote: dict[str, ActivityContext]
    _limited: frozenset[str] = frozenset()  # queues with limits: never run locally
    _limits_mark = 0  # the hub's watermark when `_limited` was read

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

        def _info(
            self,
            workflow_id: str,
            run_id: str,
            task_id: str,
            spec: dict[str, Any],
            attempt: int,
            details: bytes | None,
            scheduled_at: float,
        ) -> ActivityInfo: ...

    def _apply_commands(
        self,
        driver: Driver,
        engine: WorkflowRun,
        commands: list[Command],
        commit: StepCommit,
        now: float,
    ) -> list[Attempt]:
        run = driver.claimed.run if driver.claimed else None
        assert run is not None
        local: list[Attempt] = []
        limits_changed: bool | None = None  # since this worker last read them
        # Each command's journal entry (`_step` encoded its data): a task row's data is
        # the same bytes, not encoded again. Entries run gapless from expected_length + 1.
        entries, first = commit.entries, commit.expected_length + 1
        for cmd in commands:
            rec = cmd.record
            if isinstance(rec, journal.ActivityScheduled):
                task_id = journal.task_id(run.run_id, cmd.seq)
                adefn = self.activities.get(rec.name)
                # Served here: leased to this worker now and run here as soon as a slot is
                # free, so its result rides the run's next commit (no task-table round trip).
                owner = None
                # Not on a queue with limits: its tasks start only through claims, which obey
                # them. Nor while limits changed and were not read again yet (durable.limits).
                if adefn is not None and rec.queue in self.queues and limits_changed is None:
                    limits_changed = self.store.hub.pinned_since(TOPIC_LIMITS, self._limits_mark)
                if (
                    adefn is not None
                    and rec.queue in self.queues
                    and rec.queue not in self._limited
                    and not limits_changed
                    and not self._stopping.is_set()
                ):
                    owner = self.worker_id
                    spec = cmd.data
                    info = self._info(run.workflow_id, run.run_id, task_id, spec, 1, None, now)
                    ctx = ActivityContext(info, trace=run.trace)
                    attempt = {
                        "task_id": task_id,
                        "definition": adefn,
                        "spec": spec,
                        "attempt": 1,
                        "context": ctx,
                    }
                    local.append(frozen.build(Attempt, attempt))
                # `frozen.build`: one per activity, without 13 `object.__setattr__` calls.
                task = {
                    "task_id": task_id,
                    "run_id": run.run_id,
                    "workflow_id": run.workflow_id,
                    "seq": cmd.seq,
                    "name": rec.name,
                    "queue": rec.queue,
                    "data": entries[cmd.seq - first].data,
                    "visible_at": now,
                    "attempt": 1,
                    "lease_owner": owner,
                    "lease_expires_at": now + self.lease_seconds if owner else None,
                    "key": rec.key,
                    "priority": rec.priority,
                }
                commit.new_tasks.append(frozen.build(NewTask, task))
            elif isinstance(rec, journal.ExternalStarted):
                # Held by EXTERNAL_OWNER for ever: completing it is a fenced finish_task.
                commit.new_tasks.append(
                    NewTask(
                        task_id=journal.task_id(run.run_id, cmd.seq),
                        run_id=run.run_id,
                        workflow_id=run.workflow_id,
                        seq=cmd.seq,
                        name=rec.name,
                        queue=run.queue,
                        data=entries[cmd.seq - first].data,
                        visible_at=now,
                        lease_owner=EXTERNAL_OWNER,
                        lease_expires_at=NEVER,
                    )
                )
            elif isinstance(rec, journal.TimerStarted):
                fired = journal.encode(journal.TimerFired(cmd.seq))
                commit.new_timers.append(NewTimer(run.run_id, cmd.seq, rec.due, fired))
            elif isinstance(rec, journal.ChildStarted):
                commit.new_runs.append(
                    NewRun(
                        workflow_id=rec.id,
                        run_id=rec.run_id,
                        name=rec.name,
                        queue=rec.queue,
                        input=rec.args,
                        created_at=now,
                        parent_id=run.workflow_id,
                        parent_run_id=run.run_id,
                        timeout=rec.timeout,
                        trace=run.trace,  # a child's spans join its parent's trace
                    )
                )
            elif isinstance(rec, journal.Published):
                commit.published[rec.key] = rec.value
            elif isinstance(rec, journal.TagsSet):
                commit.tags.update(rec.tags)
            elif isinstance(rec, journal.UpdateCompleted):
                commit.updates[rec.id] = updates.outcome(rec)
        return local

    async def _terminate_children(
        self, workflow_id: str, run_id: str, doomed: list[tuple[str, str]], commit: StepCommit
    ) -> None:
        why = f"parent workflow {workflow_id!r} closed ({commit.status})"
        try:
            await children.terminate_children(self.store, run_id, doomed, why, self.clock.now())
        except Exception:  # the close is committed: the step goes on; say what was left
            logger.exception(
                "Run %s closed, but terminating its children %s failed: they run on "
                "(terminate them by id, or terminate the parent again)",
                run_id,
                [child for child, _ in doomed],
            )

    def _apply_effects(
        self, driver: Driver, engine: WorkflowRun, commit: StepCommit
    ) -> list[tuple[str, str]]:
        """Put the step's effects in ``commit``; return the children to terminate once it
        is committed (parent_close="terminate", `durable.children`)."""
        effects = engine.take_effects()
        run_id = driver.run_id
        for seq in effects.cancelled_activities:
            task_id = journal.task_id(run_id, seq)
            commit.cancelled_tasks.append(task_id)
            ctx = driver.local.get(task_id) or self._remote.get(task_id)
            if ctx is not None:
                ctx.cancelled = True
        commit.cancelled_timers.extend(effects.cancelled_timers)
        for child_id, child_run in effects.cancelled_children:
            # To the run this parent started (or its successor): never to a stranger that
            # holds the id because this child was refused.
            cancel = journal.CancelRequested("parent cancelled")
            commit.outgoing.append(
                Outgoing(child_id, cancel.KIND, journal.encode(cancel), run_id=child_run)
            )
        return effects.terminated_children or []  # not the engine's own (empty) list

    def _close(self, driver: Driver, engine: WorkflowRun, commit: StepCommit) -> None:
        outcome = engine.outcome
        assert outcome is not None
        assert driver.claimed is not None
        run = driver.claimed.run
        commit.status = outcome.status
        commit.result = outcome.result
        for update_id, name in engine.open_updates().items():
            commit.updates.setdefault(update_id, updates.unanswered(name, outcome.status))
        if outcome.error is not None:
            commit.error = payload.envelope(outcome.error.to_dict())
        for ctx in driver.local.values():
            ctx.cancelled = True
        if outcome.status == "continued_as_new":
            assert outcome.successor_run_id is not None
            assert outcome.continue_args is not None
            commit.successor = NewRun(
                workflow_id=run.workflow_id,
                run_id=outcome.successor_run_id,
                name=run.name,
                queue=run.queue,
                input=outcome.continue_args,
                created_at=self.clock.now(),
                parent_id=run.parent_id,
                parent_run_id=run.parent_run_id,
                timeout=run.timeout,
                # a successor is the same workflow: still found by its tags, those set
                # by this run included (run.tags, read at claim, may predate them)
                tags={**run.tags, **engine.tags},
                trace=run.trace,  # and goes on in the same trace
            )
            return
        if run.parent_id is None:
            return
        item: journal.Record
        if outcome.status == "completed":
            item = journal.ChildCompleted(run.workflow_id, outcome.result, run.run_id)
        else:
            error = outcome.error or RemoteError("CancelledError", "child workflow was cancelled")
            item = journal.ChildFailed(run.workflow_id, error, outcome.status, run.run_id)
        commit.outgoing.append(
            Outgoing(run.parent_id, item.KIND, journal.encode(item), run_id=run.parent_run_id)
        )
