"""The rows the storage contract takes and gives (`durable.store.Store`): runs, journal
entries, inbox items, activity tasks and their outcomes, timers, messages for other
workflows, a step's commit, workers and queue figures. Plain frozen dataclasses; payloads
are opaque ``bytes``, times POSIX seconds. `durable.store` re-exports every name here, and
its module docstring describes the tables they come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

__all__ = [
    "ClaimedRun",
    "InboxItem",
    "JournalEntry",
    "NewRun",
    "NewStepLog",
    "NewTask",
    "NewTimer",
    "Outgoing",
    "QueueStats",
    "RunExtras",
    "RunRecord",
    "ScheduleRecord",
    "StepCommit",
    "StepLog",
    "TaskOutcome",
    "TaskRecord",
    "WorkerRecord",
    "merge_queue_stats",
]


@dataclass(frozen=True, slots=True)
class NewRun:
    """A run to create: a workflow started by a client, a child, or a continue-as-new."""

    workflow_id: str
    run_id: str
    name: str
    queue: str
    input: bytes
    created_at: float
    parent_id: str | None = None
    parent_run_id: str | None = None
    timeout: float | None = None  # seconds the whole run may take
    tags: Mapping[str, str] | None = None  # searchable labels (`Client.list(tags=...)`)
    trace: str | None = None  # W3C traceparent of the span that started it (`durable.tracing`)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of ``runs`` as stored."""

    workflow_id: str
    run_id: str
    name: str
    queue: str
    status: str
    input: bytes
    result: bytes | None
    error: bytes | None
    created_at: float
    updated_at: float
    closed_at: float | None
    parent_id: str | None
    parent_run_id: str | None
    history_length: int
    ready: bool
    lease_owner: str | None
    lease_expires_at: float | None
    parked: bool
    problem: str | None
    continued_to: str | None
    timeout: float | None
    is_current: bool
    tags: Mapping[str, str] = field(default_factory=dict)
    trace: str | None = None  # W3C traceparent its spans descend from (`durable.tracing`)


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal entry: ``seq`` from 1, gapless per run."""

    seq: int
    kind: str
    time: float
    data: bytes


@dataclass(frozen=True, slots=True)
class InboxItem:
    """Something for a run that its lease holder has not yet moved into the journal."""

    id: int
    run_id: str
    kind: str
    time: float
    data: bytes


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run a worker now holds the lease on, with every inbox item it had at claim time."""

    run: RunRecord
    inbox: list[InboxItem]


@dataclass(frozen=True)  # no slots: the worker makes them with `durable.frozen.build`
class NewTask:
    """An activity task to create. ``lease_owner`` set means "already claimed by me"."""

    task_id: str
    run_id: str
    workflow_id: str
    seq: int
    name: str
    queue: str
    data: bytes
    visible_at: float
    attempt: int = 1
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    key: str | None = None  # durable.call(..., key=): per-key concurrency (durable.limits)
    priority: int = 0  # durable.call(..., priority=): higher is claimed first


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One row of ``tasks``."""

    task_id: str
    run_id: str
    workflow_id: str
    seq: int
    name: str
    queue: str
    data: bytes
    attempt: int
    status: str  # "queued" | "running"
    visible_at: float
    lease_owner: str | None
    lease_expires_at: float | None
    heartbeat_details: bytes | None
    cancel_requested: bool
    last_error: bytes | None
    created_at: float
    key: str | None = None
    priority: int = 0


@dataclass(frozen=True, slots=True)
class TaskOutcome:
    """How an attempt ended, for `Store.finish_task`.

    ``kind="done"``: delete the task and deliver ``item_kind``/``item_data`` to the run's
    inbox (``activity_completed`` or ``activity_failed``).
    ``kind="retry"``: requeue the task with ``attempt + 1`` at ``visible_at`` and deliver an
    ``activity_retrying`` item carrying the error (``last_error`` is stored on the task).
    ``kind="release"``: requeue as it is (same attempt, no inbox item), e.g. on shutdown.
    ``details``: for retry and release, the attempt's last heartbeat details, saved for the
    next attempt (``None`` keeps what the task has).
    ``record``: the typed journal record that ``item_data`` encodes, when it was decided in
    this process (a worker stepping the run itself applies it without decoding it again);
    never stored nor sent, nor compared.
    """

    kind: Literal["done", "retry", "release"]
    item_kind: str = ""
    item_data: bytes = b""
    visible_at: float = 0.0
    last_error: bytes | None = None
    details: bytes | None = None
    record: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class NewTimer:
    """A durable timer: at ``due_at`` a ``timer_fired`` item with ``data`` reaches the run."""

    run_id: str
    seq: int
    due_at: float
    data: bytes


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An inbox item for another workflow (a parent hearing of its child, a child cancelled).

    With ``run_id``: delivered to that run of ``workflow_id`` if it is still open, else
    dropped: a child's result reaches the parent run that started it, never a newer run of
    the same workflow id. Except for the kinds in `journal.WORKFLOW_ADDRESSED` (signals,
    cancellation: meant for the workflow, whichever run it is on), which follow a run that
    continued as new to the workflow's current run, if open. Without ``run_id``: to the
    workflow's current run if open. Dropped silently when there is no such run (a parent's
    cancellation of a child that was never created reaches no stranger holding its id).
    (`durable.plan.route` is the rule.)
    """

    workflow_id: str
    kind: str
    data: bytes
    run_id: str | None = None


