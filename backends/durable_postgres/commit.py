"""Group commit: many runs' steps in one transaction, each step fenced on its own.

`commit_steps` runs in one transaction:

1. Lock every run row of the batch, with the runs its outgoing items will wake, in one
   ``SELECT ... ORDER BY run_id FOR UPDATE``; then every task row it may change (finished,
   cancelled, or of a run it may close) in one statement in task id order, as every
   writer here locks rows: runs before tasks, each in id order, so none can deadlock.
   From then on nobody else can change what the fences read: a concurrent `send`,
   `terminate`, claim or heartbeat of those rows waits for this commit (claims skip them).
2. `plan` decides each step in order against those locked rows, in Python, updating its
   view as it accepts steps (so two steps of one run in one batch chain correctly), and
   gathers the writes of the accepted steps into column arrays.
3. `apply` writes them with one ``unnest``-array statement per table and kind of change,
   a handful of round trips for the whole batch whatever its size.

Checking before writing (rather than a SAVEPOINT per step) keeps the batch to a constant
number of statements: a rejected step is simply left out of the arrays, so it writes
nothing and cannot affect the others. Only a bug (a duplicate journal seq, say) makes a
statement fail, and then the whole batch fails loudly instead of being half applied.

Order of the bulk writes, where it matters: runs are updated (old run no longer current)
before successors are inserted; consumed inbox items are deleted before a continued run's
workflow-addressed items (signals, cancellation) move to its successor; new tasks and timers are inserted before a closing run's
leftovers are cleaned; outgoing items are delivered last, so an item for a run that closes
in the same batch is dropped as it would be one transaction later.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from durable.journal import WORKFLOW_ADDRESSED
from durable.store import (
    CLOSED_STATUSES,
    TOPIC_RUNS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    NewRun,
    Outgoing,
    StepCommit,
    run_topic,
)

from .claims import wake

__all__ = [
    "Plan",
    "apply",
    "check_entries",
    "close_leftovers",
    "deliver",
    "insert_runs",
    "lock",
    "lock_runs",
    "lock_tasks",
    "plan",
]

# Every writer that locks several rows locks runs before tasks, each in id order, so no
# two of them can deadlock. A batch's runs are locked together with the runs its outgoing
# items will wake, in one ordered statement. The locking statements themselves are plain
# ``id = ANY(...)`` scans: the ids to lock are looked up first, without locks, because a
# locking statement whose WHERE held a subquery over the same table lost rows that another
# transaction updated while it waited (seen under load: whole batches rejected as if their
# leases were gone).
_RECIPIENTS = "SELECT run_id FROM runs WHERE workflow_id = ANY($1::text[]) AND is_current"
_LOCK_RUNS = """
SELECT run_id, workflow_id, status, closed_at, lease_owner, lease_expires_at,
       history_length, ready, problem
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
# Children and successors alike: current, pending, ready. An existing workflow id is
# left alone (ON CONFLICT on runs_current_key).
_INSERT_RUNS = """
INSERT INTO runs (workflow_id, run_id, is_current, name, queue, status, input, created_at,
                  updated_at, parent_id, parent_run_id, history_length, ready, timeout)
SELECT u.workflow_id, u.run_id, true, u.name, u.queue, 'pending', u.input, u.created_at,
       u.created_at, u.parent_id, u.parent_run_id, 0, true, u.timeout
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::float8[],
            $7::text[], $8::text[], $9::float8[])
    AS u(workflow_id, run_id, name, queue, input, created_at, parent_id, parent_run_id,
         timeout)
ON CONFLICT DO NOTHING
"""
_MOVE_SIGNALS = """
UPDATE inbox i SET run_id = u.new_run
FROM unnest($1::text[], $2::text[]) AS u(old_run, new_run)
WHERE i.run_id = u.old_run AND i.kind = ANY($3::text[])
"""
_ADDRESSED = sorted(WORKFLOW_ADDRESSED)  # inbox kinds that follow a workflow id
_INSERT_TASKS = """
INSERT INTO tasks (task_id, run_id, workflow_id, seq, name, queue, data, attempt, status,
                   visible_at, lease_owner, lease_expires_at, created_at)
SELECT u.*, $1 FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                         $7::text[], $8::bytea[], $9::int[], $10::text[], $11::float8[],
                         $12::text[], $13::float8[]) AS u
ON CONFLICT DO NOTHING
"""
_INSERT_TIMERS = """
INSERT INTO timers (run_id, seq, due_at, data)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::bytea[])
ON CONFLICT DO NOTHING
"""
# A lease handed back with inbox items left (arrived during the step, or not consumed):
# the run must be ready for whoever claims next, or those items would be stranded.
_READY_IF_INBOX = """
UPDATE runs r SET ready = true
WHERE r.run_id = ANY($1::text[]) AND NOT r.ready
  AND EXISTS (SELECT 1 FROM inbox i WHERE i.run_id = r.run_id)
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
     queued_gone AS (DELETE FROM tasks WHERE run_id = ANY($1::text[]) AND status = 'queued')
UPDATE tasks SET cancel_requested = true
WHERE run_id = ANY($1::text[]) AND status = 'running'
"""
_UPSERT_PUBLISHED = """
INSERT INTO published (workflow_id, key, value)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value
"""
# An Outgoing item goes to its run_id if given and still open, else to the workflow's
# current run if open (the contract's reading of "else"), else nowhere. Ids are assigned
# in item order; then every recipient becomes ready (`claims.wake`: locked in run id order
# like every multi-run writer here).
_DELIVER = """
WITH o AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
        WITH ORDINALITY AS o(workflow_id, run_id, kind, data, ord)
), t AS (
    SELECT o.ord, o.kind, o.data, COALESCE(
        (SELECT r.run_id FROM runs r
         WHERE r.run_id = o.run_id AND r.workflow_id = o.workflow_id AND r.closed_at IS NULL),
        (SELECT r.run_id FROM runs r
         WHERE r.workflow_id = o.workflow_id AND r.is_current AND r.closed_at IS NULL)
    ) AS target
    FROM o
), ins AS (
    INSERT INTO inbox (run_id, kind, time, data)
    SELECT target, kind, $5, data FROM t WHERE target IS NOT NULL ORDER BY ord
    RETURNING run_id
)
SELECT DISTINCT run_id FROM ins
"""


