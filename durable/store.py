"""The storage contract: the few transactional operations a client and a worker need.

A backend (``backends/durable_sqlite``, ``backends/durable_postgres``) subclasses `Store`.
Payloads are opaque ``bytes`` here (msgpack, encoded above this layer); times are POSIX
seconds as ``float``. The store never reads a clock: every method that needs "now" is
given it, so a test's virtual clock and a worker's wall clock both pass through.

Logical schema (each backend spells it in its own SQL):

- ``runs``: one row per workflow run. ``workflow_id`` + ``is_current`` (at most one current
  run per workflow id), ``name``, ``queue``, ``tags``, ``status``, ``input``/``result``/``error``,
  times, ``parent_id``/``parent_run_id``, ``history_length`` (journal entries so far),
  ``ready`` (there is something for a worker to do), ``lease_owner``/``lease_expires_at``,
  ``parked``/``problem``, ``continued_to``, ``timeout``.
- ``journal``: (run_id, seq) → kind, time, data. Gapless seq from 1, append-only, written only
  by `Store.commit_steps` (fenced by the lease) and `Store.terminate`.
- ``inbox``: id (increasing) → run_id, kind, time, data. Everything that is not the lease
  holder writes here; the lease holder moves items into the journal in id order.
- ``tasks``: activity tasks, one per scheduled activity (``task_id`` = ``"{run_id}:{seq}"``),
  with attempt, ``visible_at`` (next attempt time), lease, heartbeat details, cancel flag;
  and one per open external wait (``durable.external``), leased to `EXTERNAL_OWNER` for
  ever, so that completing it is a fenced `Store.finish_task` like any attempt's end.
- ``timers``: (run_id, seq) → due_at. A due timer becomes a ``timer_fired`` inbox item.
- ``published``: (workflow_id, key) → value, read by ``handle.read``.
- ``workers``: live workers and what they serve (for ``describe().problem``).
- ``meta``: schema version.

Task leases: an attempt holds its task's lease while it runs — a Python worker renews it
with `Store.heartbeat` every few seconds; a remote worker (`durable.tasks`) gets a lease of
its heartbeat timeout, never past its start-to-close deadline, and renews it the same way.
A lease that expires means the attempt is lost (its worker died, or the remote attempt
missed its heartbeat or its deadline). Whoever claims the task next counts that attempt as
lost before anything else (`durable.retry.lost`: retried or failed per policy): a worker
serving its name, a remote poll of its queue, or — so that no expired lease waits for a
poller that may never come — the sweep every worker runs (`claim_tasks(...,
expired_only=True)` over every queue and name, once a second, excluding its own attempts).

Notifications: after a commit a store calls its hub so waiters in this process wake at once
(see `Store.wait`); backends that can also reach other processes (PostgreSQL
LISTEN/NOTIFY, SQLite's data_version poll) do so.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Literal, NamedTuple, cast
from urllib.parse import urlsplit

from .errors import StoreError, WorkflowAlreadyExists
from .notify import Hub
from .topics import (
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_STEPS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    run_topic,
    steps_topic,
)
from .urls import SECRET_PARAMETERS, is_secret_parameter, redact_url

IfExists = Literal["return", "error", "restart"]
CREATE_BATCH = 500  # most runs one create_runs transaction takes from concurrent create_run

__all__ = [
    "BACKENDS_GROUP",
    "CLOSED_STATUSES",
    "EXTERNAL_OWNER",
    "NEVER",
    "SECRET_PARAMETERS",
    "STATUSES",
    "TOPIC_RUNS",
    "TOPIC_STATUS",
    "TOPIC_STEPS",
    "TOPIC_TASKS",
    "TOPIC_TIMERS",
    "ClaimedRun",
    "InboxItem",
    "JournalEntry",
    "NewRun",
    "NewTask",
    "NewTimer",
    "Outgoing",
    "RunExtras",
    "RunRecord",
    "StepCommit",
    "Store",
    "TaskOutcome",
    "TaskRecord",
    "WorkerRecord",
    "is_secret_parameter",
    "open_store",
    "redact_url",
    "run_topic",
    "steps_topic",
]

#: Every run status, in the order a run goes through them.
STATUSES = (
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
    "terminated",
    "continued_as_new",
)
#: Statuses after which a run never changes again.
CLOSED_STATUSES = frozenset(STATUSES[2:])

#: The lease owner of the row of an external wait: no worker claims or renews it (its lease
#: is `NEVER`), and it goes when its run closes. Worker ids starting ``durable:`` are refused.
EXTERNAL_OWNER = "durable:external"
NEVER = float("inf")  # the lease_expires_at of a lease that never expires


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


@dataclass(frozen=True, slots=True)
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
    """

    kind: Literal["done", "retry", "release"]
    item_kind: str = ""
    item_data: bytes = b""
    visible_at: float = 0.0
    last_error: bytes | None = None
    details: bytes | None = None


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
    dropped); upserts ``published``; sets ``history_length``, ``updated_at``,
    ``problem`` and, when given, ``status`` (``running`` after the first step),
    ``result``/``error``.

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