@dataclass(slots=True)
class StepCommit:
    """Everything one step of one run writes, committed atomically and fenced.

    The step is accepted only if, at commit time, ``runs.lease_owner == owner``, the lease
    has not expired (``lease_expires_at > now``: a lease expiring exactly at ``now`` has
    expired, as claims see it), ``history_length == expected_length``, the run is not
    closed, and every task in ``finished_tasks`` still exists leased to ``owner`` at the
    attempt given (an attempt declared lost, and retried, cannot deliver its result late).
    Otherwise nothing of it is written. Steps of one batch are judged in order, each
    seeing what the accepted ones before it wrote (two steps of one run chain).

    Accepted, the store: appends ``entries`` (their seqs continue from
    ``expected_length``); deletes the ``consumed_inbox`` items; creates ``new_tasks``,
    ``new_timers`` and ``new_runs``; deletes ``finished_tasks`` and ``cancelled_timers``;
    sets ``cancel_requested`` on ``cancelled_tasks``; delivers ``outgoing`` (see
    `Outgoing`; after the whole batch, so an item for a run closing in the same batch is
    dropped); upserts ``published`` and ``updates`` (outcomes of updates, keyed by the
    workflow id and update id, notifying the workflow's run topic); merges ``tags`` into
    the run's tags (a key given takes the new value; the tag index follows); sets
    ``history_length``, ``updated_at``, ``problem`` and, when given, ``status``
    (``running`` after the first step), ``result``/``error``.

    ``new_runs`` are children. A child whose workflow id has an **open** current run is
    not created: the committing run instead receives a ``child_failed`` inbox item
    (`journal.ChildFailed` with status ``already_exists``, a ``WorkflowAlreadyExists``
    error naming the running run, and ``run_id`` the child run that was not created) and
    becomes ready. A child whose id's current run is **closed** becomes the new current run
    (the old run stays, not current, and the id's published values are cleared, as
    ``create_run(..., if_exists="restart")`` does).

    When ``status`` is closed: ``closed_at = now``; the run's remaining timers, queued
    tasks and external waits (tasks leased to `EXTERNAL_OWNER`) are deleted and its other
    running tasks get ``cancel_requested``; the lease is released.
    When ``status == "continued_as_new"``, ``successor`` becomes the workflow's current run
    (ready), the old run's ``continued_to`` names it, and the old run's unconsumed inbox
    items of `journal.WORKFLOW_ADDRESSED` kinds (signals, cancellation: sent to the
    workflow id, not to that run) move to it, keeping their ids and so their order
    before anything sent to the successor later.
    With ``release_lease`` the lease is released (``lease_owner = NULL``) after the step.
    The rules are written once, in `durable.plan`; each backend applies its plan.
    """

    run_id: str
    owner: str
    expected_length: int
    entries: list[JournalEntry]
    consumed_inbox: list[int] = field(default_factory=list)
    status: str | None = None
    result: bytes | None = None
    error: bytes | None = None
    release_lease: bool = False
    new_tasks: list[NewTask] = field(default_factory=list)
    finished_tasks: dict[str, int] = field(default_factory=dict)  # task id -> attempt
    cancelled_tasks: list[str] = field(default_factory=list)
    new_timers: list[NewTimer] = field(default_factory=list)
    cancelled_timers: list[int] = field(default_factory=list)  # seqs of this run's timers
    new_runs: list[NewRun] = field(default_factory=list)
    successor: NewRun | None = None
    outgoing: list[Outgoing] = field(default_factory=list)
    published: dict[str, bytes] = field(default_factory=dict)
    problem: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # merged into the run's tags
    updates: dict[str, bytes] = field(default_factory=dict)  # update id -> outcome