async def deliver(conn: Any, items: Sequence[Outgoing], now: float) -> None:
    """Append ``items`` to their recipients' inboxes and mark those runs ready."""
    if items:
        rows = await conn.fetch(
            _DELIVER,
            [o.workflow_id for o in items],
            [o.run_id for o in items],
            [o.kind for o in items],
            [o.data for o in items],
            now,
        )
        await wake(conn, [r["run_id"] for r in rows])


async def close_leftovers(conn: Any, run_ids: Sequence[str]) -> None:
    """For runs just closed: delete their timers and queued tasks, flag running tasks
    (lock them first with `lock_tasks`)."""
    if run_ids:
        await conn.execute(_CLOSE_LEFTOVERS, list(run_ids))


async def insert_runs(conn: Any, runs: Sequence[NewRun]) -> None:
    """Insert new current runs (pending, ready); an existing workflow id is left alone."""
    if runs:
        await conn.execute(
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
        )


@dataclass(slots=True)
class _Run:
    """A locked run row as the plan sees it, updated as steps are accepted."""

    workflow_id: str
    status: str
    closed: bool
    lease_owner: str | None
    lease_expires_at: float | None
    history_length: int
    ready: bool
    problem: str | None
    # the merged update, once a step of this run is accepted
    touched: bool = False
    new_status: str | None = None
    result: bytes | None = None
    error: bytes | None = None
    closing: bool = False
    release: bool = False
    continued_to: str | None = None


@dataclass(slots=True)
class Plan:
    """What `apply` writes for the accepted steps of one batch."""

    accepted: list[bool] = field(default_factory=list)
    topics: set[str] = field(default_factory=set)
    runs: dict[str, _Run] = field(default_factory=dict)
    journal: list[tuple[str, int, str, float, bytes]] = field(default_factory=list)
    consumed: list[int] = field(default_factory=list)
    new_runs: list[NewRun] = field(default_factory=list)
    moved_signals: list[tuple[str, str]] = field(default_factory=list)
    tasks: list[tuple[Any, ...]] = field(default_factory=list)
    timers: list[tuple[str, int, float, bytes]] = field(default_factory=list)
    finished_tasks: list[str] = field(default_factory=list)
    cancelled_tasks: list[str] = field(default_factory=list)
    cancelled_timers: list[tuple[str, int]] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    outgoing: list[Outgoing] = field(default_factory=list)
    published: dict[tuple[str, str], bytes] = field(default_factory=dict)
    released: list[str] = field(default_factory=list)  # leases handed back, run still open


