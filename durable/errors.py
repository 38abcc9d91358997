"""Every error durable raises, under one root.

    DurableError
    ├── ActivityError          an activity failed for good (retries exhausted or non-retryable)
    ├── ChildWorkflowError     a child workflow failed, was cancelled or terminated
    ├── WorkflowFailed         handle.result(): the workflow raised
    ├── WorkflowCancelled      handle.result(): the workflow was cancelled or terminated
    ├── NonDeterminismError    replay: the code no longer does what the journal recorded
    ├── SerializationError     a value cannot be encoded or decoded as a payload
    ├── WorkflowNotFound       no workflow with that id
    ├── ScheduleNotFound       no schedule with that id
    ├── WorkflowAlreadyExists  client.start(..., if_exists="error") found one
    ├── NotInWorkflowError     a workflow-only call made outside a workflow
    ├── ExternalError          durable.external(...).wait(): the wait was failed from outside
    ├── UpdateRejected         handle.update(): no such handler, or its validator raised
    ├── UpdateFailed           handle.update(): the handler raised, or the run closed first
    ├── CompensationError      durable.saga(): a compensation failed too (.error, .failures)
    ├── MapFailed              durable.map(): more items failed than it tolerates
    ├── QueryError             handle.query(): unknown query, refused, raised, or no answer
    ├── TaskNotFound           a task token that names nothing (malformed, or no such run)
    ├── StaleTask              a task token whose attempt or wait is over (.outcome says how)
    ├── RepairError            retry()/fork() refused: nothing to repair in that state or seq
    ├── StoreError             the database cannot be used (newer schema, bad URL, ...)
    │   ├── LeaseLost          a worker's write was fenced off: another owner took over
    │   ├── StepDataError      a commit failed on what a step holds, not on the database
    │   └── DatabaseUnusable   the database went away under the process: restart it
    └── ApplicationError       raised by user code for a structured failure

`RemoteError` is not an exception: it is the recorded description of one (type, message,
traceback, details) as it travels through the journal, and it is what `.cause` and
`WorkflowDescription.error` carry.
"""

from __future__ import annotations

import traceback as _traceback
from asyncio import CancelledError
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "ActivityError",
    "ApplicationError",
    "ChildWorkflowError",
    "CompensationError",
    "DatabaseUnusable",
    "DurableError",
    "ExternalError",
    "LeaseLost",
    "MapFailed",
    "NonDeterminismError",
    "NotInWorkflowError",
    "QueryError",
    "RemoteError",
    "RepairError",
    "ScheduleNotFound",
    "SerializationError",
    "StaleTask",
    "StepDataError",
    "StoreError",
    "TaskNotFound",
    "UpdateFailed",
    "UpdateRejected",
    "WorkflowAlreadyExists",
    "WorkflowCancelled",
    "WorkflowFailed",
    "WorkflowNotFound",
]


MAX_MESSAGE = 16 * 1024  # characters of an error message kept in the journal
MAX_TRACEBACK = 64 * 1024  # characters of a traceback kept (its end: where it was raised)
MAX_DETAILS = 64 * 1024  # bytes ApplicationError.details may encode to


def _cut(text: str, limit: int, keep_end: bool = False) -> str:
    if len(text) <= limit:
        return text
    note = f"[... {len(text) - limit:,} characters cut ...]"
    return note + text[-limit:] if keep_end else text[:limit] + note


