"""`finish_task` on PostgreSQL, written in groups: concurrent calls share one transaction.

Every attempt's end locks its run's row (the inbox item and ``ready`` go there), so
completions of one run's tasks, each in a transaction of its own, queued on that row: a
remote worker completing a batch of a hundred tasks of one fan-out waited for a hundred
commits in turn. The store gathers the calls made while a group is being written
(`durable.grouping.Grouped`) and writes the next group in one transaction with
`finish_tasks`, each end judged in turn (as on SQLite), so a batch costs one commit.

`finish_tasks` locks as every writer here does (see `durable_postgres.commit`): the runs
of the group's tasks in run id order, then the tasks in task id order, so a group cannot
deadlock with a step commit or another group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable.plan import Delivery
from durable.store import TOPIC_RUNS, TOPIC_TASKS, TOPIC_TIMERS, TaskOutcome

from .commit import deliver

__all__ = ["MAX_GROUP", "Finish", "finish_tasks"]

MAX_GROUP = 500  # most finish_task calls one transaction takes

#: `finish_task`'s arguments: (task_id, owner, attempt, outcome, now).
Finish = tuple[str, str, int, TaskOutcome, float]

_RUNS_OF = "SELECT DISTINCT run_id FROM tasks WHERE task_id = ANY($1::text[])"
_LOCK_RUNS = "SELECT 1 FROM runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE"
_LOCK_TASKS = """
SELECT t.task_id, t.run_id, t.lease_owner, t.attempt, r.closed_at,
    EXISTS (SELECT 1 FROM queue_limits l WHERE l.queue = t.queue) AS limited
FROM tasks t JOIN runs r ON r.run_id = t.run_id
WHERE t.task_id = ANY($1::text[]) ORDER BY t.task_id FOR UPDATE OF t
"""
_DELETE = "DELETE FROM tasks WHERE task_id = ANY($1::text[])"
_RETRY = (
    "UPDATE tasks SET attempt = attempt + 1, status = 'queued', visible_at = $2, "
    "lease_owner = NULL, lease_expires_at = NULL, last_error = $3, "
    "heartbeat_details = COALESCE($4, heartbeat_details) WHERE task_id = $1"
)
_RELEASE = (
    "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
    "heartbeat_details = COALESCE($2, heartbeat_details) WHERE task_id = $1"
)


async def finish_tasks(conn: Any, *, items: Sequence[Finish]) -> tuple[list[bool], set[str]]:
    """End each of ``items`` in order inside the caller's transaction: whether each was
    accepted (its task still leased to that owner at that attempt: one end per task, the
    first), and the topics. A constant number of statements for the group, but a retry or
    release (rare: completions are ends) is one statement each."""
    ids = sorted({item[0] for item in items})
    runs = [row["run_id"] for row in await conn.fetch(_RUNS_OF, ids)]
    if not runs:
        return [False] * len(items), set()
    await conn.execute(_LOCK_RUNS, sorted(runs))
    rows = {row["task_id"]: row for row in await conn.fetch(_LOCK_TASKS, ids)}
    done: list[bool] = []
    topics: set[str] = set()
    deleted: list[str] = []
    inbox: list[Delivery] = []
    for task_id, owner, attempt, outcome, now in items:
        row = rows.pop(task_id, None)  # a task's first accepted end changes it: one each
        if row is None or row["lease_owner"] != owner or row["attempt"] != attempt:
            if row is not None:
                rows[task_id] = row  # refused: a later item may still be its owner's
            done.append(False)
            continue
        done.append(True)
        if row["limited"]:  # an attempt ending on a queue with limits frees room
            topics.add(TOPIC_TASKS)
        if outcome.kind == "done" or row["closed_at"] is not None:
            deleted.append(task_id)  # a retry or release for a closed run: nobody wants it
        elif outcome.kind == "retry":
            await conn.execute(
                _RETRY, task_id, outcome.visible_at, outcome.last_error, outcome.details
            )
            topics.add(TOPIC_TASKS if outcome.visible_at <= now else TOPIC_TIMERS)
        else:
            await conn.execute(_RELEASE, task_id, outcome.details)
            topics.add(TOPIC_TASKS)
        if outcome.kind != "release" and row["closed_at"] is None:
            kind = outcome.item_kind or (
                "activity_retrying" if outcome.kind == "retry" else "activity_completed"
            )
            inbox.append(Delivery(row["run_id"], kind, now, outcome.item_data))
    if deleted:
        await conn.execute(_DELETE, deleted)
    if inbox:
        await deliver(conn, inbox)
        topics.add(TOPIC_RUNS)
    return done, topics