def check_entries(steps: Sequence[StepCommit]) -> None:
    """Raise `ValueError` unless every step's entries continue gaplessly from its
    ``expected_length`` (a bug in the caller, refused before anything is written)."""
    for step in steps:
        for i, entry in enumerate(step.entries):
            if entry.seq != step.expected_length + 1 + i:
                raise ValueError(
                    f"Step of run {step.run_id!r}: entry {i} has seq {entry.seq}, expected "
                    f"{step.expected_length + 1 + i} (seqs continue from expected_length "
                    f"{step.expected_length}, gapless)."
                )


async def lock_runs(conn: Any, run_ids: Collection[str], outgoing: Sequence[Outgoing]) -> list[Any]:
    """Lock ``run_ids`` and the runs ``outgoing`` may be delivered to, in one statement in
    run id order; return the rows of ``run_ids``."""
    wanted = set(run_ids)
    ids = wanted | {o.run_id for o in outgoing if o.run_id is not None}
    if outgoing:
        workflows = sorted({o.workflow_id for o in outgoing})
        ids |= {r["run_id"] for r in await conn.fetch(_RECIPIENTS, workflows)}
    rows = await conn.fetch(_LOCK_RUNS, sorted(ids))
    return [row for row in rows if row["run_id"] in wanted]


async def lock(conn: Any, steps: Sequence[StepCommit]) -> tuple[list[Any], list[Any]]:
    """Lock the batch's run rows (with the runs its outgoing items go to), then every task
    row it may change; return the batch's run rows and the task rows."""
    outgoing = [o for s in steps for o in s.outgoing]
    runs = await lock_runs(conn, {s.run_id for s in steps}, outgoing)
    return runs, await lock_tasks(
        conn,
        {t for s in steps for t in (*s.finished_tasks, *s.cancelled_tasks)},
        {s.run_id for s in steps if s.status in CLOSED_STATUSES},
    )


async def lock_tasks(conn: Any, task_ids: Collection[str], closing: Collection[str]) -> list[Any]:
    """Lock ``task_ids`` and every task of the runs ``closing``, in task id order."""
    ids = set(task_ids)
    if closing:
        ids |= {r["task_id"] for r in await conn.fetch(_RUN_TASKS, list(closing))}
    return await conn.fetch(_LOCK_TASKS, sorted(ids)) if ids else []


def plan(
    steps: Sequence[StepCommit], run_rows: Sequence[Any], task_rows: Sequence[Any], now: float
) -> Plan:
    """Decide every step against the locked rows (see `StepCommit`) and gather the writes."""
    out = Plan()
    for row in run_rows:
        out.runs[row["run_id"]] = _Run(
            workflow_id=row["workflow_id"],
            status=row["status"],
            closed=row["closed_at"] is not None,
            lease_owner=row["lease_owner"],
            lease_expires_at=row["lease_expires_at"],
            history_length=row["history_length"],
            ready=row["ready"],
            problem=row["problem"],
        )
    task_lease: dict[str, tuple[str | None, int]] = {
        r["task_id"]: (r["lease_owner"], r["attempt"]) for r in task_rows
    }
    for step in steps:
        run = out.runs.get(step.run_id)
        ok = (
            run is not None
            and not run.closed
            and run.lease_owner == step.owner
            and run.lease_expires_at is not None
            and run.lease_expires_at > now
            and run.history_length == step.expected_length
            and all(
                task_lease.get(t) == (step.owner, attempt)
                for t, attempt in step.finished_tasks.items()
            )
        )
        out.accepted.append(ok)
        if ok:
            assert run is not None
            _accept(out, run, step, task_lease, now)
    return out


