"""The journal's vocabulary: every entry kind, the shape of its data, and ids built from them.

This is the one place that spells journal and inbox kinds and their fields; the engine, the
worker, the client, the steps model and both backends import them from here. An entry is
stored as ``kind`` (a `Kind` value) and ``data`` (msgpack bytes of a small map); `decode`
turns the pair into one of the typed records below and `encode` does the reverse.

    kind                  record             data fields
    --------------------  -----------------  --------------------------------------------
    inputs (the run observes them; they arrive through the inbox or the worker)
    workflow_started      WorkflowStarted    args, seed
    activity_completed    ActivityCompleted  ref, result, started_at, worker, attempt
    activity_failed       ActivityFailed     ref, error, attempts, started_at, worker
    activity_retrying     ActivityRetrying   ref, attempt, error, started_at, worker
    timer_fired           TimerFired         ref
    signal_received       SignalReceived     name, value
    child_completed       ChildCompleted     workflow_id, result, run_id
    child_failed          ChildFailed        workflow_id, error, status, run_id
    cancel_requested      CancelRequested    reason
    external_completed    ExternalCompleted  ref, result, worker
    external_failed       ExternalFailed     ref, error, worker
    run_retried           RunRetried         status, cause, step, dropped, reason
    run_forked            RunForked          workflow_id, run_id, at_seq
    update_accepted       UpdateAccepted     id, name, args
    commands (the code issued them)
    activity_scheduled    ActivityScheduled  name, queue, args, retry, timeout,
                                             heartbeat_timeout, schedule_to_close,
                                             branch, group, compensation, key?, priority?
    timer_started         TimerStarted       due, branch, group, wait?
    child_started         ChildStarted       name, id, run_id, queue, args, timeout,
                                             branch, group, parent_close?
    published             Published          key, value, branch
    signal_wait_started   SignalWaitStarted  name, due, branch, group (tells only: see below)
    marker                Marker             patch, branch
    external_started      ExternalStarted    name, branch, group
    tags_set              TagsSet            tags, branch
    update_completed      UpdateCompleted    id, name, result, failure, branch
    closings (commands that end the run)
    workflow_completed    WorkflowCompleted  result
    workflow_failed       WorkflowFailed     error
    workflow_cancelled    WorkflowCancelled  -
    continued_as_new      ContinuedAsNew     args, run_id
    workflow_terminated   WorkflowTerminated reason (written by the client, not the code)

``ref`` is the seq of the command an input answers; ``started_at`` and ``worker`` say when
and where the attempt it reports began (`None` when it never ran, or in older journals);
``attempt`` which attempt completed (`None` in journals recorded before it was kept).
``args``/``result``/``value`` are payloads (bytes, encoded by `durable.payload` against the
function's type hints); ``error`` is a `RemoteError`. ``branch`` is the path of the
workflow task that issued a command (``"0"`` the main coroutine, ``"0.2"`` the third task
it spawned) and ``group`` the seq of the first command of the concurrent group it belongs
to (`None` alone; see `durable.branches`); entries recorded before these existed read as
branch ``"0"``, no group.

``parent_close`` (one of `PARENT_CLOSE`) is what happens to the child if the parent closes
while it runs (`durable.children`); it is stored only when not ``"cancel"``, the default,
which is also what journals recorded before it existed mean.
``compensation`` is present (and true) only on an activity a `durable.saga` scheduled to
undo an earlier step; it is left out of every other activity's data, so journals recorded
before sagas existed read the same.

``tags_set`` records ``durable.set_tags(...)``: ``tags`` merged into the run's tags when the
step commits (`durable.plan`). Replay checks its kind only: the values may change in code.
``signal_wait_started`` records that the code began waiting for a signal (``due``: when its
timeout fires, or `None`), so a waiting run shows what it waits for. It only tells: replay
of a journal recorded before it existed, which lacks it, is not a mismatch.

``external_started`` records ``durable.external(name)``: a wait for a completion from
outside by a task token naming this run and seq (`durable.tasks`); its answer
(``worker``: who completed it, as the caller said) comes through the inbox. The wait is
a row of ``tasks`` leased to `durable.store.EXTERNAL_OWNER`: completed exactly once.

``run_retried`` and ``run_forked`` are written by an operator's repair (`durable.repair`):
a run re-opened by ``handle.retry()`` when it was ``status`` (failed, terminated, parked),
with the ``cause`` it ended with, the seq of the ``step`` run again (`None`: the code
re-ran from the input after which it failed), and the ``dropped`` entries (seq and kind)
taken off the journal's end; a run begun by ``client.fork()`` from the first ``at_seq``
entries of run ``run_id`` of ``workflow_id``. The repair writes them into the journal
itself; they are inputs that change nothing in the code's state. ``seed`` on
``workflow_started`` seeds ``durable.random()`` (`None`: the run id does): a fork keeps
its source's, so its copied journal replays the same random values.

``update_accepted`` is an update (`durable.handlers`) the worker admitted (its validator
passed; a rejected one is never journaled). ``update_completed`` records its handler's
end, ``result`` or ``failure`` (a `RemoteError` map), also written to ``updates`` in
that step's commit for the caller. ``wait`` of a timer: `durable.wait_condition`'s.
Routing: inbox items of `WORKFLOW_ADDRESSED` kinds were sent to a workflow id (a client's
signal or cancellation): when the run they reached ends by ``continue_as_new`` before
consuming them, they move to its successor, never dropped. Every other inbox item answers
one run's own command and stays with that run (an external completion too: its token
names the run, and a successor after continue-as-new never inherits it).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import operator
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from .errors import RemoteError

__all__ = [
    "CLOSING_KINDS",
    "COMMAND_KINDS",
    "INPUT_KINDS",
    "PARENT_CLOSE",
    "WORKFLOW_ADDRESSED",
    "ActivityCompleted",
    "ActivityFailed",
    "ActivityRetrying",
    "ActivityScheduled",
    "CancelRequested",
    "ChildCompleted",
    "ChildFailed",
    "ChildStarted",
    "ContinuedAsNew",
    "Damaged",
    "ExternalCompleted",
    "ExternalFailed",
    "ExternalStarted",
    "Kind",
    "Marker",
    "Published",
    "Record",
    "RunForked",
    "RunRetried",
    "SignalReceived",
    "SignalWaitStarted",
    "TagsSet",
    "TimerFired",
    "TimerStarted",
    "UpdateAccepted",
    "UpdateCompleted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowStarted",
    "WorkflowTerminated",
    "decode",
    "describe_command",
    "encode",
    "parse_task_id",
    "same_command",
    "task_id",
]


class Kind(enum.StrEnum):
    """Every kind of journal entry and inbox item; the value is what is stored."""

    WORKFLOW_STARTED = "workflow_started"
    ACTIVITY_COMPLETED = "activity_completed"
    ACTIVITY_FAILED = "activity_failed"
    ACTIVITY_RETRYING = "activity_retrying"
    TIMER_FIRED = "timer_fired"
    SIGNAL_RECEIVED = "signal_received"
    CHILD_COMPLETED = "child_completed"
    CHILD_FAILED = "child_failed"
    CANCEL_REQUESTED = "cancel_requested"
    EXTERNAL_COMPLETED = "external_completed"
    EXTERNAL_FAILED = "external_failed"
    ACTIVITY_SCHEDULED = "activity_scheduled"
    TIMER_STARTED = "timer_started"
    CHILD_STARTED = "child_started"
    PUBLISHED = "published"
    MARKER = "marker"
    SIGNAL_WAIT_STARTED = "signal_wait_started"
    EXTERNAL_STARTED = "external_started"
    TAGS_SET = "tags_set"
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELLED = "workflow_cancelled"
    CONTINUED_AS_NEW = "continued_as_new"
    WORKFLOW_TERMINATED = "workflow_terminated"
    RUN_RETRIED = "run_retried"
    RUN_FORKED = "run_forked"
    UPDATE_ACCEPTED = "update_accepted"
    UPDATE_COMPLETED = "update_completed"


#: What the run observes; the engine applies them one at a time.
INPUT_KINDS: frozenset[str] = frozenset(
    {
        Kind.WORKFLOW_STARTED,
        Kind.ACTIVITY_COMPLETED,
        Kind.ACTIVITY_FAILED,
        Kind.ACTIVITY_RETRYING,
        Kind.TIMER_FIRED,
        Kind.SIGNAL_RECEIVED,
        Kind.CHILD_COMPLETED,
        Kind.CHILD_FAILED,
        Kind.CANCEL_REQUESTED,
        Kind.EXTERNAL_COMPLETED,
        Kind.EXTERNAL_FAILED,
        Kind.RUN_RETRIED,
        Kind.RUN_FORKED,
        Kind.UPDATE_ACCEPTED,
    }
)
#: Commands that close the run when the code issues them.
CLOSING_KINDS: frozenset[str] = frozenset(
    {
        Kind.WORKFLOW_COMPLETED,
        Kind.WORKFLOW_FAILED,
        Kind.WORKFLOW_CANCELLED,
        Kind.CONTINUED_AS_NEW,
    }
)
#: What the code issues (replay checks these against the journal).
COMMAND_KINDS: frozenset[str] = frozenset(
    {
        Kind.ACTIVITY_SCHEDULED,
        Kind.TIMER_STARTED,
        Kind.CHILD_STARTED,
        Kind.PUBLISHED,
        Kind.MARKER,
        Kind.SIGNAL_WAIT_STARTED,
        Kind.EXTERNAL_STARTED,
        Kind.TAGS_SET,
        Kind.UPDATE_COMPLETED,
    }
    | CLOSING_KINDS
)
#: Inbox kinds sent to a workflow id, not to one run: they follow it across continue-as-new.
WORKFLOW_ADDRESSED: frozenset[str] = frozenset(
    {Kind.SIGNAL_RECEIVED, Kind.CANCEL_REQUESTED, Kind.UPDATE_ACCEPTED}
)


#: Per command kind, the fields that identify it: replay compares them (arguments are not
#: compared: changing them is allowed) and a mismatch names them.
_IDENTITY: dict[str, tuple[str, ...]] = {
    "activity_scheduled": ("name",),
    "child_started": ("name", "id"),
    "published": ("key",),
    "marker": ("patch",),
    "signal_wait_started": ("name",),
    "external_started": ("name",),
    "update_completed": ("name", "id"),
}


def describe_command(kind: str, data: dict[str, Any]) -> str:
    """A command as a replay mismatch names it: its kind and what identifies it."""
    fields = _IDENTITY.get(kind)
    if fields is None:
        return kind
    if len(fields) == 2:
        return f"{kind} {data.get('name')!r} (id {data.get('id')!r})"
    return f"{kind} {data.get(fields[0])!r}"


def same_command(kind: str, data: dict[str, Any], other_kind: str, other: dict[str, Any]) -> bool:
    """Whether two commands agree on what replay checks: the kind, and the name, id, key or
    patch that identifies it (`_IDENTITY`)."""
    if kind != other_kind:
        return False
    return all(data.get(name) == other.get(name) for name in _IDENTITY.get(kind, ()))


def task_id(run_id: str, seq: int) -> str:
    """The id of the activity task scheduled at ``seq`` of run ``run_id``."""
    return f"{run_id}:{seq}"


def parse_task_id(value: str) -> tuple[str, int]:
    """``(run_id, seq)`` of a `task_id`. Raises `ValueError` for anything else."""
    run_id, sep, seq = value.rpartition(":")
    if not sep or not run_id or not seq.isdigit():
        raise ValueError(f"{value!r} is not a durable task id ('<run id>:<seq>')")
    return run_id, int(seq)


# -- records -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """Base of the typed journal records: ``KIND`` names the stored kind."""

    KIND: ClassVar[Kind]

    def to_data(self) -> dict[str, Any]:
        """The map stored as the entry's data (errors as plain maps)."""
        names, values = _field_values(type(self))  # type: ignore[arg-type]  # (hashable)
        out = dict(zip(names, values(self), strict=True))
        error = out.get("error")
        if isinstance(error, RemoteError):
            out["error"] = error.to_dict()
        return out


