"""The commit plan: which steps of a group commit are accepted, and what they write.

The rules of `durable.store.StepCommit` and `durable.store.Outgoing`, written once, as pure
functions with no I/O (STYLE 26). A backend's `Store.commit_steps` does four things:

1. ``needs = lookups(steps)``: what the fences and routes read.
2. Lock (PostgreSQL: runs before tasks, each in id order) and read a `Snapshot`: the run
   rows of ``needs.run_ids``, the current run of each of ``needs.workflow_ids``, and the
   lease of each of ``needs.task_ids``.
3. ``p = plan(steps, snapshot, now)``.
4. If any step was accepted, write ``p`` with its own SQL in the order of the fields of
   `Plan` (each a batch: one statement per field whatever the batch size), commit, then
   notify ``p.topics``.

Fences: a step is accepted only if its run exists, is open, is leased to ``step.owner``
with ``lease_expires_at > now`` (a lease expiring exactly at ``now`` has expired: the same
``expires <= now`` rule under which claims take it over), ``history_length ==
step.expected_length``, and every finished task is leased to ``step.owner`` at the attempt
given. Steps are judged in batch order against the snapshot as the accepted ones before
them left it, so two steps of one run chain (the second sees the first's length) and a
task created leased by one step can be finished by the next.

Children (``new_runs``): a child whose workflow id has an open current run is not created;
the committing run gets a ``child_failed`` item (status ``already_exists``) instead. A
child whose id's current run is closed becomes the new current run (the old one stays, not
current, and its published values are cleared, as ``if_exists="restart"`` does).

Routing (`route`): an item naming a run goes to that run if it is open, else it is
dropped, except for `journal.WORKFLOW_ADDRESSED` kinds naming a run that continued as new,
which then go to the workflow's current run if open (an item naming a run that does not
exist, such as a child that was never created, is dropped). An item naming no run goes to
the workflow's current run if open.
Items are routed after every step of the batch is judged, as if delivered after the
batch: an item for a run that closes in the same batch is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import frozen
from .errors import RemoteError
from .journal import WORKFLOW_ADDRESSED, ChildFailed, Kind, encode
from .store import (
    CLOSED_STATUSES,
    TOPIC_RUNS,
    TOPIC_STATUS,
    TOPIC_TIMERS,
    NewRun,
    NewTask,
    Outgoing,
    StepCommit,
    run_topic,
    steps_topic,
)
from .topics import end_topic, tasks_topic

__all__ = [
    "Delivery",
    "Lookups",
    "Plan",
    "RunState",
    "RunUpdate",
    "Snapshot",
    "check_entries",
    "lookups",
    "plan",
    "refused_child",
    "route",
]


@dataclass(frozen=True)  # no slots: two a step are made by `durable.frozen.build`
class RunState:
    """What the fences and routes read of one ``runs`` row."""

    run_id: str
    workflow_id: str
    status: str
    is_current: bool
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    history_length: int = 0
    ready: bool = False
    problem: str | None = None

    @property
    def open(self) -> bool:
        """Whether the run has not closed."""
        return self.status not in CLOSED_STATUSES


@dataclass(frozen=True, slots=True)
class Lookups:
    """What a backend reads (and PostgreSQL locks) before planning a batch."""

    run_ids: frozenset[str]  # the batch's runs and the runs its items name
    workflow_ids: frozenset[str]  # whose current run to read: children's and items' targets
    task_ids: frozenset[str]  # tasks finished or cancelled by the batch
    closing: frozenset[str]  # runs that may close (PostgreSQL locks their tasks too)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The rows read for `Lookups`: ``runs`` by run id (those of ``run_ids`` and the current
    runs of ``workflow_ids``), ``tasks`` as task id -> (lease owner, attempt)."""

    runs: Mapping[str, RunState]
    tasks: Mapping[str, tuple[str | None, int]]


@dataclass(slots=True)
class RunUpdate:
    """The new state of one run of the batch, after all its accepted steps."""

    run_id: str
    workflow_id: str
    history_length: int
    status: str
    result: bytes | None = None  # None: keep the stored one
    error: bytes | None = None  # None: keep the stored one
    problem: str | None = None
    closed: bool = False  # closed by this batch: closed_at = now, ready = false
    release: bool = False  # lease_owner and lease_expires_at become NULL
    continued_to: str | None = None  # set: the run is no longer current


