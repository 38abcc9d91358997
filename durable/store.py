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
  by `Store.commit_steps` (fenced by the lease) and `Store.terminate`; an operator's repair
  is the one exception: `Store.reopen_run` (retry) drops the entries that recorded how a
  run ended, and `Store.fork_run` copies a prefix into a new run (`durable.repair`).
- ``inbox``: id (increasing) → run_id, kind, time, data. Everything that is not the lease
  holder writes here; the lease holder moves items into the journal in id order.
- ``tasks``: activity tasks, one per scheduled activity (``task_id`` = ``"{run_id}:{seq}"``),
  with attempt, ``visible_at`` (next attempt time), lease, heartbeat details, cancel flag;
  and one per open external wait (``durable.external``), leased to `EXTERNAL_OWNER` for
  ever, so that completing it is a fenced `Store.finish_task` like any attempt's end.
- ``timers``: (run_id, seq) → due_at. A due timer becomes a ``timer_fired`` inbox item.
- ``published``: (workflow_id, key) → value, read by ``handle.read``.
- ``workers``: live workers and what they serve (for ``describe().problem``).
- ``queue_limits``: queue -> its limits (`durable.limits`); ``queue_starts``: the recent
  starts on rate-limited queues (queue, at, n), the rate's sliding window. Tasks carry a
  ``key`` and a ``priority`` for them.
- ``meta``: schema version.
- ``queries``: queries clients left for workers and their answers (`durable.querybox`).
- ``schedules``: schedule id → what to start (workflow name, queue, input), when (cron,
  time zone, catch-up window, jitter, paused), overlap policy, and its state: next tick,
  when it is due, buffered ticks, latest and recent runs, and a version every write bumps
  (see `ScheduleRecord`, `durable.schedules`).
- ``updates``: (workflow_id, update_id) → outcome, at: how each update sent to the
  workflow ended (result, failure or rejection), written by the step that settled it and
  read by ``handle.update``; gone with the workflow's current run when it is pruned.
- ``run_tags``: (run_id, key) → value, created_at: the tag index, one row per run and tag,
  kept in step with ``runs.tags`` by the backend, searched by (key, value, created_at).

Runs are deleted only by `Store.prune_runs` (retention), with everything of theirs.

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
from collections.abc import Callable, Collection, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Literal, cast
from urllib.parse import urlsplit

from .errors import StoreError, WorkflowAlreadyExists
from .grouping import Grouped
from .limits import QueueLimits
from .notify import Hub
from .querybox import QueryBox
from .rows import (
    ClaimedRun,
    InboxItem,
    JournalEntry,
    NewRun,
    NewStepLog,
    NewTask,
    NewTimer,
    Outgoing,
    QueueStats,
    RunExtras,
    RunRecord,
    ScheduleRecord,
    StepCommit,
    StepLog,
    TaskOutcome,
    TaskRecord,
    WorkerRecord,
    merge_queue_stats,
)
from .topics import (
    TOPIC_LIMITS,
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_STEPS,
    TOPIC_TASKS,
    TOPIC_TIMERS,
    run_topic,
    steps_topic,
)
from .urls import SECRET_PARAMETERS, is_secret_parameter, redact_url

if TYPE_CHECKING:
    from .repair import Fork, Reopen

IfExists = Literal["return", "error", "restart"]
CREATE_BATCH = 500  # most runs one create_runs transaction takes from concurrent create_run

