"""durable: durable execution for Python — workflows as plain async functions.

General layout (one concept per module):

- definition  @workflow, @activity, RetryPolicy, call: mark functions; nothing global
- engine      the replay engine: a deterministic event loop per run; journal in, commands out
- context     what user code calls inside a workflow (sleep, wait_signal, ...) or activity
- executor    runs one activity attempt: timeouts, heartbeats, retry classification
- worker      Worker: claims runs and tasks, steps workflows, group-commits their journals
- client      connect, Client, WorkflowHandle: start, signal, cancel, terminate, inspect
- store       the storage contract (a small abstract class); backends live in backends/
- payload     msgpack payloads (never pickle): the wire format, encode and decode
- hints       rebuilding decoded values from type hints (dataclasses, enums, unions)
- layout      per-function parameter layouts: fast call binding, argument rebuilding
- clock       the one source of time: real, or virtual for tests
- notify      in-process wake-ups between stores of one database
- errors      DurableError and its shallow tree
- testing     WorkflowEnvironment: in-process backend, worker and client with time skipping
- cli         the `durable` command
"""

from .client import Client, Event, PendingStep, WorkflowDescription, WorkflowHandle, connect
from .context import (
    ActivityInfo,
    activity_info,
    continue_as_new,
    deprecate_patch,
    heartbeat,
    info,
    logger,
    map,
    now,
    patched,
    publish,
    random,
    sleep,
    sleep_until,
    uuid4,
    wait_signal,
)
from .definition import RetryPolicy, activity, call, workflow
from .engine import WorkflowInfo
from .errors import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    DurableError,
    NonDeterminismError,
    NotInWorkflowError,
    RemoteError,
    SerializationError,
    WorkflowAlreadyExists,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowNotFound,
)
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ActivityError",
    "ActivityInfo",
    "ApplicationError",
    "ChildWorkflowError",
    "Client",
    "DurableError",
    "Event",
    "NonDeterminismError",
    "NotInWorkflowError",
    "PendingStep",
    "RemoteError",
    "RetryPolicy",
    "SerializationError",
    "Worker",
    "WorkflowAlreadyExists",
    "WorkflowCancelled",
    "WorkflowDescription",
    "WorkflowFailed",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowNotFound",
    "activity",
    "activity_info",
    "call",
    "connect",
    "continue_as_new",
    "deprecate_patch",
    "heartbeat",
    "info",
    "logger",
    "map",
    "now",
    "patched",
    "publish",
    "random",
    "sleep",
    "sleep_until",
    "uuid4",
    "wait_signal",
    "workflow",
]
