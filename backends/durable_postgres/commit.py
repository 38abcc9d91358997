"""Group commit on PostgreSQL: lock what the fences read, apply `durable.plan`, one array
statement per kind of write.

`commit_steps` runs in one transaction:

1. `lock`: every run row `durable.plan.lookups` names (the batch's runs, the runs its items
   name, the current runs of its children's and items' workflow ids) in one
   ``SELECT ... ORDER BY run_id FOR UPDATE``; then every task row it may change
   (finished, cancelled, or of a run it may close) in one statement in task id order, as
   every writer here locks rows: runs before tasks, each in id order, so none can
   deadlock. From then on nobody else can change what the fences read: a concurrent
   `send`, `terminate`, claim or heartbeat of those rows waits for this commit (claims
   skip them). The locked rows are the plan's `durable.plan.Snapshot`.
2. `durable.plan.plan` judges the steps and gathers the writes of the accepted ones (the
   rules live there, shared with the SQLite backend).
3. `apply` writes them with one ``unnest``-array statement per field of the plan, in its
   order: a handful of round trips for the whole batch whatever its size.

Checking before writing (rather than a SAVEPOINT per step) keeps the batch to a constant
number of statements: a rejected step is simply left out of the arrays, so it writes
nothing and cannot affect the others. Only a bug (a duplicate journal seq, say) makes a
statement fail, and then the whole batch fails loudly instead of being half applied.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from durable import plan as _plan
from durable.journal import WORKFLOW_ADDRESSED
from durable.plan import Delivery, Lookups, Plan, RunState, Snapshot
from durable.store import EXTERNAL_OWNER, TOPIC_RUNS, NewRun, Outgoing

from . import updates
from .connection import Fold
from .schema import tags_json

__all__ = [
    "DELIVER",
    "apply",
    "close_leftovers",
    "deliver",
    "delivery_columns",
    "insert_runs",
    "lock",
    "lock_runs",
    "lock_tasks",
]

# Every writer that locks several rows locks runs before tasks, each in id order, so no
# two of them can deadlock. A batch's runs are locked together with the runs its outgoing
# items will wake, in one ordered statement. The locking statements themselves are plain
# ``id = ANY(...)`` scans: the ids to lock are looked up first, without locks, because a
# locking statement whose WHERE held a subquery over the same table lost rows that another
# transaction updated while it waited (seen under load: whole batches rejected as if their
# leases were gone).
_RECIPIENTS = "SELECT run_id FROM runs WHERE workflow_id = ANY($1::text[]) AND is_current"
_RUN_STATE = (
    "run_id, workflow_id, status, is_current, lease_owner, lease_expires_at, "
    "history_length, ready, problem"
)
_LOCK_RUNS = """
SELECT txid_current() AS xid, run_id, workflow_id, status, is_current, lease_owner,
       lease_expires_at, history_length, ready, problem
FROM runs WHERE run_id = ANY($1::text[]) ORDER BY run_id FOR UPDATE
"""
# Every task row the batch may change, in one ordered statement: those it finishes or
# cancels and those of the runs it may close. Locking them in several statements
# (finished, then cancelled, then a closed run's leftovers) could deadlock with a heartbeat
# renewing the same tasks in id order. Only a run's lease holder adds tasks to it, and the
# batch holds its runs: the task ids of a closing run cannot change between the lookup and
# the lock.
_RUN_TASKS = "SELECT task_id FROM tasks WHERE run_id = ANY($1::text[])"
_LOCK_TASKS = """
SELECT task_id, lease_owner, attempt FROM tasks
WHERE task_id = ANY($1::text[]) ORDER BY task_id FOR UPDATE
"""
_INSERT_JOURNAL = """
INSERT INTO journal (run_id, seq, kind, time, data)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::float8[], $5::bytea[])
"""
_DELETE_INBOX = "DELETE FROM inbox WHERE id = ANY($1::bigint[])"
_UPDATE_RUNS = """
UPDATE runs r SET
    history_length = u.history_length,
    updated_at = $1,
    status = COALESCE(u.status, r.status),
    result = CASE WHEN u.has_result THEN u.result ELSE r.result END,
    error = CASE WHEN u.has_error THEN u.error ELSE r.error END,
    problem = u.problem,
    closed_at = CASE WHEN u.closed THEN $1 ELSE r.closed_at END,
    lease_owner = CASE WHEN u.release THEN NULL ELSE r.lease_owner END,
    lease_expires_at = CASE WHEN u.release THEN NULL ELSE r.lease_expires_at END,
    continued_to = COALESCE(u.continued_to, r.continued_to),
    is_current = r.is_current AND u.continued_to IS NULL,
    ready = r.ready AND NOT u.closed
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::bool[], $6::bytea[], $7::bool[],
            $8::bytea[], $9::text[], $10::bool[], $11::bool[], $12::text[])
    AS u(run_id, history_length, status, has_result, result, has_error, error, problem,
         closed, release, continued_to)