@functools.cache
def _field_values(cls: type) -> tuple[tuple[str, ...], Any]:
    """A record class's field names, in order, and a getter of their values as a tuple
    (cached: read for every command issued; one C call, not a `getattr` per field)."""
    names = tuple(f.name for f in dataclasses.fields(cls))
    if len(names) > 1:
        return names, operator.attrgetter(*names)
    # attrgetter of one name gives the value itself, not a tuple; of none, it fails
    return names, lambda record: tuple(getattr(record, name) for name in names)


def _error(value: Any) -> RemoteError:
    if isinstance(value, dict):
        return RemoteError.from_dict(value)
    return RemoteError("Exception", "unknown error (no error was recorded)")


@dataclass(frozen=True, slots=True)
class WorkflowStarted(Record):
    """The run began with ``args`` (an encoded ``{"args": [...], "kwargs": {...}}``)."""

    KIND = Kind.WORKFLOW_STARTED
    args: bytes
    seed: str | None = None


@dataclass(frozen=True)  # no slots: made by `durable.frozen.build` on the worker's fast path
class ActivityCompleted(Record):
    """The activity scheduled at ``ref`` returned ``result``."""

    KIND = Kind.ACTIVITY_COMPLETED
    ref: int
    result: bytes | None
    started_at: float | None = None
    worker: str | None = None
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class ActivityFailed(Record):
    """The activity scheduled at ``ref`` failed for good after ``attempts`` attempts."""

    KIND = Kind.ACTIVITY_FAILED
    ref: int
    error: RemoteError
    attempts: int = 1
    started_at: float | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class ActivityRetrying(Record):
    """Attempt ``attempt`` of the activity at ``ref`` failed with ``error``; another follows."""

    KIND = Kind.ACTIVITY_RETRYING
    ref: int
    attempt: int
    error: RemoteError
    started_at: float | None = None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class TimerFired(Record):
    """The timer started at ``ref`` came due."""

    KIND = Kind.TIMER_FIRED
    ref: int