@dataclass(frozen=True, slots=True)
class Delivery:
    """An inbox row to insert for run ``run_id`` (which then becomes ready)."""

    run_id: str
    kind: str
    time: float
    data: bytes


@dataclass(slots=True)
class Plan:
    """What a batch writes. Backends write the fields in this order; each write depends only
    on earlier ones (the reasons are on the fields)."""

    accepted: list[bool] = field(default_factory=list)
    topics: set[str] = field(default_factory=set)
    #: 1. Run rows (history, status, lease, closing; a continued run stops being current).
    runs: list[RunUpdate] = field(default_factory=list)
    #: 2. Closed runs whose workflow id a child takes over: ``is_current = false``
    #:    (before the child is inserted: at most one current run per id).
    demoted: list[str] = field(default_factory=list)
    #: 3. Journal rows (run_id, seq, kind, time, data).
    journal: list[tuple[str, int, str, float, bytes]] = field(default_factory=list)
    #: 4. Inbox ids consumed: deleted.
    consumed: list[int] = field(default_factory=list)
    #: 5. Runs to insert, current, pending and ready: successors and children.
    new_runs: list[NewRun] = field(default_factory=list)
    #: 6. Workflow ids whose published values and update outcomes are cleared (a child
    #:    restarting an id).
    cleared: list[str] = field(default_factory=list)
    #: 7. (old run, successor): move the old run's unconsumed WORKFLOW_ADDRESSED items
    #:    (after the consumed ones are deleted, so those stay behind).
    moves: list[tuple[str, str]] = field(default_factory=list)
    #: 8. Tasks to insert (status ``running`` when created leased, else ``queued``).
    tasks: list[NewTask] = field(default_factory=list)
    #: 9. Timers to insert (run_id, seq, due_at, data).
    timers: list[tuple[str, int, float, bytes]] = field(default_factory=list)
    #: 10. Task ids finished: deleted.
    finished: list[str] = field(default_factory=list)
    #: 11. Task ids to flag ``cancel_requested``.
    cancelled_tasks: list[str] = field(default_factory=list)
    #: 12. Timers cancelled (run_id, seq): deleted.
    cancelled_timers: list[tuple[str, int]] = field(default_factory=list)
    #: 13. Runs closed: delete their timers and queued tasks, flag running tasks (after the
    #:     inserts, so tasks and timers a closing step created go too).
    closed: list[str] = field(default_factory=list)
    #: 14. Inbox rows to insert, in this order (their ids keep it); then their runs ready.
    deliveries: list[Delivery] = field(default_factory=list)
    #: 15. Published values (workflow_id, key) -> value, upserted.
    published: dict[tuple[str, str], bytes] = field(default_factory=dict)
    #: 15a. Update outcomes (workflow_id, update_id) -> outcome, upserted (`durable.updates`).
    updates: dict[tuple[str, str], bytes] = field(default_factory=dict)
    #: 15b. Run id -> tags merged into its ``runs.tags`` (keys given take the new value;
    #:      the backend's tag index follows).
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    #: 16. Runs still open whose lease was handed back: ready if their inbox is not empty
    #:     (items that came during the step must not be stranded). If that changes a row,
    #:     the backend adds `TOPIC_RUNS` to ``topics``.
    released: list[str] = field(default_factory=list)
    #: Child run id -> (parent workflow id, parent run id), for each child in ``new_runs``:
    #: whom to tell, with `refused_child`, if the insert finds the id taken after all (a
    #: ``create_run`` racing a backend that does not lock absent rows).
    parents: dict[str, tuple[str, str]] = field(default_factory=dict)


def check_entries(steps: Sequence[StepCommit]) -> None:
    """Raise `ValueError` unless every step's entries continue gaplessly from its
    ``expected_length`` (a bug in the caller, refused before anything is written: `plan`
    checks first)."""
    for step in steps:
        for i, entry in enumerate(step.entries):
            if entry.seq != step.expected_length + 1 + i:
                raise ValueError(
                    f"Step of run {step.run_id!r}: entry {i} has seq {entry.seq}, expected "
                    f"{step.expected_length + 1 + i} (seqs continue from expected_length "
                    f"{step.expected_length}, gapless)."
                )