__all__ = [
    "BACKENDS_GROUP",
    "CLOSED_STATUSES",
    "EXTERNAL_OWNER",
    "NEVER",
    "SECRET_PARAMETERS",
    "STATUSES",
    "TOPIC_LIMITS",
    "TOPIC_RUNS",
    "TOPIC_STATUS",
    "TOPIC_STEPS",
    "TOPIC_TASKS",
    "TOPIC_TIMERS",
    "ClaimedRun",
    "InboxItem",
    "JournalEntry",
    "NewRun",
    "NewStepLog",
    "NewTask",
    "NewTimer",
    "Outgoing",
    "QueueLimits",
    "QueueStats",
    "RunExtras",
    "RunRecord",
    "ScheduleRecord",
    "StepCommit",
    "StepLog",
    "Store",
    "TaskOutcome",
    "TaskRecord",
    "WorkerRecord",
    "is_secret_parameter",
    "merge_queue_stats",
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


class Store(QueryBox, abc.ABC):
    """The storage contract. One instance per client or worker; not shared across loops.

    Implementations are async context managers: ``async with store:`` opens (connects and
    migrates) and closes. `aclose` is idempotent; using a closed store raises `StoreError`.
    """

    #: The URL this store was opened from, with any password removed.
    url: str
    #: This database's in-process hub (`durable.notify.hub_for`); notified after commits.
    hub: Hub
    # create_run calls written together (made on the first call: subclasses need not
    # call an __init__ of this class).
    _creates: Grouped[tuple[NewRun, IfExists], tuple[RunRecord, bool]] | None = None

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
        if self._creates is None:
            self._creates = Grouped(self.create_runs, CREATE_BATCH)
        return await self._creates((run, if_exists))

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
        created_after: float | None = None,
        created_before: float | None = None,
    ) -> list[RunRecord]:
        """Runs (every run, current or not), newest first — by ``created_at``, then
        ``run_id``, both descending — filtered by ``status``, ``name``, ``tags`` (a run
        matches when it has every given tag with that value) and creation time
        (``created_after <= created_at < created_before``). With ``after``
        (a run id: the last of the previous page), only the runs that come after that run
        in this order (keyset paging: stable while runs are added); none if it does not
        exist."""

    @abc.abstractmethod
    async def count_runs(
        self, *, name: str | None = None, tags: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """How many runs (current or not) have each status, filtered by ``name`` and
        ``tags`` as `list_runs` filters; statuses no run has are left out."""

    @abc.abstractmethod
    async def read_update(self, workflow_id: str, update_id: str) -> bytes | None:
        """The stored outcome of update ``update_id`` of the workflow (`durable.updates`),
        or ``None`` while it has none. Outcomes are written by `commit_steps`
        (`StepCommit.updates`); the first one written for an id stays."""

    @abc.abstractmethod
    async def read_journal(self, run_id: str, after_seq: int = 0) -> list[JournalEntry]:
        """The run's journal entries with ``seq > after_seq``, in order."""

    async def read_journal_rows(
        self, run_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[tuple[int, str, float, bytes]]:
        """`read_journal` as plain ``(seq, kind, time, data)`` tuples, the first ``limit``
        only when given: what `durable.steps.build_rows` walks, without a `JournalEntry`
        per entry (a store overrides it with a query of its own; this one converts
        `read_journal`'s)."""
        entries = await self.read_journal(run_id, after_seq)
        return [(e.seq, e.kind, e.time, e.data) for e in entries[:limit]]

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

    @abc.abstractmethod
    async def reopen_run(self, reopen: Reopen, now: float) -> bool:
        """Re-open a closed (or parked) run where it stopped, as `durable.repair.Reopen`
        says, in one transaction: fenced on the run being current with the expected status
        and journal length (and still parked, for a parked run), else False and nothing
        written. A task row that still exists for a task it re-creates (an attempt flagged
        to cancel when the run closed) is replaced, its attempt number going up, so that
        attempt's late result is fenced off. Revokes any lease; notifies the run's topics."""

    @abc.abstractmethod
    async def fork_run(self, fork: Fork, now: float) -> None:
        """Create ``fork.run`` as a new workflow with a copied journal, as
        `durable.repair.Fork` says, in one transaction. Raises `WorkflowAlreadyExists` when
        its workflow id has any run already (nothing written)."""

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

        Queued tasks are taken by ``priority`` (higher first), then ``visible_at``. On a
        queue with limits (`set_queue_limits`), a claim takes only what they allow at
        ``now``, serialised with every other claim of that queue: running tasks of the
        queue (not external waits; expired leases still count) stay under
        ``concurrency``, those with one ``key`` under ``key_concurrency``, and the queued
        tasks claimed in the ``per`` seconds up to ``now`` (each claim of a queued task is
        a start) under ``rate``. Limited queues are served first, the rest of ``limit``
        by the others. Taking over an expired lease starts nothing and is not limited.
        """

    @abc.abstractmethod
    async def read_task(self, task_id: str) -> TaskRecord | None:
        """The task row ``task_id`` as stored (any status), or ``None`` if there is none."""

    @abc.abstractmethod
    async def append_logs(self, logs: Sequence[NewStepLog]) -> None:
        """Store captured log records (one transaction; nothing for none)."""

    @abc.abstractmethod
    async def read_logs(
        self, run_id: str, *, seq: int | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[StepLog]:
        """The run's log records in the order they were stored (by ``id``), those of the
        step at ``seq`` only when given, after ``after_id`` (paging), at most ``limit``."""

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
        processes. Returns the earliest remaining due time of any timer, of any queued
        task not yet visible, or of a start leaving a rate limit's window (`durable.limits`:
        room to start more), or ``None`` if there is none."""

    @abc.abstractmethod
    async def queue_stats(self, now: float) -> list[QueueStats]:
        """Per queue with any waiting work, by queue name: queued tasks, and open runs not
        parked that a worker could claim now (ready without a lease, or holding a lease
        expired by ``now``: what `claim_runs` would take); queues with nothing waiting are
        left out."""

    @abc.abstractmethod
    async def set_queue_limits(self, limits: QueueLimits, now: float) -> None:
        """Replace the limits of ``limits.queue`` (`durable.limits`); with every limit
        ``None``, remove them. Claims after this returns obey the new limits; notifies
        `TOPIC_TASKS` (a raised limit may let waiting tasks start) and `TOPIC_LIMITS`
        (workers re-read which queues have limits)."""

    @abc.abstractmethod
    async def queue_limits(self, queues: Collection[str] | None = None) -> list[QueueLimits]:
        """The limits of every queue that has any (or of those of ``queues`` that do), by
        queue name."""

    @abc.abstractmethod
    async def list_workers(self) -> list[WorkerRecord]:
        """The workers that have registered and not deregistered or gone silent."""

    # ---- schedules (durable.schedules) ----------------------------------------------

    @abc.abstractmethod
    async def save_schedule(
        self,
        schedule: ScheduleRecord,
        *,
        expected_version: int | None,
        runs: Sequence[NewRun] = (),
    ) -> bool:
        """Write ``schedule`` as a compare-and-set, with ``runs`` in the same transaction.

        ``expected_version=None``: insert it; False if the id exists. Otherwise replace the
        row only if its stored version is ``expected_version`` (``schedule.version`` is
        the new one); False, and nothing written, if not (someone wrote it meanwhile) or
        the row is gone. On success each of ``runs`` is created as `create_run` with
        ``if_exists="return"`` does (a workflow id that already has a current run is left
        as it is). Notifies `TOPIC_TIMERS` (a worker's next due time may have changed), and
        for runs created the topics `create_runs` notifies.
        """

    @abc.abstractmethod
    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule ``schedule_id``, or ``None`` if there is none."""

    @abc.abstractmethod
    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""

    @abc.abstractmethod
    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete the schedule (its runs stay); False if there was none."""

    @abc.abstractmethod
    async def due_schedules(
        self, now: float, limit: int
    ) -> tuple[list[ScheduleRecord], float | None]:
        """Up to ``limit`` schedules a worker must act on at ``now``, by due time, and the
        earliest due time of any other (``None`` if none).

        Due: not paused, and either ``due_at <= now``, or ticks buffered while the
        workflow ``latest`` names has no open current run (it closed, or is gone).
        """

    @abc.abstractmethod
    async def prune_runs(self, closed_before: float, limit: int) -> int:
        """Delete up to ``limit`` runs that closed before ``closed_before``, oldest closed
        first, with everything of theirs, in one short transaction; return how many.

        A run goes only if it is closed (never an open run) and it is not the child of an
        open run (its ``parent_run_id`` names no open run). With it go its journal, inbox
        items, tasks (a still running attempt's finish is then refused, as for any closed
        run), timers and tags, and, when it is its workflow id's current run, that id's
        published values. A run that continued as new goes like any other closed run: its
        successor needs nothing of it (its input is in its own row, the signals it had
        not consumed moved to it, its tags were copied), and handles follow the workflow
        id, not the old run. Runs another transaction holds may be left for a later call.
        Callers loop until fewer than ``limit`` come back (`durable.retention.prune`), so
        that workers' commits go on between batches.
        """

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