@dataclass(frozen=True, slots=True)
class SignalReceived(Record):
    """A signal called ``name`` arrived with ``value`` (a payload)."""

    KIND = Kind.SIGNAL_RECEIVED
    name: str
    value: bytes


@dataclass(frozen=True, slots=True)
class ChildCompleted(Record):
    """Child workflow ``workflow_id`` (run ``run_id``) returned ``result``."""

    KIND = Kind.CHILD_COMPLETED
    workflow_id: str
    result: bytes | None
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class ChildFailed(Record):
    """Child workflow ``workflow_id`` ended without a result: ``status`` is ``failed``,
    ``cancelled``, ``terminated``, or ``not_started`` (its id was taken)."""

    KIND = Kind.CHILD_FAILED
    workflow_id: str
    error: RemoteError
    status: str = "failed"
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelRequested(Record):
    """Cancellation was requested (by a client, or by the parent closing)."""

    KIND = Kind.CANCEL_REQUESTED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExternalCompleted(Record):
    """The external wait started at ``ref`` was completed with ``result``."""

    KIND = Kind.EXTERNAL_COMPLETED
    ref: int
    result: bytes | None
    worker: str | None = None


@dataclass(frozen=True, slots=True)
class ExternalFailed(Record):
    """The external wait started at ``ref`` was failed with ``error``."""

    KIND = Kind.EXTERNAL_FAILED
    ref: int
    error: RemoteError
    worker: str | None = None