def lookups(steps: Sequence[StepCommit]) -> Lookups:
    """What `plan` needs read for ``steps``."""
    run_ids = {s.run_id for s in steps}
    run_ids |= {o.run_id for s in steps for o in s.outgoing if o.run_id is not None}
    workflow_ids = {o.workflow_id for s in steps for o in s.outgoing}
    workflow_ids |= {c.workflow_id for s in steps for c in s.new_runs}
    return Lookups(
        run_ids=frozenset(run_ids),
        workflow_ids=frozenset(workflow_ids),
        task_ids=frozenset(t for s in steps for t in (*s.finished_tasks, *s.cancelled_tasks)),
        closing=frozenset(s.run_id for s in steps if s.status in CLOSED_STATUSES),
    )


def route(item: Outgoing, named: RunState | None, current: RunState | None) -> str | None:
    """The run ``item`` is delivered to, or ``None`` when it is dropped (see the module
    docstring): ``named`` is the run ``item.run_id`` names (``None`` if it names none or
    there is no such run of ``item.workflow_id``), ``current`` the workflow's current run."""
    if item.run_id is not None:
        if named is None or named.workflow_id != item.workflow_id:
            return None  # no such run (a child that was never created): nobody to tell
        if named.open:
            return named.run_id
        if item.kind not in WORKFLOW_ADDRESSED:
            return None  # a reply to one run never reaches a newer run that did not ask
        if named.status != "continued_as_new":
            return None  # it ended: a newer run of that id is another workflow's business
    if current is None or current.workflow_id != item.workflow_id or not current.open:
        return None
    return current.run_id


def refused_child(
    child: NewRun, parent_workflow_id: str, parent_run_id: str, existing: str
) -> Outgoing:
    """The ``child_failed`` item for parent run ``parent_run_id`` when ``child`` cannot start
    because run ``existing`` of its workflow id is still open."""
    error = RemoteError(
        "WorkflowAlreadyExists",
        f"child workflow {child.name!r} could not start: id {child.workflow_id!r} is already "
        f"running (run {existing!r}); give each child a unique id, e.g. "
        "durable.call(fn, ..., id=...)",
    )
    item = ChildFailed(
        workflow_id=child.workflow_id, error=error, status="already_exists", run_id=child.run_id
    )
    return Outgoing(parent_workflow_id, Kind.CHILD_FAILED, encode(item), run_id=parent_run_id)


@dataclass(slots=True)
class _Run:
    """A run as the steps judged so far have left it."""

    state: RunState
    update: RunUpdate | None = None  # set once a step of it is accepted