class RunExtras(NamedTuple):
    """What `Store.read_extras` returns: a run's state beyond its row and journal."""

    published: dict[str, bytes]
    tasks: list[TaskRecord]
    timers: dict[int, float]


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How much work waits on one queue (`Store.queue_stats`), for operators."""

    queue: str
    tasks_waiting: int  # activity tasks queued and due: waiting for a worker of this queue
    oldest_task_at: float | None  # since when the longest-waiting of them has been due
    tasks_delayed: int  # queued for a later attempt (retry backoff)
    runs_waiting: int  # open runs a worker could claim now (work, and no live lease)
    oldest_run_at: float | None  # the last change of the longest-waiting of them


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A live worker and what it serves. ``signatures``: workflow name -> its parameters as
    `durable.signature.describe` wrote them (empty from workers that predate them)."""

    worker_id: str
    queues: tuple[str, ...]
    workflows: tuple[str, ...]
    activities: tuple[str, ...]
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    signatures: Mapping[str, str] = field(default_factory=dict)


def merge_queue_stats(
    tasks: Sequence[Sequence[Any]], runs: Sequence[Sequence[Any]]
) -> list[QueueStats]:
    """`QueueStats` from a backend's two aggregates: ``(queue, due, oldest due, delayed)``
    rows of queued tasks and ``(queue, count, oldest)`` rows of waiting runs."""
    out: dict[str, dict[str, Any]] = {}
    for queue, due, oldest, delayed in tasks:
        out.setdefault(queue, {}).update(
            tasks_waiting=int(due or 0), oldest_task_at=oldest, tasks_delayed=int(delayed or 0)
        )
    for queue, count, oldest in runs:
        out.setdefault(queue, {}).update(runs_waiting=int(count), oldest_run_at=oldest)
    return [
        QueueStats(
            queue=queue,
            tasks_waiting=v.get("tasks_waiting", 0),
            oldest_task_at=v.get("oldest_task_at"),
            tasks_delayed=v.get("tasks_delayed", 0),
            runs_waiting=v.get("runs_waiting", 0),
            oldest_run_at=v.get("oldest_run_at"),
        )
        for queue, v in sorted(out.items())
    ]


@dataclass(frozen=True, slots=True)
class NewStepLog:
    """A log record captured during a step (`durable.steplogs`): ``attempt`` is the
    activity attempt's number, 0 for workflow code (``seq`` then is the journal position
    the code had reached); ``level`` a `logging` level."""

    run_id: str
    seq: int
    attempt: int
    at: float
    level: int
    logger: str
    message: str


@dataclass(frozen=True, slots=True)
class StepLog:
    """A stored `NewStepLog`; ``id`` orders a run's records (and pages them)."""

    id: int
    run_id: str
    seq: int
    attempt: int
    at: float
    level: int
    logger: str
    message: str


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """One row of ``schedules`` (`durable.schedules`): what to start, when, and its state.

    Every write of a schedule sets ``version`` one higher and is a compare-and-set on the
    version read (`Store.save_schedule`), so of two workers firing one tick, one writes.
    """

    schedule_id: str
    workflow: str  # the workflow's name
    queue: str
    input: bytes  # the encoded arguments, as a start's
    cron: str
    timezone: str
    overlap: str
    catchup_window: float  # seconds: older missed ticks are skipped
    jitter: float  # seconds: each tick starts up to this much later (0: at once)
    paused: bool
    next_tick: float | None  # the next tick not yet handled (None: no more)
    due_at: float | None  # when a worker acts on it: next_tick plus its jitter
    buffered: tuple[float, ...]  # ticks waiting for the latest run to close (overlap)
    latest: str | None  # workflow id of the latest run it started
    recent: tuple[str, ...]  # workflow ids of its latest runs, newest first
    version: int
    created_at: float
    updated_at: float
