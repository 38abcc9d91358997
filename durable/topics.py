"""Wake-up topics: the names commits notify (`durable.notify.Hub`, PostgreSQL NOTIFY) and
waiters wait on (`durable.store.Store.wait`). `durable.plan` says which commit notifies
what; `durable.store` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "TOPIC_ANSWERS",
    "TOPIC_LIMITS",
    "TOPIC_QUERIES",
    "TOPIC_RUNS",
    "TOPIC_STATUS",
    "TOPIC_STEPS",
    "TOPIC_TASKS",
    "TOPIC_TIMERS",
    "end_topic",
    "run_topic",
    "steps_topic",
    "tasks_topic",
    "tasks_topics",
]

# Work: what workers wait for.
TOPIC_RUNS = "runs"  # a run was created or became ready
# An activity task was queued or requeued on a queue not named (every poller of any queue
# looks); a task queued by a step names its queue instead (`tasks_topic`).
TOPIC_TASKS = "tasks"
TOPIC_TIMERS = "timers"  # a timer or a delayed task was created
TOPIC_LIMITS = "limits"  # a queue's limits changed (workers re-read which queues have any)
TOPIC_QUERIES = "queries"  # a client left a query for a run (durable.queries)
TOPIC_ANSWERS = "answers"  # a worker answered a query (the asking clients read theirs)
# Live views (durable server's events); no worker waits on these.
TOPIC_STATUS = "status"  # a run was created or its status changed (with its run_topic)
TOPIC_STEPS = "steps"  # steps were committed to runs a NOTIFY had no room to name


def run_topic(workflow_id: str) -> str:
    """The topic notified when a workflow's state changes (created, status, published,
    continued): what ``result()`` and ``read()`` wait on."""
    return f"run:{workflow_id}"


def end_topic(workflow_id: str) -> str:
    """The topic notified when a run of the workflow closes (with `run_topic`): what
    ``result()`` waits on, so it sleeps through the run's start (``running``), a problem
    noted or a value published, where it used to read the run again each time."""
    return f"end:{workflow_id}"


def steps_topic(workflow_id: str) -> str:
    """The topic notified when a step of the workflow's run is committed (new journal
    entries); apart from `run_topic`, so ``result()`` waiters sleep through steps."""
    return f"steps:{workflow_id}"


def tasks_topic(queue: str) -> str:
    """The topic notified when a step queues an activity task on ``queue``: what workers and
    remote pollers of that queue wait on (with `TOPIC_TASKS`), so a task queued for one
    queue does not send the pollers of every other queue to claim nothing."""
    return f"tasks:{queue}"


def tasks_topics(queues: Iterable[str]) -> list[str]:
    """What a poller of ``queues`` waits on: `TOPIC_TASKS` and each queue's `tasks_topic`."""
    return [TOPIC_TASKS, *(tasks_topic(q) for q in queues)]