class _Planner:
    def __init__(self, snapshot: Snapshot, now: float) -> None:
        self.now = now
        self.out = Plan()
        self.runs = {run_id: _Run(state) for run_id, state in snapshot.runs.items()}
        self.tasks = dict(snapshot.tasks)
        self.outgoing: list[Outgoing] = []
        # workflow id -> its current run's id
        self.currents = {r.workflow_id: r.run_id for r in snapshot.runs.values() if r.is_current}

    def current(self, workflow_id: str) -> RunState | None:
        run_id = self.currents.get(workflow_id)
        return self.runs[run_id].state if run_id is not None else None

    def fenced(self, step: StepCommit) -> bool:
        run = self.runs.get(step.run_id)
        if run is None:
            return False
        state = run.state
        if not (
            state.open
            and state.lease_owner == step.owner
            and state.lease_expires_at is not None
            and state.lease_expires_at > self.now
            and state.history_length == step.expected_length
        ):
            return False
        tasks, owner = self.tasks, step.owner
        for task_id, attempt in step.finished_tasks.items():
            if tasks.get(task_id) != (owner, attempt):
                return False
        return True

    def accept(self, step: StepCommit) -> None:
        # Once per step of every batch: empty collections are skipped, not iterated.
        out, now, run = self.out, self.now, self.runs[step.run_id]
        run_id, state, topics = step.run_id, run.state, out.topics
        workflow_id = state.workflow_id
        update = run.update
        if update is None:
            update = run.update = RunUpdate(run_id, workflow_id, 0, state.status)
            out.runs.append(update)
        entries = step.entries
        update.history_length = step.expected_length + len(entries)
        status = step.status if step.status is not None else state.status
        closing = status in CLOSED_STATUSES
        if status != state.status or closing:
            topics.update((run_topic(workflow_id), TOPIC_STATUS))
            if closing:
                topics.add(end_topic(workflow_id))
        if entries:
            topics.add(steps_topic(workflow_id))
            out.journal.extend([(run_id, e.seq, e.kind, e.time, e.data) for e in entries])
        if step.problem != state.problem:  # each step states the run's current problem
            topics.add(run_topic(workflow_id))
        update.status, update.problem = status, step.problem
        if step.result is not None:
            update.result = step.result
        if step.error is not None:
            update.error = step.error
        if step.consumed_inbox:
            out.consumed.extend(step.consumed_inbox)
        for task in step.new_tasks:
            out.tasks.append(task)
            self.tasks[task.task_id] = (task.lease_owner, task.attempt)
            if task.lease_owner is None:
                topics.add(tasks_topic(task.queue) if task.visible_at <= now else TOPIC_TIMERS)
        for task_id in step.finished_tasks:
            out.finished.append(task_id)
            self.tasks.pop(task_id, None)
        if step.cancelled_tasks:
            out.cancelled_tasks.extend(step.cancelled_tasks)
        for timer in step.new_timers:
            out.timers.append((timer.run_id, timer.seq, timer.due_at, timer.data))
            topics.add(TOPIC_TIMERS)
        if step.cancelled_timers:
            out.cancelled_timers.extend((run_id, seq) for seq in step.cancelled_timers)
        for child in step.new_runs:
            self.start_child(step, state, child)
        if step.outgoing:
            self.outgoing.extend(step.outgoing)
        for key, value in step.published.items():
            out.published[(workflow_id, key)] = value
            topics.add(run_topic(workflow_id))
        for update_id, outcome in step.updates.items():
            out.updates[(workflow_id, update_id)] = outcome
            topics.add(run_topic(workflow_id))
        if step.tags:
            out.tags.setdefault(run_id, {}).update(step.tags)
            topics.add(run_topic(workflow_id))
        released = closing or step.release_lease
        if released:
            update.release = True
        fields = {
            "run_id": run_id,
            "workflow_id": workflow_id,
            "status": status,
            "is_current": state.is_current,
            "lease_owner": None if released else state.lease_owner,
            "lease_expires_at": None if released else state.lease_expires_at,
            "history_length": update.history_length,
            "ready": state.ready and not closing,
            "problem": step.problem,
        }
        new_state = frozen.build(RunState, fields)
        if closing:
            update.closed = True
            out.closed.append(step.run_id)
            if status == "continued_as_new" and step.successor is not None:
                successor = step.successor
                update.continued_to = successor.run_id
                new_state = dataclasses.replace(new_state, is_current=False)
                out.moves.append((step.run_id, successor.run_id))
                self.insert(successor)
        elif step.release_lease:
            out.released.append(step.run_id)
            if state.ready:
                out.topics.add(TOPIC_RUNS)  # items came during the step: someone claim it
        run.state = new_state

    def start_child(self, step: StepCommit, parent: RunState, child: NewRun) -> None:
        existing = self.current(child.workflow_id)
        if existing is not None and existing.open:
            self.outgoing.append(
                refused_child(child, parent.workflow_id, step.run_id, existing.run_id)
            )
            return
        if existing is not None:
            self.out.demoted.append(existing.run_id)
            self.out.cleared.append(child.workflow_id)
            self.runs[existing.run_id].state = dataclasses.replace(existing, is_current=False)
        self.out.parents[child.run_id] = (parent.workflow_id, step.run_id)
        self.insert(child)

    def insert(self, run: NewRun) -> None:
        self.out.new_runs.append(run)
        self.runs[run.run_id] = _Run(
            RunState(run.run_id, run.workflow_id, "pending", True, ready=True)
        )
        self.currents[run.workflow_id] = run.run_id
        self.out.topics.update((TOPIC_RUNS, TOPIC_STATUS, run_topic(run.workflow_id)))

    def deliver(self) -> None:
        for item in self.outgoing:
            named = self.runs.get(item.run_id) if item.run_id is not None else None
            target = route(item, named.state if named else None, self.current(item.workflow_id))
            if target is not None:
                self.out.deliveries.append(Delivery(target, item.kind, self.now, item.data))
                self.out.topics.add(TOPIC_RUNS)


def plan(steps: Sequence[StepCommit], snapshot: Snapshot, now: float) -> Plan:
    """Judge ``steps`` in order against ``snapshot`` (see the module docstring) and gather
    the writes of the accepted ones.

    Raises `ValueError` when a step's entries do not continue gaplessly from its
    ``expected_length`` (see `check_entries`).
    """
    check_entries(steps)
    planner = _Planner(snapshot, now)
    for step in steps:
        ok = planner.fenced(step)
        planner.out.accepted.append(ok)
        if ok:
            planner.accept(step)
    planner.deliver()
    return planner.out