WHERE r.run_id = u.run_id
"""
# Children and successors alike: current, pending, ready. The plan has checked that their
# workflow ids have no current run left (ON CONFLICT only covers a create_run racing in
# between the lookup and the lock).
_INSERT_RUNS = """
INSERT INTO runs (workflow_id, run_id, is_current, name, queue, status, input, created_at,
                  updated_at, parent_id, parent_run_id, history_length, ready, timeout, tags,
                  trace)
SELECT u.workflow_id, u.run_id, true, u.name, u.queue, 'pending', u.input, u.created_at,
       u.created_at, u.parent_id, u.parent_run_id, 0, true, u.timeout, u.tags::jsonb, u.trace
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::float8[],
            $7::text[], $8::text[], $9::float8[], $10::text[], $11::text[])
    AS u(workflow_id, run_id, name, queue, input, created_at, parent_id, parent_run_id,
         timeout, tags, trace)
ON CONFLICT DO NOTHING
RETURNING run_id
"""
_MOVE_SIGNALS = """
UPDATE inbox i SET run_id = u.new_run
FROM unnest($1::text[], $2::text[]) AS u(old_run, new_run)
WHERE i.run_id = u.old_run AND i.kind = ANY($3::text[])
"""
_ADDRESSED = sorted(WORKFLOW_ADDRESSED)  # inbox kinds that follow a workflow id
_INSERT_TASKS = """
INSERT INTO tasks (task_id, run_id, workflow_id, seq, name, queue, data, attempt, status,
                   visible_at, lease_owner, lease_expires_at, key, priority, created_at)
SELECT u.*, $1 FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                         $7::text[], $8::bytea[], $9::int[], $10::text[], $11::float8[],
                         $12::text[], $13::float8[], $14::text[], $15::int[]) AS u
ON CONFLICT DO NOTHING
"""
_INSERT_TIMERS = """
INSERT INTO timers (run_id, seq, due_at, data)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::bytea[])
ON CONFLICT DO NOTHING
"""
# The same update, NOTIFYing the batch's topics ($13 channel, $14 payload) as it goes.
_UPDATE_RUNS_NOTIFY = "WITH notified AS (SELECT pg_notify($13, $14))" + _UPDATE_RUNS.replace(
    "\nWHERE r.run_id = u.run_id", ", notified\nWHERE r.run_id = u.run_id"
)
# A lease handed back with inbox items left (arrived during the step, or not consumed):
# the run must be ready for whoever claims next, or those items would be stranded. Sends
# the batch's NOTIFY too ($2 channel; payload $3 without, $4 with TOPIC_RUNS, by whether
# a run turned ready; $3 NULL: nothing to say unless one did).
_READY_IF_INBOX_NOTIFY = """
WITH woke AS (
    UPDATE runs r SET ready = true
    WHERE r.run_id = ANY($1::text[]) AND NOT r.ready
      AND EXISTS (SELECT 1 FROM inbox i WHERE i.run_id = r.run_id)
    RETURNING 1
), payload AS (
    SELECT CASE WHEN EXISTS (SELECT 1 FROM woke) THEN $4 ELSE $3 END AS body
), said AS (
    SELECT pg_notify($2, body) FROM payload WHERE body IS NOT NULL
)
SELECT EXISTS (SELECT 1 FROM woke) AS woke, (SELECT count(*) FROM said) AS said
"""
# `||` merges (a key given takes the new value); a trigger updates run_tags.
_MERGE_TAGS = """
UPDATE runs r SET tags = COALESCE(r.tags, '{}'::jsonb) || u.tags::jsonb
FROM unnest($1::text[], $2::text[]) AS u(run_id, tags)
WHERE r.run_id = u.run_id
"""
_DELETE_TASKS = "DELETE FROM tasks WHERE task_id = ANY($1::text[])"
# The writes below touch only task rows `lock_tasks` locked first.
_CANCEL_TASKS = "UPDATE tasks SET cancel_requested = true WHERE task_id = ANY($1::text[])"
_DELETE_TIMERS = """
DELETE FROM timers t USING unnest($1::text[], $2::bigint[]) AS u(run_id, seq)
WHERE t.run_id = u.run_id AND t.seq = u.seq
"""
_CLOSE_LEFTOVERS = """
WITH timers_gone AS (DELETE FROM timers WHERE run_id = ANY($1::text[])),
     queued_gone AS (
        DELETE FROM tasks WHERE run_id = ANY($1::text[])
        AND (status = 'queued' OR lease_owner = $2)
     )
