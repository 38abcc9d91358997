"""Repair on PostgreSQL: apply a `durable.repair.Reopen` (retry) or `durable.repair.Fork`.

The rules (what is cut, which rows come back) are `durable.repair`'s. Each function runs
inside the caller's transaction (`durable_postgres.connection`'s ``write``): a re-open
locks the run row first (so a step commit in flight lands before it, and is then seen by
the fence, or is rejected after), then the run's task rows, in the order a commit locks
them; a fork inserts a new run, which the unique current-run index keeps to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from durable.errors import WorkflowAlreadyExists
from durable.journal import Kind
from durable.repair import Fork, Reopen
from durable.store import (
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    NewTask,
    NewTimer,
    run_topic,
    steps_topic,
)

from . import commit

__all__ = ["fork_run", "reopen_run"]

_INSERT_TASKS = """
INSERT INTO tasks (task_id, run_id, workflow_id, seq, name, queue, data, attempt, status,
                   visible_at, lease_owner, lease_expires_at, created_at)
SELECT u.*, $1 FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                         $7::text[], $8::bytea[], $9::int[], $10::text[], $11::float8[],
                         $12::text[], $13::float8[]) AS u
"""
_INSERT_TIMERS = """
INSERT INTO timers (run_id, seq, due_at, data)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::bytea[])
"""
_UPSERT_PUBLISHED = """
INSERT INTO published (workflow_id, key, value)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value
"""
_INSERT_INBOX = """
INSERT INTO inbox (run_id, kind, time, data)
SELECT $1, u.kind, $2, u.data FROM unnest($3::text[], $4::bytea[]) WITH ORDINALITY
    AS u(kind, data, n) ORDER BY u.n