def _accept(
    out: Plan,
    run: _Run,
    step: StepCommit,
    task_lease: dict[str, tuple[str | None, int]],
    now: float,
) -> None:
    run_id, topic = step.run_id, run_topic(run.workflow_id)
    for entry in step.entries:
        out.journal.append((run_id, entry.seq, entry.kind, entry.time, entry.data))
    run.history_length = step.expected_length + len(step.entries)
    run.touched = True
    out.consumed.extend(step.consumed_inbox)
    if step.status is not None:
        if step.status != run.status:
            out.topics.add(topic)
        run.status = run.new_status = step.status
    if step.result is not None:
        run.result = step.result
    if step.error is not None:
        run.error = step.error
    if step.problem != run.problem:  # each step states the run's current problem
        run.problem = step.problem
        out.topics.add(topic)
    for child in step.new_runs:
        out.topics.add(run_topic(child.workflow_id))
    for task in step.new_tasks:
        status = "queued" if task.lease_owner is None else "running"
        out.tasks.append(
            (task.task_id, task.run_id, task.workflow_id, task.seq, task.name, task.queue,
             task.data, task.attempt, status, task.visible_at, task.lease_owner,
             task.lease_expires_at)
        )  # fmt: skip
        task_lease[task.task_id] = (task.lease_owner, task.attempt)
        if task.lease_owner is None:
            out.topics.add(TOPIC_TASKS if task.visible_at <= now else TOPIC_TIMERS)
    for task_id in step.finished_tasks:
        out.finished_tasks.append(task_id)
        task_lease.pop(task_id, None)
    out.cancelled_tasks.extend(step.cancelled_tasks)
    for timer in step.new_timers:
        out.timers.append((timer.run_id, timer.seq, timer.due_at, timer.data))
        out.topics.add(TOPIC_TIMERS)
    out.cancelled_timers.extend((run_id, seq) for seq in step.cancelled_timers)
    if step.new_runs:
        out.new_runs.extend(step.new_runs)
        out.topics.add(TOPIC_RUNS)
    if step.outgoing:
        out.outgoing.extend(step.outgoing)
        out.topics.add(TOPIC_RUNS)
    for key, value in step.published.items():
        out.published[(run.workflow_id, key)] = value
        out.topics.add(topic)
    if step.status in CLOSED_STATUSES:
        run.closed = run.closing = True
        out.closed.append(run_id)
        out.topics.add(topic)
        if step.status == "continued_as_new" and step.successor is not None:
            run.continued_to = step.successor.run_id
            out.new_runs.append(step.successor)
            out.moved_signals.append((run_id, step.successor.run_id))
            out.topics.add(TOPIC_RUNS)
    if step.release_lease or run.closing:
        run.release = True
        run.lease_owner = run.lease_expires_at = None
        if not run.closing:
            out.released.append(run_id)
            if run.ready:
                out.topics.add(TOPIC_RUNS)  # items came during the step: someone claim it


async def apply(conn: Any, p: Plan, now: float) -> None:
    """Write the accepted steps of ``p`` (see the module docstring for the order)."""
    if p.journal:
        await conn.execute(_INSERT_JOURNAL, *_columns(p.journal, 5))
    if p.consumed:
        await conn.execute(_DELETE_INBOX, p.consumed)
    touched = [(run_id, r) for run_id, r in p.runs.items() if r.touched]
    if touched:
        await conn.execute(
            _UPDATE_RUNS,
            now,
            [run_id for run_id, _ in touched],
            [r.history_length for _, r in touched],
            [r.new_status for _, r in touched],
            [r.result is not None for _, r in touched],
            [r.result for _, r in touched],
            [r.error is not None for _, r in touched],
            [r.error for _, r in touched],
            [r.problem for _, r in touched],
            [r.closing for _, r in touched],
            [r.release for _, r in touched],
            [r.continued_to for _, r in touched],
        )
    await insert_runs(conn, p.new_runs)
    if p.moved_signals:
        await conn.execute(_MOVE_SIGNALS, *_columns(p.moved_signals, 2), _ADDRESSED)
    if p.tasks:
        await conn.execute(_INSERT_TASKS, now, *_columns(p.tasks, 12))
    if p.timers:
        await conn.execute(_INSERT_TIMERS, *_columns(p.timers, 4))
    if p.finished_tasks:
        await conn.execute(_DELETE_TASKS, p.finished_tasks)
    if p.cancelled_tasks:
        await conn.execute(_CANCEL_TASKS, p.cancelled_tasks)
    if p.cancelled_timers:
        await conn.execute(_DELETE_TIMERS, *_columns(p.cancelled_timers, 2))
    await close_leftovers(conn, p.closed)
    await deliver(conn, p.outgoing, now)
    if p.published:
        keys = list(p.published)
        await conn.execute(
            _UPSERT_PUBLISHED,
            [wf for wf, _ in keys],
            [key for _, key in keys],
            [p.published[k] for k in keys],
        )
    if p.released and await conn.execute(_READY_IF_INBOX, p.released) != "UPDATE 0":
        p.topics.add(TOPIC_RUNS)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into ``width`` column lists (the arrays ``unnest`` takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]