UPDATE tasks SET cancel_requested = true
WHERE run_id = ANY($1::text[]) AND status = 'running' AND lease_owner IS DISTINCT FROM $2
"""
_UPSERT_PUBLISHED = """
INSERT INTO published (workflow_id, key, value)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value
"""
# Routed items (`durable.plan.route`), ids assigned in item order; then their runs ready
# (locked already, by `lock_runs` or by the caller). Also a CTE of the last statement of
# `durable_postgres.finish`.
DELIVER = """
INSERT INTO inbox (run_id, kind, time, data)
SELECT u.run_id, u.kind, u.time, u.data
FROM unnest($1::text[], $2::text[], $3::float8[], $4::bytea[])
    WITH ORDINALITY AS u(run_id, kind, time, data, ord)
ORDER BY u.ord
"""
_READY = "UPDATE runs SET ready = true WHERE run_id = ANY($1::text[])"
_DEMOTE = "UPDATE runs SET is_current = false WHERE run_id = ANY($1::text[])"
_CLEAR_PUBLISHED = "DELETE FROM published WHERE workflow_id = ANY($1::text[])"
_CLEAR_UPDATES = "DELETE FROM updates WHERE workflow_id = ANY($1::text[])"


def delivery_columns(deliveries: Sequence[Delivery]) -> list[list[Any]]:
    """`DELIVER`'s parameters for ``deliveries``: their run ids, kinds, times and data."""
    return [
        [d.run_id for d in deliveries],
        [d.kind for d in deliveries],
        [d.time for d in deliveries],
        [d.data for d in deliveries],
    ]


async def deliver(conn: Any, deliveries: Sequence[Delivery]) -> None:
    """Append routed items to their runs' inboxes in order and mark those runs ready (the
    caller has locked them)."""
    if deliveries:
        await conn.execute(DELIVER, *delivery_columns(deliveries))
        await conn.execute(_READY, sorted({d.run_id for d in deliveries}))


async def route_one(conn: Any, item: Outgoing, now: float) -> Delivery | None:
    """Where ``item`` goes now (`durable.plan.route`), among runs the caller has locked
    with `lock_runs`."""
    rows = await conn.fetch(
        f"SELECT {_RUN_STATE} FROM runs WHERE run_id = $1 OR (workflow_id = $2 AND is_current)",
        item.run_id,
        item.workflow_id,
    )
    runs = [_state(r) for r in rows]
    named = next((r for r in runs if r.run_id == item.run_id), None)
    current = next((r for r in runs if r.is_current and r.workflow_id == item.workflow_id), None)
    target = _plan.route(item, named, current)
    return Delivery(target, item.kind, now, item.data) if target is not None else None


async def close_leftovers(conn: Any, run_ids: Sequence[str]) -> None:
    """For runs just closed: delete their timers and queued tasks, flag running tasks
    (lock them first with `lock_tasks`)."""
    if run_ids:
        await conn.execute(_CLOSE_LEFTOVERS, list(run_ids), EXTERNAL_OWNER)