@dataclass(frozen=True)  # no slots: made by `durable.frozen.build`, once per activity call
class ActivityScheduled(Record):
    """The code called activity ``name``; ``retry`` is a `RetryPolicy` as a map, times are
    seconds (`None`: no limit). ``key`` and ``priority`` (`durable.limits`) are stored only
    when given (a key, a priority other than 0)."""

    KIND = Kind.ACTIVITY_SCHEDULED
    name: str
    queue: str
    args: bytes
    retry: dict[str, Any]
    timeout: float | None = None
    heartbeat_timeout: float | None = None
    schedule_to_close: float | None = None
    branch: str = "0"
    group: int | None = None
    compensation: bool = False
    key: str | None = None
    priority: int = 0

    def to_data(self) -> dict[str, Any]:
        """As `Record.to_data`, with ``compensation`` only where it is true, and without
        ``key``/``priority`` at their defaults (so entries of calls that use none of them
        stay as they were)."""
        out = Record.to_data(self)
        if not self.compensation:
            del out["compensation"]
        if out["key"] is None:
            del out["key"]
        if not out["priority"]:
            del out["priority"]
        return out


@dataclass(frozen=True, slots=True)
class TimerStarted(Record):
    """The code started a timer due at ``due`` (POSIX seconds); ``wait`` says what it is
    the timeout of (``"condition"``: `durable.wait_condition`'s), stored only when set."""

    KIND = Kind.TIMER_STARTED
    due: float
    branch: str = "0"
    group: int | None = None
    wait: str | None = None

    def to_data(self) -> dict[str, Any]:
        """The stored map: ``wait`` left out unless set."""
        out = Record.to_data(self)
        if out["wait"] is None:
            del out["wait"]
        return out


