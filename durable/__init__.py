"""durable: durable execution for Python — workflows as plain async functions.

General layout (one concept per module):

- definition  @workflow, @activity (functions and methods), RetryPolicy, call: mark
              functions; nothing global
- journal     the journal's vocabulary: entry kinds, typed records, task ids, routing
- branches    which task of the workflow's code issued each command, and which ran together
- engine      the replay engine: a deterministic event loop per run; journal in, commands out
- calls       what a run calls: activities (Python or remote, by name) and child workflows
- children    parent-close policies: a closing parent's running children cancelled,
              terminated or left running
- waits       what a run waits for from outside: signals, and external completions by token
- handlers    a run's signal and update handlers and the conditions its code waits on
- messages    on_signal, on_update, wait_condition, all_handlers_finished: the calls
- updates     handle.update: the caller's side of an update, and its stored outcome
- queries     durable.on_query: read-only functions of a run, answered from memory or replay
- guard       refuses I/O, threads, the wall clock and global random in workflow code
- context     what user code calls inside a workflow (sleep, wait_signal, ...) or activity
- sagas       durable.saga(): compensations run newest first when a block fails
- mapping     durable.map's tolerated failures and batches of child workflows
- steps       the one model of a run people see: journal in, steps, pending work, problems
- executor    runs one activity attempt: timeouts, heartbeats, SystemExit contained
- retry       retry decisions in one place: is a failed attempt tried again, and when
- limits      queue limits (concurrency, per key, rate) and priorities, enforced in claims
- worker      Worker: its loops (claims, timers, heartbeats), lifecycle and idleness
- stepping    a live run's inputs into its engine, its commands out as one step commit
- committing  group commit: the steps of all runs pending at once, in one transaction
- attempts    activity attempts in a worker: slots, local and claimed, results kept
- signature   workflow signatures workers publish, to check starts by name
- tags        durable.set_tags: a workflow labelling its own run for search
- retention   client.prune, Worker(retention=): deleting old closed runs in batches
- client      connect, Client, WorkflowHandle: start, signal, cancel, terminate, inspect
- asking      handle.query: a query left in the database, answered by a worker, read back
- answering   the worker's side of queries: who answers, from memory or by replay
- querybox    the storage of queries: the requests clients leave and the answers workers write
- schedules   Client.schedule, ScheduleHandle: cron schedules, fired by workers once per tick
- ticks       a schedule's rules, pure: cron in a time zone, catch-up, jitter, overlap
- tasks       remote activity attempts and external waits: poll, heartbeat, complete, fail
- tokens      task tokens: the opaque strings that name an attempt or an external wait
- store       the storage contract (a small abstract class); backends live in backends/
- plan        the group-commit rules as a pure function: fences, writes, routing, wake-ups
- repair      retry (re-open a failed run where it stopped) and fork: the rules, pure
- cuts        where a journal may be cut, and what a cut leaves in flight (for repair)
- payload     msgpack payloads (never pickle): the wire format, encode and decode
- hints       rebuilding decoded values from type hints (dataclasses, enums, unions)
- jsonform    JSON forms of payload values, for HTTP and other languages
- layout      per-function parameter layouts: fast call binding, argument rebuilding
- urls        database URLs as they may be shown: passwords and tokens masked
- clock       the one source of time: real, or virtual for tests
- notify      in-process wake-ups between stores of one database
- topics      wake-up topic names: what commits notify and who waits on them
- errors      DurableError and its shallow tree
- testing     WorkflowEnvironment: in-process backend, worker and client with time skipping;
              store_contract: the storage contract suite every backend must pass
- server      the HTTP API (`durable server`): routes as data, OpenAPI, problems, bearer
              token, server-sent events
- console     the web console `durable server` serves at /: pages, and a run drawn on the
              server as a graph (series-parallel SVG) and a timeline
- cli         the `durable` command
"""

from .client import Client, Event, WorkflowDescription, WorkflowHandle, connect
from .context import (
    ActivityInfo,
    activity_info,
    continue_as_new,
    deprecate_patch,
    external,
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
    CompensationError,
    DurableError,
    ExternalError,
    MapFailed,
    NonDeterminismError,
    NotInWorkflowError,
    QueryError,
    RemoteError,
    RepairError,
    ScheduleNotFound,
    SerializationError,
    StaleTask,
    TaskNotFound,
    UpdateFailed,
    UpdateRejected,
    WorkflowAlreadyExists,
    WorkflowCancelled,
    WorkflowFailed,
    WorkflowNotFound,
)
from .limits import QueueLimits
from .messages import all_handlers_finished, on_signal, on_update, wait_condition
from .queries import on_query
from .sagas import Saga, saga
from .schedules import ScheduleDescription, ScheduledRun, ScheduleHandle
from .steps import Attempt, PendingStep, Step
from .tags import set_tags
from .tasks import RemoteTask
from .waits import External
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "ActivityError",
    "ActivityInfo",
    "ApplicationError",
    "Attempt",
    "ChildWorkflowError",
    "Client",
    "CompensationError",
    "DurableError",
    "Event",
    "External",
    "ExternalError",
    "MapFailed",
    "NonDeterminismError",
    "NotInWorkflowError",
    "PendingStep",
    "QueryError",
    "QueueLimits",
    "RemoteError",
    "RemoteTask",
    "RepairError",
    "RetryPolicy",
    "Saga",
    "ScheduleDescription",
    "ScheduleHandle",
    "ScheduleNotFound",
    "ScheduledRun",
    "SerializationError",
    "StaleTask",
    "Step",
    "TaskNotFound",
    "UpdateFailed",
    "UpdateRejected",
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
    "all_handlers_finished",
    "call",
    "connect",
    "continue_as_new",
    "deprecate_patch",
    "external",
    "heartbeat",
    "info",
    "logger",
    "map",
    "now",
    "on_query",
    "on_signal",
    "on_update",
    "patched",
    "publish",
    "random",
    "saga",
    "set_tags",
    "sleep",
    "sleep_until",
    "uuid4",
    "wait_condition",
    "wait_signal",
    "workflow",
]