async def insert_runs(conn: Any, runs: Sequence[NewRun]) -> set[str]:
    """Insert new current runs (pending, ready); returns the ids inserted (a run whose
    workflow id has gained a current run since it was locked is not)."""
    if not runs:
        return set()
    rows = await conn.fetch(
        _INSERT_RUNS,
        [r.workflow_id for r in runs],
        [r.run_id for r in runs],
        [r.name for r in runs],
        [r.queue for r in runs],
        [r.input for r in runs],
        [r.created_at for r in runs],
        [r.parent_id for r in runs],
        [r.parent_run_id for r in runs],
        [r.timeout for r in runs],
        [tags_json(r.tags) for r in runs],
        [r.trace for r in runs],
    )
    return {r["run_id"] for r in rows}


async def _refuse_raced(conn: Any, p: Plan, children: Sequence[NewRun], now: float) -> None:
    """Tell the parents of ``children``, whose ids a concurrent ``create_run`` took between
    the plan's lookup (no current run: nothing to lock) and the insert, as the plan tells
    those of children refused outright; a parent closing in this batch hears nothing."""
    rows = await conn.fetch(
        "SELECT workflow_id, run_id FROM runs WHERE workflow_id = ANY($1::text[]) AND is_current",
        [c.workflow_id for c in children],
    )
    existing = {r["workflow_id"]: r["run_id"] for r in rows}
    closed = {u.run_id for u in p.runs if u.closed}
    items: list[Delivery] = []
    for child in children:
        parent_workflow, parent_run = p.parents[child.run_id]
        if parent_run not in closed:
            taken = existing.get(child.workflow_id, "unknown")
            item = _plan.refused_child(child, parent_workflow, parent_run, taken)
            items.append(Delivery(parent_run, item.kind, now, item.data))
    await deliver(conn, items)


def _state(row: Any) -> RunState:
    return RunState(
        row["run_id"], row["workflow_id"], row["status"], row["is_current"], row["lease_owner"],
        row["lease_expires_at"], row["history_length"], row["ready"], row["problem"],
    )  # fmt: skip


async def lock_runs(
    conn: Any, run_ids: Collection[str], workflow_ids: Collection[str]
) -> dict[str, RunState]:
    """Lock ``run_ids`` and the current runs of ``workflow_ids``, in one statement in run id
    order; return their states by run id."""
    return (await _lock_runs(conn, run_ids, workflow_ids))[1]


RELOOKUPS = 5  # times a batch looks again for current runs that moved on while it locked


async def _lock_runs(
    conn: Any, run_ids: Collection[str], workflow_ids: Collection[str]
) -> tuple[int | None, dict[str, RunState]]:
    ids = set(run_ids)
    states: dict[str, RunState] = {}
    xid: int | None = None
    wanted = set(workflow_ids)
    for _ in range(RELOOKUPS):
        if wanted:
            ids |= {r["run_id"] for r in await conn.fetch(_RECIPIENTS, sorted(wanted))}
        if states and not ids - states.keys():
            break  # no workflow of those has another current run: nothing more to lock
        rows = await conn.fetch(_LOCK_RUNS, sorted(ids - states.keys()))
        if rows and xid is None:
            xid = rows[0]["xid"]
        states.update((row["run_id"], _state(row)) for row in rows)
        # A current run looked up without a lock may have continued as new before the lock
        # was granted: its successor is current now, and items for the workflow go there.
        # Look again for those workflows (the new rows lock after the others: a deadlock
        # this makes is detected by PostgreSQL and the batch retried).
        current = {s.workflow_id for s in states.values() if s.is_current}
        wanted = {
            s.workflow_id
            for s in states.values()
            if s.workflow_id in workflow_ids and not s.is_current and s.workflow_id not in current
        }
        if not wanted:
            break
    return xid, states


async def lock(conn: Any, needs: Lookups) -> tuple[int | None, Snapshot]:
    """Lock the run rows ``needs`` names, then every task row the batch may change; return
    the transaction id (read by the same statement, to save a round trip; ``None`` when
    no run was found, and then nothing is written) and what the plan reads of them."""
    xid, runs = await _lock_runs(conn, needs.run_ids, needs.workflow_ids)
    tasks = await lock_tasks(conn, needs.task_ids, needs.closing)
    snapshot = Snapshot(runs, {r["task_id"]: (r["lease_owner"], r["attempt"]) for r in tasks})
    return xid, snapshot