"""


async def _insert_rows(
    conn: Any,
    run_id: str,
    tasks: Sequence[NewTask],
    timers: Sequence[NewTimer],
    inbox: Sequence[tuple[str, bytes]],
    now: float,
) -> None:
    if tasks:
        await conn.execute(
            _INSERT_TASKS, now,
            [t.task_id for t in tasks], [t.run_id for t in tasks],
            [t.workflow_id for t in tasks], [t.seq for t in tasks], [t.name for t in tasks],
            [t.queue for t in tasks], [t.data for t in tasks], [t.attempt for t in tasks],
            ["queued" if t.lease_owner is None else "running" for t in tasks],
            [t.visible_at for t in tasks], [t.lease_owner for t in tasks],
            [t.lease_expires_at for t in tasks],
        )  # fmt: skip
    if timers:
        await conn.execute(
            _INSERT_TIMERS,
            [t.run_id for t in timers], [t.seq for t in timers],
            [t.due_at for t in timers], [t.data for t in timers],
        )  # fmt: skip
    if inbox:
        await conn.execute(_INSERT_INBOX, run_id, now, [k for k, _ in inbox], [d for _, d in inbox])


async def reopen_run(conn: Any, reopen: Reopen, now: float) -> tuple[bool, set[str]]:
    """Apply ``reopen`` (see `durable.store.Store.reopen_run`): whether the fence held, and
    the topics to notify."""
    row = await conn.fetchrow(
        "SELECT status, history_length, is_current, parked FROM runs WHERE run_id = $1 FOR UPDATE",
        reopen.run_id,
    )
    if row is None or (row["status"], row["history_length"], row["is_current"]) != (
        reopen.expected_status,
        reopen.expected_length,
        True,
    ):
        return False, set()
    if reopen.parked and not row["parked"]:
        return False, set()
    if reopen.children:
        # Read after the lock on the run: a child's commit delivering to it locks it too,
        # so either it committed before (and is seen here) or waits and then delivers.
        rows = await conn.fetch(
            "SELECT run_id, status FROM runs WHERE run_id = ANY($1::text[])",
            list(reopen.children),
        )
        if {r["run_id"]: r["status"] for r in rows} != reopen.children:
            return False, set()  # it answered the closed run meanwhile: plan again
    locked = await commit.lock_tasks(conn, (), [reopen.run_id])
    # Attempts still flagged to cancel when the run closed: the new row's attempt goes
    # past theirs, so their late finish is fenced off.
    old = {r["task_id"]: r["attempt"] for r in locked}
    tasks = [
        t if t.task_id not in old else replace(t, attempt=max(t.attempt, old[t.task_id] + 1))
        for t in reopen.tasks
    ]
    if not reopen.parked:
        await conn.execute(
            "DELETE FROM journal WHERE run_id = $1 AND seq > $2", reopen.run_id, reopen.keep
        )
        await conn.execute("DELETE FROM tasks WHERE run_id = $1", reopen.run_id)
        await conn.execute("DELETE FROM timers WHERE run_id = $1", reopen.run_id)
        await conn.execute("DELETE FROM inbox WHERE run_id = $1", reopen.run_id)
        await _insert_rows(conn, reopen.run_id, tasks, reopen.timers, (), now)
    await conn.execute(
        "INSERT INTO journal (run_id, seq, kind, time, data) VALUES ($1, $2, $3, $4, $5)",
        reopen.run_id, reopen.keep + 1, Kind.RUN_RETRIED.value, now, reopen.note,
    )  # fmt: skip
    await _insert_rows(conn, reopen.run_id, (), (), reopen.inbox, now)
    await conn.execute(
        "UPDATE runs SET status = $2, history_length = $3, result = NULL, error = NULL, "
        "closed_at = NULL, updated_at = $4, lease_owner = NULL, lease_expires_at = NULL, "
        "parked = false, problem = NULL, ready = true WHERE run_id = $1",
        reopen.run_id, reopen.status, reopen.keep + 1, now,
    )  # fmt: skip
    wid = reopen.workflow_id
    return True, {
        TOPIC_RUNS, TOPIC_STATUS, TOPIC_TASKS, TOPIC_TIMERS, run_topic(wid), steps_topic(wid)
    }  # fmt: skip


async def fork_run(conn: Any, fork: Fork, now: float) -> tuple[None, set[str]]:
    """Apply ``fork`` (see `durable.store.Store.fork_run`); the topics to notify."""
    run = fork.run
    wid = run.workflow_id
    topics = {TOPIC_RUNS, TOPIC_STATUS, TOPIC_TASKS, TOPIC_TIMERS, run_topic(wid), steps_topic(wid)}
    taken = await conn.fetchrow(
        "SELECT run_id, status FROM runs WHERE workflow_id = $1 ORDER BY is_current DESC LIMIT 1",
        wid,
    )
    if taken is not None and taken["run_id"] == run.run_id:
        return None, topics  # our own fork, committed by an attempt whose answer was lost
    if taken is not None or run.run_id not in await commit.insert_runs(conn, [run]):
        which = f" (run {taken['run_id']!r}, {taken['status']})" if taken is not None else ""
        raise WorkflowAlreadyExists(f"Workflow {wid!r} already exists{which}.")
    await conn.execute(
        "UPDATE runs SET status = $2, history_length = $3 WHERE run_id = $1",
        run.run_id, fork.status, len(fork.entries),
    )  # fmt: skip
    if fork.entries:
        await conn.execute(
            "INSERT INTO journal (run_id, seq, kind, time, data) "
            "SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::float8[], $5::bytea[])",
            run.run_id,
            [e.seq for e in fork.entries], [e.kind for e in fork.entries],
            [e.time for e in fork.entries], [e.data for e in fork.entries],
        )  # fmt: skip
    if fork.published:
        keys = list(fork.published)
        await conn.execute(
            _UPSERT_PUBLISHED,
            [wid] * len(keys), keys, [fork.published[k] for k in keys],
        )  # fmt: skip
    await _insert_rows(conn, run.run_id, fork.tasks, fork.timers, fork.inbox, now)
    return None, topics
