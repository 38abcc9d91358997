"""Retention on SQLite: deleting closed runs and everything of theirs (`Store.prune_runs`).

One call is one short ``BEGIN IMMEDIATE`` transaction over at most ``limit`` runs, so the
write lock is held for one batch at a time and workers' commits go on between batches.
Which runs may go is `durable.store.Store.prune_runs`'s rule; the statements here spell it:
closed before the cutoff (``runs_closed``, oldest first), and not a child whose parent run
is still open. Their journal, inbox, tasks and timers go by run id (each table's index on
it), their tags by the ``run_tags_delete`` trigger, and the published values of a
workflow id with its current run.
"""

from __future__ import annotations

import json
import sqlite3

__all__ = ["prune_runs"]

_PICK = """SELECT r.run_id, r.workflow_id, r.is_current FROM runs AS r
    WHERE r.closed_at IS NOT NULL AND r.closed_at < ?
    AND NOT EXISTS (
        SELECT 1 FROM runs AS p WHERE p.run_id = r.parent_run_id AND p.closed_at IS NULL
    )
    ORDER BY r.closed_at LIMIT ?"""
_IDS = "(SELECT value FROM json_each(?))"


def prune_runs(conn: sqlite3.Connection, closed_before: float, limit: int) -> list[str]:
    """Delete up to ``limit`` prunable runs inside the caller's write transaction; return
    the workflow ids of the runs deleted (one per run)."""
    rows = conn.execute(_PICK, (closed_before, limit)).fetchall()
    if not rows:
        return []
    ids = json.dumps([row[0] for row in rows])
    for table in ("journal", "inbox", "tasks", "timers", "step_logs", "runs"):
        conn.execute(f"DELETE FROM {table} WHERE run_id IN {_IDS}", (ids,))
    # Published values belong to a workflow id, not a run: they go with its current run.
    current = json.dumps(sorted({row[1] for row in rows if row[2]}))
    conn.execute(f"DELETE FROM published WHERE workflow_id IN {_IDS}", (current,))
    conn.execute(f"DELETE FROM updates WHERE workflow_id IN {_IDS}", (current,))
    return [row[1] for row in rows]