async def lock_tasks(conn: Any, task_ids: Collection[str], closing: Collection[str]) -> list[Any]:
    """Lock ``task_ids`` and every task of the runs ``closing``, in task id order."""
    ids = set(task_ids)
    if closing:
        ids |= {r["task_id"] for r in await conn.fetch(_RUN_TASKS, list(closing))}
    return await conn.fetch(_LOCK_TASKS, sorted(ids)) if ids else []


async def apply(conn: Any, p: Plan, now: float, fold: Fold) -> None:
    """Write the accepted steps of ``p`` in the order of its fields (`durable.plan.Plan`),
    and NOTIFY its topics in one of those statements (`Fold`): in the run update, or in the
    last statement when a released run may turn ready there (adding `TOPIC_RUNS`)."""
    notify_now = bool(p.topics) and not p.released
    if p.runs:
        u = p.runs
        notify = (fold.channel, fold.payload(p.topics)) if notify_now else ()
        await conn.execute(
            _UPDATE_RUNS_NOTIFY if notify_now else _UPDATE_RUNS,
            now,
            [r.run_id for r in u],
            [r.history_length for r in u],
            [r.status for r in u],
            [r.result is not None for r in u],
            [r.result for r in u],
            [r.error is not None for r in u],
            [r.error for r in u],
            [r.problem for r in u],
            [r.closed for r in u],
            [r.release for r in u],
            [r.continued_to for r in u],
            *notify,
        )
    if p.demoted:
        await conn.execute(_DEMOTE, p.demoted)
    if p.journal:
        await conn.execute(_INSERT_JOURNAL, *_columns(p.journal, 5))
    if p.consumed:
        await conn.execute(_DELETE_INBOX, p.consumed)
    inserted = await insert_runs(conn, p.new_runs)
    raced = [r for r in p.new_runs if r.run_id not in inserted and r.run_id in p.parents]
    if raced:  # rare: costs a lookup and a delivery only then
        await _refuse_raced(conn, p, raced, now)
    if p.cleared:
        await conn.execute(_CLEAR_PUBLISHED, p.cleared)
        await conn.execute(_CLEAR_UPDATES, p.cleared)
    if p.moves:
        await conn.execute(_MOVE_SIGNALS, *_columns(p.moves, 2), _ADDRESSED)
    if p.tasks:
        await conn.execute(
            _INSERT_TASKS,
            now,
            *_columns(
                [
                    (t.task_id, t.run_id, t.workflow_id, t.seq, t.name, t.queue, t.data,
                     t.attempt, "queued" if t.lease_owner is None else "running",
                     t.visible_at, t.lease_owner, t.lease_expires_at, t.key, t.priority)
                    for t in p.tasks
                ],
                14,
            ),
        )  # fmt: skip
    if p.timers:
        await conn.execute(_INSERT_TIMERS, *_columns(p.timers, 4))
    if p.finished:
        await conn.execute(_DELETE_TASKS, p.finished)
    if p.cancelled_tasks:
        await conn.execute(_CANCEL_TASKS, p.cancelled_tasks)
    if p.cancelled_timers:
        await conn.execute(_DELETE_TIMERS, *_columns(p.cancelled_timers, 2))
    await close_leftovers(conn, p.closed)
    await deliver(conn, p.deliveries)
    if p.published:
        keys = list(p.published)
        await conn.execute(
            _UPSERT_PUBLISHED,
            [wf for wf, _ in keys],
            [key for _, key in keys],
            [p.published[k] for k in keys],
        )
    if p.updates:
        keys = list(p.updates)
        await conn.execute(
            updates.UPSERT,
            [wf for wf, _ in keys],
            [uid for _, uid in keys],
            [p.updates[k] for k in keys],
            now,
        )
    if p.tags:
        await conn.execute(_MERGE_TAGS, list(p.tags), [tags_json(tags) for tags in p.tags.values()])
    if p.released:
        quiet = fold.payload(p.topics) if p.topics else None
        woken = fold.payload({*p.topics, TOPIC_RUNS})
        row = await conn.fetchrow(_READY_IF_INBOX_NOTIFY, p.released, fold.channel, quiet, woken)
        if row["woke"]:
            p.topics.add(TOPIC_RUNS)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into ``width`` column lists (the arrays ``unnest`` takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]