class RunExtras(NamedTuple):
    """What `Store.read_extras` returns: a run's state beyond its row and journal."""

    published: dict[str, bytes]
    tasks: list[TaskRecord]
    timers: dict[int, float]


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


class Store(abc.ABC):
    """The storage contract. One instance per client or worker; not shared across loops.

    Implementations are async context managers: ``async with store:`` opens (connects and
    migrates) and closes. `aclose` is idempotent; using a closed store raises `StoreError`.
    """

    #: The URL this store was opened from, with any password removed.
    url: str
    #: This database's in-process hub (`durable.notify.hub_for`); notified after commits.
    hub: Hub
    # create_run calls waiting to be written together, and the task writing them.
    _creates: list[tuple[NewRun, IfExists, asyncio.Future[tuple[RunRecord, bool]]]] | None = None
    _creator: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema to this code's version.

        Migrations are serialised across processes (a file lock or an advisory lock), so any
        number of processes may open an empty database at once. A database whose schema is
        newer than this code raises `StoreError` naming both versions and saying to upgrade
        durable-flow; nothing is changed then.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Close connections. Idempotent."""

    # ---- client side -------------------------------------------------------------------

    async def create_run(self, run: NewRun, *, if_exists: IfExists) -> tuple[RunRecord, bool]:
        """Create ``run`` as the current run of ``run.workflow_id``, status ``pending``, ready.

        Atomic and race-free: of two concurrent creates with one workflow id, one wins.
        If the workflow id already has a current run: ``"return"`` gives ``(existing,
        False)``; ``"error"`` raises `WorkflowAlreadyExists`; ``"restart"`` gives
        ``(existing, False)`` while it is open and otherwise makes the new run current
        (the old one stays, ``is_current = False``) and gives ``(new, True)``.

        Concurrent calls on one store are written together by `create_runs`, in one
        transaction (group commit, as the worker does for steps): a client starting many
        workflows at once pays one durable write per batch, not one per start.
        """
        if if_exists not in ("return", "error", "restart"):
            raise ValueError(f"if_exists must be 'return', 'error' or 'restart', not {if_exists!r}")
        fut: asyncio.Future[tuple[RunRecord, bool]] = asyncio.get_running_loop().create_future()
        if self._creates is None:
            self._creates = []
        self._creates.append((run, if_exists, fut))
        if self._creator is None or self._creator.done():
            self._creator = asyncio.ensure_future(self._create_pending())
        return await fut

    async def _create_pending(self) -> None:
        while self._creates:
            batch = self._creates[:CREATE_BATCH]
            del self._creates[:CREATE_BATCH]
            try:
                results = await self.create_runs([(run, mode) for run, mode, _ in batch])
            except BaseException as exc:
                for *_, fut in batch:
                    if fut.done():
                        continue
                    if isinstance(exc, asyncio.CancelledError):
                        fut.cancel()
                    else:
                        fut.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (*_, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue  # its caller gave up waiting
                if isinstance(result, WorkflowAlreadyExists):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    @abc.abstractmethod
    async def create_runs(
        self, runs: Sequence[tuple[NewRun, IfExists]]
    ) -> list[tuple[RunRecord, bool] | WorkflowAlreadyExists]:
        """`create_run` for each ``(run, if_exists)`` in order, in one transaction: each
        sees the ones before it. A run refused by ``"error"`` gets its `WorkflowAlreadyExists`
        in the list (returned, not raised) and the others go on."""

    @abc.abstractmethod
    async def get_run(self, workflow_id: str, run_id: str | None = None) -> RunRecord | None:
        """The workflow's current run, or the given run of it; ``None`` if there is none."""

    @abc.abstractmethod
    async def list_runs(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        limit: int = 100,
        after: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[RunRecord]:
        """Runs (every run, current or not), newest first — by ``created_at``, then
        ``run_id``, both descending — filtered by ``status``, ``name`` and ``tags`` (a run
        matches when it has every given tag with that value). With ``after``
        (a run id: the last of the previous page), only the runs that come after that run
        in this order (keyset paging: stable while runs are added); none if it does not
        exist."""

    @abc.abstractmethod
    async def read_journal(self, run_id: str, after_seq: int = 0) -> list[JournalEntry]:
        """The run's journal entries with ``seq > after_seq``, in order."""

    @abc.abstractmethod
    async def read_extras(self, workflow_id: str, run_id: str) -> RunExtras:
        """The workflow's published values (by key), the run's activity tasks (by seq), and
        its timers still to fire (seq → due time)."""

    @abc.abstractmethod
    async def send(
        self, workflow_id: str, kind: str, data: bytes, now: float, *, run_id: str | None = None
    ) -> str | None:
        """Append an inbox item to the workflow's current run (or run ``run_id``) and mark it
        ready. Returns the run id it went to, or ``None`` when that run is closed.

        Raises `WorkflowNotFound` when no such workflow (or run) exists.
        """

    @abc.abstractmethod
    async def terminate(
        self,
        run_id: str,
        *,
        entry_data: bytes,
        error: bytes,
        now: float,
        parent_item: Outgoing | None,
    ) -> bool:
        """Close an open run as ``terminated`` at once, whoever holds its lease.

        In one transaction: append a ``workflow_terminated`` journal entry (``entry_data``),
        set status/error/closed_at, revoke the lease (so the holder's next commit is
        rejected), delete its timers, queued tasks and external waits, flag its other
        running tasks ``cancel_requested``, and deliver ``parent_item``. False if the run
        was closed.
        """

    # ---- worker side -------------------------------------------------------------------

    @abc.abstractmethod
    async def register_worker(self, worker: WorkerRecord, *, unpark: bool = True) -> None:
        """Record a starting worker (or replace its row), and unless ``unpark`` is false,
        unpark the runs it can serve (queue and name match) so they are retried at once
        with its code."""

    @abc.abstractmethod
    async def heartbeat(
        self,
        worker_id: str,
        *,
        runs: Collection[str],
        tasks: Mapping[str, tuple[int, bytes | None]],
        now: float,
        lease_until: float,
    ) -> tuple[set[str], set[str]]:
        """Renew the worker's row and its leases, in one transaction. ``worker_id`` may be a
        remote worker's (`durable.tasks`), renewing one attempt's lease.

        ``runs``: run ids whose lease to extend to ``lease_until`` (only where still owned).
        ``tasks``: task id -> (attempt, new heartbeat details or ``None`` to keep the old),
        extended likewise only where still leased to this worker at that attempt. Returns
        ``(lost, cancel_requested)``: the run and task ids no longer leased to this worker
        (at that attempt), and the task ids whose cancellation was requested; ``lost``
        holds ``worker_id`` too if its row was gone (dropped as silent after a stall): the
        caller registers again.
        Workers not heard from for a while are deleted from ``workers`` here too.
        """

    @abc.abstractmethod
    async def deregister_worker(self, worker_id: str, now: float) -> None:
        """Graceful stop: hand back every run and task lease the worker holds (runs become
        ready for others at once, running tasks requeued with the same attempt) and delete
        its row."""

    @abc.abstractmethod
    async def claim_runs(
        self,
        owner: str,
        *,
        queues: Collection[str],
        names: Collection[str],
        now: float,
        lease_until: float,
        limit: int,
    ) -> list[ClaimedRun]:
        """Lease up to ``limit`` runs with work, oldest first, and return them with their inbox.

        Claimable: open, not parked, ``queue`` in ``queues``, ``name`` in ``names``, and
        either ready with its lease free, expired or already ``owner``'s, or holding an
        expired lease (its worker died). Claiming sets ``lease_owner``, ``lease_expires_at =
        lease_until`` and ``ready = False``; an inbox item arriving later sets ready again.
        """

    @abc.abstractmethod
    async def commit_steps(self, steps: Sequence[StepCommit], now: float) -> list[bool]:
        """Commit many runs' steps in one transaction (group commit); see `StepCommit`.

        Returns, per step, whether it was accepted; a rejected step writes nothing and does
        not affect the others.
        """

    @abc.abstractmethod
    async def park(self, run_id: str, owner: str, problem: str) -> None:
        """Park a run the owner cannot advance (non-determinism): set ``parked`` and
        ``problem``, release the lease; nothing else changes. No-op if not owner's."""

    @abc.abstractmethod
    async def claim_tasks(
        self,
        owner: str,
        *,
        queues: Collection[str] | None,
        names: Collection[str] | None,
        now: float,
        lease_until: float,
        limit: int,
        exclude: Collection[str] = (),
        expired_only: bool = False,
    ) -> list[TaskRecord]:
        """Lease up to ``limit`` activity tasks, earliest ``visible_at`` first.

        Claimable: ``queue``/``name`` match (``None``: any queue, any name) and either
        queued with ``visible_at <= now``, or running with an expired lease (its worker
        died or, for a remote attempt, missed its heartbeat or start-to-close deadline:
        returned with ``status="running"`` so the caller counts that attempt as lost, with
        `durable.retry.lost`). Sets status ``running``, the lease.
        ``exclude``: task ids not to claim, the caller's own attempts still running: a
        lease of its own that lapsed is not taken back (the attempt is alive, merely late
        to renew), and a retry of a task waits until the caller's attempt of it has
        ended, so one worker never runs two attempts of one task at once.
        ``expired_only``: only running tasks with an expired lease, for the sweep that
        counts lost attempts of tasks the caller does not run (see `durable.worker`).
        """

    @abc.abstractmethod
    async def read_task(self, task_id: str) -> TaskRecord | None:
        """The task row ``task_id`` as stored (any status), or ``None`` if there is none."""

    @abc.abstractmethod
    async def read_inbox(self, run_id: str) -> list[InboxItem]:
        """The run's inbox items not yet moved into its journal, in id order (what was
        delivered to it, such as a task's outcome, and not yet journaled)."""

    @abc.abstractmethod
    async def finish_task(
        self, task_id: str, owner: str, attempt: int, outcome: TaskOutcome, now: float
    ) -> bool:
        """End attempt ``attempt`` (see `TaskOutcome`), fenced: False, and nothing written,
        unless the task exists leased to ``owner`` at that attempt. The inbox item is
        dropped if the run has closed."""

    @abc.abstractmethod
    async def fire_timers(self, now: float, limit: int) -> float | None:
        """Turn up to ``limit`` timers due by ``now`` into ``timer_fired`` inbox items (data
        as given at creation; marking their runs ready), atomically and exactly once across
        processes. Returns the earliest remaining due time of any timer or of any queued
        task not yet visible, or ``None`` if there is none."""

    @abc.abstractmethod
    async def list_workers(self) -> list[WorkerRecord]:
        """The workers that have registered and not deregistered or gone silent."""

    def watermark(self) -> int:
        """A token to read before a query and pass to `wait` as ``since``."""
        return self.hub.generation

    async def wait(self, topics: Collection[str], timeout: float, since: int | None = None) -> None:
        """Return once one of ``topics`` may have been notified (after ``since``, a
        `watermark`), or after ``timeout`` seconds.

        Spurious returns are allowed (callers re-query); a missed notification is not,
        within this process. Backends override this to also see other processes' commits
        (LISTEN/NOTIFY, or a poll whose interval is a documented constant).
        """
        await self.hub.wait(topics, timeout, since)


#: The entry-point group a backend registers its `Store` class under, one name per URL scheme.
BACKENDS_GROUP = "durable.backends"


def open_store(url: str) -> Store:
    """The `Store` for ``url``: ``sqlite:///path.db`` or ``postgresql://user@host/db``, or a
    URL of any other backend installed under the ``durable.backends`` entry-point group
    (``[project.entry-points."durable.backends"]`` in its pyproject.toml: the URL scheme
    names the `Store` subclass, which is called with the URL).

    Raises `StoreError` for a scheme no installed backend serves (listing those that are),
    and with the install command when the backend's driver is missing.
    """
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:  # e.g. an unbalanced "[" in the host
        raise StoreError(f"Cannot parse the database URL {redact_url(url)!r}: {exc}.") from exc
    found = {ep.name.lower(): ep for ep in entry_points(group=BACKENDS_GROUP)}
    if scheme not in found:
        installed = ", ".join(f"{name}://" for name in sorted(found)) or "none"
        raise StoreError(
            f"Unknown database URL {redact_url(url)!r}: no installed backend serves "
            f"{scheme + '://' if scheme else 'URLs without a scheme'} (installed: {installed}). "
            "Use e.g. 'sqlite:///path/to/file.db' or 'postgresql://user@host/dbname'."
        )
    try:
        cls = found[scheme].load()
    except ImportError as exc:
        # A backend whose driver is missing says how to install it (durable_postgres does).
        raise StoreError(str(exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, Store)):
        raise StoreError(
            f"The {scheme!r} backend ({found[scheme].value}) is not a durable.store.Store "
            'subclass: check its [project.entry-points."durable.backends"] entry.'
        )
    factory = cast("Callable[[str], Store]", cls)  # a concrete subclass: takes the URL
    return factory(url)