#: Parent-close policies of a child (`durable.children`); the first is the default.
PARENT_CLOSE = ("cancel", "terminate", "abandon")


@dataclass(frozen=True, slots=True)
class ChildStarted(Record):
    """The code started child workflow ``name`` as ``id`` (run ``run_id``); ``timeout`` is
    seconds (`None`: the child's decorator decides; infinity: none); ``parent_close`` one
    of `PARENT_CLOSE`."""

    KIND = Kind.CHILD_STARTED
    name: str
    id: str
    run_id: str
    queue: str
    args: bytes
    timeout: float | None = None
    branch: str = "0"
    group: int | None = None
    parent_close: str = PARENT_CLOSE[0]

    def to_data(self) -> dict[str, Any]:
        """As `Record.to_data`, without ``parent_close`` at its default (so entries of
        children started without one stay as they were)."""
        out = Record.to_data(self)
        if out["parent_close"] == PARENT_CLOSE[0]:
            del out["parent_close"]
        return out


@dataclass(frozen=True, slots=True)
class Published(Record):
    """The code published ``value`` under ``key``."""

    KIND = Kind.PUBLISHED
    key: str
    value: bytes
    branch: str = "0"


@dataclass(frozen=True, slots=True)
class Marker(Record):
    """A `durable.patched` marker: this run took the new path of change ``patch``."""

    KIND = Kind.MARKER
    patch: str
    branch: str = "0"


@dataclass(frozen=True, slots=True)
class SignalWaitStarted(Record):
    """The code began waiting for a signal called ``name``, until ``due`` (or for ever)."""

    KIND = Kind.SIGNAL_WAIT_STARTED
    name: str
    due: float | None = None
    branch: str = "0"
    group: int | None = None


@dataclass(frozen=True, slots=True)
class ExternalStarted(Record):
    """The code began an external wait called ``name`` (`durable.external`): its token
    names this command's seq."""

    KIND = Kind.EXTERNAL_STARTED
    name: str
    branch: str = "0"
    group: int | None = None


@dataclass(frozen=True, slots=True)
class TagsSet(Record):
    """The code called ``durable.set_tags``: ``tags`` are merged into the run's tags."""

    KIND = Kind.TAGS_SET
    tags: dict[str, str]
    branch: str = "0"


@dataclass(frozen=True, slots=True)
class UpdateAccepted(Record):
    """Update ``id`` called ``name`` was admitted with ``args`` (encoded arguments)."""

    KIND = Kind.UPDATE_ACCEPTED
    id: str
    name: str
    args: bytes


