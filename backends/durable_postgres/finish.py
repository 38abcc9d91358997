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

from .commit import DELIVER, delivery_columns
from .connection import RELAXED, Fold

__all__ = ["MAX_GROUP", "Finish", "finish_tasks"]

MAX_GROUP = 500  # most finish_task calls one transaction takes

#: `finish_task`'s arguments: (task_id, owner, attempt, outcome, now).
Finish = tuple[str, str, int, TaskOutcome, float]

# The transaction's first statement: its id, the group's runs locked in id order, then
# their tasks in task id order. The runs are found first (an InitPlan: the lock scans `runs`
# by id, with no join a concurrent update could make it lose rows: see
# `durable_postgres.claims.wake`); the tasks are locked by a LATERAL subquery that reads
# the locked runs' array, so it runs after every run is locked. Locked rows are read as
# they are once locked (a run closed by a commit that ended while this one waited for its
# lock is seen closed), which is why ``closed_at`` comes from the runs' lock, not from a
# join. One row per task found, or one row of NULL task columns when none is.
_LOCK = f"""
WITH locked AS MATERIALIZED (
    SELECT run_id, closed_at FROM runs
    WHERE run_id = ANY(ARRAY(SELECT DISTINCT run_id FROM tasks WHERE task_id = ANY($1::text[])))
    ORDER BY run_id FOR UPDATE
), held AS (
    SELECT ARRAY(SELECT run_id FROM locked) AS runs
)
SELECT txid_current() AS xid, {RELAXED}, x.*, locked.closed_at FROM held LEFT JOIN LATERAL (
    SELECT t.task_id, t.run_id, t.lease_owner, t.attempt,
        EXISTS (SELECT 1 FROM queue_limits l WHERE l.queue = t.queue) AS limited
    FROM tasks t
    WHERE t.task_id = ANY($1::text[]) AND cardinality(held.runs) > 0
    ORDER BY t.task_id FOR UPDATE
) x ON true LEFT JOIN locked ON locked.run_id = x.run_id
"""
# The group's writes and its NOTIFY in one statement: the items delivered to their runs'
# inboxes in order and those runs marked ready (as `durable_postgres.commit.deliver`), the
# tasks that ended deleted, then ``pg_notify`` when there are topics.
_END = f"""
WITH delivered AS ({DELIVER}), woken AS (
    UPDATE runs SET ready = true WHERE run_id = ANY($5::text[])
), gone AS (
    DELETE FROM tasks WHERE task_id = ANY($6::text[])
)
SELECT pg_notify($7, $8) WHERE $8::text IS NOT NULL
"""
_RETRY = (
    "UPDATE tasks SET attempt = attempt + 1, status = 'queued', visible_at = $2, "
    "lease_owner = NULL, lease_expires_at = NULL, last_error = $3, "
    "heartbeat_details = COALESCE($4, heartbeat_details) WHERE task_id = $1"
)
_RELEASE = (
    "UPDATE tasks SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL, "
    "heartbeat_details = COALESCE($2, heartbeat_details) WHERE task_id = $1"
)


async def finish_tasks(
    conn: Any, fold: Fold, *, items: Sequence[Finish]
) -> tuple[int | None, list[bool], set[str]]:
    """End each of ``items`` in order inside the caller's transaction
    (`Database.write_announced`: the transaction id, `RELAXED` and the NOTIFY ride on its
    statements): the transaction id (None if nothing was written), whether each was
    accepted (its task still leased to that owner at that attempt: one end per task, the
    first), and the topics. Two statements for a group of ends; a retry or release (rare:
    completions are ends) is one more each."""
    ids = sorted({item[0] for item in items})
    locked = await conn.fetch(_LOCK, ids)
    xid = locked[0]["xid"]
    rows = {row["task_id"]: row for row in locked if row["task_id"] is not None}
    if not rows:
        return None, [False] * len(items), set()
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
    if inbox:
        topics.add(TOPIC_RUNS)
    if deleted or inbox or topics:
        await conn.execute(
            _END,
            *delivery_columns(inbox),
            sorted({d.run_id for d in inbox}),
            deleted,
            fold.channel,
            fold.payload(topics) if topics else None,
        )
    return xid if any(done) else None, done, topics
