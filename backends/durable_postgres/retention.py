"""Retention on PostgreSQL: deleting closed runs and everything of theirs
(`Store.prune_runs`).

One call is one short transaction over at most ``limit`` runs. The runs are picked and
locked in one statement, oldest closed first along ``runs_closed_idx``, with ``SKIP
LOCKED``: a run another transaction holds (a late ``send``, a ``terminate`` finding it
closed, a repair re-opening it) is left for the next call, and nobody waits on the pruner
for a run row. Rows are locked runs before tasks, as every writer here locks them. Which
runs may go is `durable.store.Store.prune_runs`'s rule: closed before the cutoff, and not a
child whose parent run is still open. Their journal, inbox, tasks and timers go by run id,
their tags by the ``run_tags_delete`` trigger, and the published values of a workflow id
with its current run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["prune_runs"]

_PICK = """
SELECT r.run_id, r.workflow_id, r.is_current FROM runs r
WHERE r.closed_at IS NOT NULL AND r.closed_at < $1
  AND NOT EXISTS (
      SELECT 1 FROM runs p WHERE p.run_id = r.parent_run_id AND p.closed_at IS NULL
  )
ORDER BY r.closed_at LIMIT $2
FOR UPDATE OF r SKIP LOCKED
"""
_LOCK_TASKS = """
SELECT task_id FROM tasks WHERE run_id = ANY($1::text[]) ORDER BY task_id FOR UPDATE
"""


async def prune_runs(conn: Any, closed_before: float, limit: int) -> list[str]:
    """Delete up to ``limit`` prunable runs inside the caller's transaction; return the
    workflow ids of the runs deleted (one per run)."""
    rows = await conn.fetch(_PICK, closed_before, limit)
    if not rows:
        return []
    ids = [row["run_id"] for row in rows]
    await conn.fetch(_LOCK_TASKS, ids)
    for table in ("journal", "inbox", "tasks", "timers", "step_logs", "runs"):
        await conn.execute(f"DELETE FROM {table} WHERE run_id = ANY($1::text[])", ids)
    # Published values belong to a workflow id, not a run: they go with its current run.
    current = sorted({row["workflow_id"] for row in rows if row["is_current"]})
    if current:
        await conn.execute("DELETE FROM published WHERE workflow_id = ANY($1::text[])", current)
        await conn.execute("DELETE FROM updates WHERE workflow_id = ANY($1::text[])", current)
    return [row["workflow_id"] for row in rows]