@dataclass(frozen=True, slots=True)
class UpdateCompleted(Record):
    """The handler of update ``id`` returned ``result`` or raised ``failure`` (a map)."""

    KIND = Kind.UPDATE_COMPLETED
    id: str
    name: str
    result: bytes | None = None
    failure: dict[str, Any] | None = None
    branch: str = "0"


@dataclass(frozen=True, slots=True)
class WorkflowCompleted(Record):
    """The run returned ``result``."""

    KIND = Kind.WORKFLOW_COMPLETED
    result: bytes | None


@dataclass(frozen=True, slots=True)
class WorkflowFailed(Record):
    """The run raised ``error`` (or hit its timeout or a limit)."""

    KIND = Kind.WORKFLOW_FAILED
    error: RemoteError


@dataclass(frozen=True, slots=True)
class WorkflowCancelled(Record):
    """The run ended by cancellation."""

    KIND = Kind.WORKFLOW_CANCELLED


@dataclass(frozen=True, slots=True)
class ContinuedAsNew(Record):
    """The run ended; successor run ``run_id`` starts afresh with ``args``."""

    KIND = Kind.CONTINUED_AS_NEW
    args: bytes
    run_id: str


@dataclass(frozen=True, slots=True)
class WorkflowTerminated(Record):
    """A client terminated the run."""

    KIND = Kind.WORKFLOW_TERMINATED
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunRetried(Record):
    """An operator re-opened the run (``handle.retry()``), which had ``status``."""

    KIND = Kind.RUN_RETRIED
    status: str
    cause: str = ""
    step: int | None = None
    dropped: list[list[Any]] = dataclasses.field(default_factory=list)  # [seq, kind] pairs
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunForked(Record):
    """The run began as a fork (``client.fork()``) of the first ``at_seq`` entries of run
    ``run_id`` of workflow ``workflow_id``."""

    KIND = Kind.RUN_FORKED
    workflow_id: str
    run_id: str
    at_seq: int


@dataclass(frozen=True, slots=True)
class Damaged:
    """An entry that cannot be read: an unknown kind or data that does not decode.

    Shown as such (with ``problem``) rather than hiding the rest of the journal."""

    kind: str
    problem: str
    raw: bytes = b""


# Every record class is a direct subclass of Record (defined above).
_RECORDS: dict[str, type[Record]] = {cls.KIND: cls for cls in Record.__subclasses__()}
# Per kind: its record class and its field names (read on every input the engine applies).
_FIELDS: dict[str, tuple[type[Record], tuple[str, ...]]] = {
    kind: (cls, tuple(f.name for f in dataclasses.fields(cls))) for kind, cls in _RECORDS.items()
}


def from_data(kind: str, data: dict[str, Any]) -> Record:
    """The record of ``kind`` built from its decoded data map.

    Unknown fields are ignored (a newer writer may add some); missing ones take their
    defaults. Raises `ValueError` for an unknown kind or a missing required field.
    """
    found = _FIELDS.get(kind)
    if found is None:
        raise ValueError(f"unknown journal kind {kind!r}")
    cls, names = found
    kwargs = {name: data[name] for name in names if name in data}
    if "error" in names:
        kwargs["error"] = _error(kwargs.get("error"))
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{kind} entry is missing a field: {exc}") from None


def decode(kind: str, data: bytes) -> Record | Damaged:
    """The typed record of a stored entry, or `Damaged` saying why it cannot be read."""
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        return Damaged(kind, f"its data does not decode ({type(exc).__name__}: {exc})", data)
    if not isinstance(fields, dict):
        return Damaged(kind, f"its data is a {type(fields).__name__}, not a map", data)
    try:
        return from_data(kind, fields)
    except ValueError as exc:
        return Damaged(kind, str(exc), data)


def encode(record: Record) -> bytes:
    """The stored data of ``record`` (its payload fields are already encoded bytes)."""
    packed: bytes = msgpack.packb(record.to_data(), use_bin_type=True)
    return packed