@dataclass(frozen=True)
class RemoteError:
    """A failure as recorded in the journal: what was raised, where, and its details.

    `type` is the exception's qualified class name (or an `ApplicationError`'s `type`),
    `message` its text, `traceback` the formatted traceback where one was captured.
    """

    type: str
    message: str
    traceback: str = ""
    details: Any = None
    non_retryable: bool = False
    cause: RemoteError | None = field(default=None, repr=False)

    @classmethod
    def from_exception(cls, exc: BaseException) -> RemoteError:
        """Describe `exc` (and its chain of causes) for the journal.

        A message longer than `MAX_MESSAGE` characters and a traceback longer than
        `MAX_TRACEBACK` are cut (saying so). ``details`` are kept as raised: for the journal,
        use `durable.payload.error_record`, which also makes sure they can be stored.
        """
        tb = _cut("".join(_traceback.format_exception(exc)), MAX_TRACEBACK, keep_end=True)
        if isinstance(exc, ApplicationError):
            message = _cut(exc.message, MAX_MESSAGE)
            return cls(exc.type, message, tb, exc.details, exc.non_retryable)
        if isinstance(exc, ActivityError | ChildWorkflowError):
            return cls(type(exc).__name__, _cut(str(exc), MAX_MESSAGE), tb, None, False, exc.cause)
        if isinstance(exc, CompensationError):  # its cause: the error that was compensated
            cause = cls.from_exception(exc.error)
            return cls(type(exc).__name__, _cut(str(exc), MAX_MESSAGE), tb, None, False, cause)
        name = type(exc).__qualname__
        module = type(exc).__module__
        if module not in ("builtins", "__main__"):
            name = f"{module}.{name}"
        message = str(exc)
        if not isinstance(exc, Exception | CancelledError):  # SystemExit, KeyboardInterrupt...
            message = (
                f"user code raised {exc!r}; durable records it as a failure of this step "
                "(it does not stop the worker): return or raise an ordinary exception instead"
            )
        return cls(name, _cut(message, MAX_MESSAGE), tb)

    def with_unstorable_details(self, why: str) -> RemoteError:
        """A copy whose ``details`` (which could not be stored) become a note: their ``repr``
        and `why` they could not be stored, both cut to 1 KiB."""
        note = {"unstorable": _cut(repr(self.details), 1024), "why": _cut(why, 1024)}
        return replace(self, details=note)

    def to_dict(self) -> dict[str, Any]:
        """The plain form stored in payloads."""
        return {
            "type": self.type,
            "message": self.message,
            "traceback": self.traceback,
            "details": self.details,
            "non_retryable": self.non_retryable,
            "cause": self.cause.to_dict() if self.cause is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemoteError:
        """Rebuild from `to_dict()`'s output."""
        cause = data.get("cause")
        return cls(
            type=str(data.get("type", "Exception")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
            details=data.get("details"),
            non_retryable=bool(data.get("non_retryable", False)),
            cause=cls.from_dict(cause) if isinstance(cause, dict) else None,
        )

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"


class DurableError(Exception):
    """Root of every error durable raises."""


class ApplicationError(DurableError):
    """Raise this from an activity or workflow for a structured failure.

    `type` names the failure for callers (defaults to the class name), `details` is any
    serializable value, and `non_retryable=True` stops an activity's retries at once.

        raise ApplicationError("card declined", type="CardDeclined", non_retryable=True)
    """

    def __init__(
        self,
        message: str,
        type: str | None = None,
        non_retryable: bool = False,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or "ApplicationError"
        self.non_retryable = non_retryable
        self.details = details


class ActivityError(DurableError):
    """Raised inside a workflow when an activity has failed for good.

    `.cause` is the `RemoteError` of the last attempt; `.attempts` how many were made.
    """

    def __init__(self, message: str, cause: RemoteError, attempts: int = 1) -> None:
        super().__init__(message)
        self.cause = cause
        self.attempts = attempts


class ChildWorkflowError(DurableError):
    """Raised inside a workflow when a child workflow failed, was cancelled or terminated.

    `.cause` is the child's `RemoteError`; `.workflow_id` names the child.
    """

    def __init__(self, message: str, cause: RemoteError, workflow_id: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.workflow_id = workflow_id


class WorkflowFailed(DurableError):
    """Raised by `handle.result()` when the workflow raised; `.cause` is its `RemoteError`."""

    def __init__(self, message: str, cause: RemoteError, workflow_id: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.workflow_id = workflow_id


class WorkflowCancelled(DurableError):
    """Raised by `handle.result()` when the workflow was cancelled or terminated."""

    def __init__(self, message: str, workflow_id: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.workflow_id = workflow_id
        self.reason = reason


class NonDeterminismError(DurableError):
    """Replay found the code doing something other than what the journal recorded.

    The workflow is parked (not failed, nothing written) until compatible code is deployed;
    `describe().problem` carries this message. Where the engine found it, the error also
    says where: ``seq`` (the journal position), ``recorded`` and ``issued`` (the commands,
    described; ``None`` for "nothing") and ``location`` (``file:line in function: code`` of
    the workflow code that issued the command or was waiting), for `durable replay`'s diff.
    """

    def __init__(
        self,
        message: str,
        *,
        seq: int | None = None,
        recorded: str | None = None,
        issued: str | None = None,
        location: str | None = None,
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.recorded = recorded
        self.issued = issued
        self.location = location


class SerializationError(DurableError, TypeError):
    """A value cannot be encoded or decoded as a msgpack payload (names the path inside it)."""


class WorkflowNotFound(DurableError, LookupError):
    """No workflow (or run) with that id exists in this database."""


class ScheduleNotFound(DurableError, LookupError):
    """No schedule with that id exists in this database (`durable.schedules`)."""


class WorkflowAlreadyExists(DurableError):
    """`client.start(..., if_exists="error")` found a workflow with that id."""


class NotInWorkflowError(DurableError, RuntimeError):
    """A call that only makes sense inside a workflow (or activity) was made outside one."""


class ExternalError(DurableError):
    """Raised by ``await ext.wait()`` when the external wait was failed from outside
    (``client.fail(token, error)``). `.cause` is the `RemoteError` given; `.name` the wait's."""

    def __init__(self, message: str, cause: RemoteError, name: str = "") -> None:
        super().__init__(message)
        self.cause = cause
        self.name = name


class UpdateRejected(DurableError):
    """Raised by ``handle.update()`` when the workflow refused the update before
    journaling anything: it has no handler of that name (``.cause.type`` is
    ``"UnknownUpdate"``, the message names the registered ones), or the handler's
    validator raised (``.cause`` is what it raised). Nothing ran; sending again with a
    new update id is safe."""

    def __init__(
        self, message: str, cause: RemoteError, workflow_id: str = "", update_id: str = ""
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.workflow_id = workflow_id
        self.update_id = update_id


class UpdateFailed(DurableError):
    """Raised by ``handle.update()`` when the update was accepted but gave no result:
    its handler raised (``.cause`` is what it raised, as `WorkflowFailed` carries a
    workflow's error), or the run closed or continued as new before the handler ended
    (``.cause.type`` is ``"WorkflowClosed"``)."""

    def __init__(
        self, message: str, cause: RemoteError, workflow_id: str = "", update_id: str = ""
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.workflow_id = workflow_id
        self.update_id = update_id


class TaskNotFound(DurableError, LookupError):
    """A task token names nothing: it is malformed, or its workflow run does not exist in
    this database. The message says what a token looks like and where tokens come from."""


class StaleTask(DurableError):
    """A task token's attempt or external wait can no longer be completed this way: the
    attempt was declared lost or timed out and another owns the task, the step already
    ended otherwise, or the run closed.

    `.outcome` is what is stored, JSON-able: ``{"status": ...}`` with ``status`` one of
    ``completed``, ``failed`` (with ``error``), ``retrying`` / ``running`` / ``scheduled``
    (another attempt: ``attempt``), ``cancelled`` or ``closed`` (the run ended first), and
    where known ``attempt``, ``result`` or ``error``. Completing the same attempt twice the
    same way is not stale: the second call is a no-op.
    """

    def __init__(self, message: str, outcome: dict[str, Any]) -> None:
        super().__init__(message)
        self.outcome = outcome


class RepairError(DurableError, ValueError):
    """``handle.retry()`` or ``client.fork()`` cannot do what was asked: the run is in a
    state that has nothing to retry, or the seq does not cut its journal where it can
    replay (`durable.repair`). The message says which state or seq, and what to do
    instead. Nothing was written."""


class StoreError(DurableError):
    """The database cannot be used as asked: bad URL, newer schema, missing driver."""


class LeaseLost(StoreError):
    """A worker's write was rejected because its lease on the workflow or task is gone."""


class StepDataError(StoreError):
    """A commit failed because of the data one of its steps holds (a constraint the values
    break), not because the database is out of reach: retrying the same batch would fail
    again. The worker then commits the batch's steps apart and parks the step at fault."""


class DatabaseUnusable(StoreError):
    """The database this process had open can no longer be used, and retrying cannot help:
    its SQLite file was deleted or replaced, or the connection turned read-only. A worker
    stops on it (rather than retrying its loops forever); fix the cause and restart."""


class CompensationError(DurableError):
    """Raised out of a `durable.saga()` block when the block failed (or was cancelled) and
    one or more of its compensations then failed too, after their own retries.

    Every compensation was still tried, newest first; nothing is silenced. `.error` is what
    ended the block (the exception, or `asyncio.CancelledError`), `.failures` the
    `ActivityError` of each compensation that failed, in the order they ran. It is raised
    ``from`` `.error`, and a workflow failing with it records `.error` as its cause.
    """

    def __init__(self, message: str, error: BaseException, failures: list[ActivityError]) -> None:
        super().__init__(message)
        self.error = error
        self.failures = failures


class MapFailed(DurableError):
    """Raised by ``durable.map(..., tolerated_failures=...)`` (or with ``batch_size``) when
    more items failed than it tolerates.

    `.failed` items failed of `.total`; `.errors` holds the first few as ``(index, error)``
    pairs (the item's position in the input, and its `ActivityError` or
    `ChildWorkflowError`), and the message names them.
    """

    def __init__(
        self, message: str, failed: int, total: int, errors: list[tuple[int, DurableError]]
    ) -> None:
        super().__init__(message)
        self.failed = failed
        self.total = total
        self.errors = errors


class QueryError(DurableError):
    """Raised by ``handle.query(name, *args)`` when the query got no result (`durable.queries`).

    `.reason` says why, `.cause` (a `RemoteError`, or ``None``) what the worker reported:

    - ``"unknown_query"``: the run registers no query of that name (the message lists the
      names it does register, or says that the run has not started yet);
    - ``"refused"``: the query function is ``async`` or returned an awaitable, called a
      durable operation (an activity, a timer, ``publish``, ``set_tags``, ...), or does not
      take the arguments given: a query only reads the run's state;
    - ``"failed"``: the query function raised (`.cause` is its error), its result could not
      be encoded, or the run's code no longer replays its journal;
    - ``"no_answer"``: no worker serving the workflow answered within the timeout (start
      one: ``durable worker MODULE``).

    Nothing is written to the run's journal in any case.
    """

    def __init__(
        self,
        message: str,
        reason: str,
        cause: RemoteError | None = None,
        workflow_id: str = "",
        query: str = "",
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.cause = cause
        self.workflow_id = workflow_id
        self.query = query
