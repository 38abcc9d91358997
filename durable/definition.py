"""`@workflow`, `@activity`, `RetryPolicy` and `call`: marking work, not registering it.

A decorator attaches a frozen definition to the function and returns a thin
`functools.wraps` wrapper whose only job is to route a call by context:

- inside a workflow, calling an activity schedules it and returns an awaitable of its result;
  calling a workflow starts it as a child and returns an awaitable of its result;
- outside, an activity call just runs the function (handy in unit tests), and a workflow call
  raises `NotInWorkflowError` pointing at ``client.start``.

There is no global registry: a `Worker` is given the functions it serves.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar, cast, overload

from .errors import NotInWorkflowError
from .journal import PARENT_CLOSE
from .layout import check_function
from .limits import check_key, check_priority
from .loop import current_run

logger = logging.getLogger("durable.workflow")

__all__ = [
    "ActivityDefinition",
    "RetryPolicy",
    "WorkflowDefinition",
    "activity",
    "activity_definition",
    "bind_activity",
    "call",
    "check_parent_close",
    "workflow",
    "workflow_definition",
]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"


def _seconds(value: timedelta | float | None, what: str) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How an activity's failed attempts are retried: durably, with exponential backoff.

        RetryPolicy(max_attempts=5, initial_interval=timedelta(seconds=1), backoff=2.0,
                    max_interval=timedelta(minutes=1), non_retryable=(ValueError,))

    Intervals are timedeltas or seconds (``initial_interval=0.5``). ``max_attempts=0``
    retries forever. ``non_retryable`` lists exception classes (or their
    names, matched against the error's type) that fail the activity at once, as does an
    `ApplicationError` raised with ``non_retryable=True``.
    """

    max_attempts: int = 3
    initial_interval: timedelta = timedelta(seconds=1)
    backoff: float = 2.0
    max_interval: timedelta = timedelta(seconds=100)
    non_retryable: Sequence[type[BaseException] | str] = ()

    def __post_init__(self) -> None:
        for name in ("initial_interval", "max_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
                raise TypeError(
                    f"RetryPolicy.{name} must be a timedelta (or seconds as a number), "
                    f"got {value!r}"
                )
            if not isinstance(value, timedelta):  # seconds, as timeout= takes them
                object.__setattr__(self, name, timedelta(seconds=value))
        if self.max_attempts < 0:
            raise ValueError(
                f"RetryPolicy.max_attempts must be >= 0 (0 = unlimited), got {self.max_attempts}"
            )
        if self.initial_interval.total_seconds() < 0:
            raise ValueError("RetryPolicy.initial_interval must not be negative")
        if self.backoff < 1.0:
            raise ValueError(f"RetryPolicy.backoff must be >= 1.0, got {self.backoff}")
        if self.max_interval < self.initial_interval:
            raise ValueError(
                f"RetryPolicy.max_interval ({self.max_interval}) must be >= initial_interval "
                f"({self.initial_interval}); raise max_interval too"
            )
        object.__setattr__(self, "non_retryable", tuple(self.non_retryable))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = self.initial_interval.total_seconds() * self.backoff ** (attempt - 1)
        return min(raw, self.max_interval.total_seconds())

    def allows_another(self, attempt: int) -> bool:
        """Whether attempt ``attempt + 1`` may run."""
        return self.max_attempts == 0 or attempt < self.max_attempts

    def non_retryable_names(self) -> list[str]:
        """``non_retryable`` as type names, the form stored with a task."""
        names = []
        for item in self.non_retryable:
            if isinstance(item, str):
                names.append(item)
            else:
                names.append(item.__qualname__)
                if item.__module__ not in ("builtins", "__main__"):
                    names.append(f"{item.__module__}.{item.__qualname__}")
        return names

    def to_dict(self) -> dict[str, Any]:
        """The plain form stored with a task."""
        return {
            "max_attempts": self.max_attempts,
            "initial_interval": self.initial_interval.total_seconds(),
            "backoff": self.backoff,
            "max_interval": self.max_interval.total_seconds(),
            "non_retryable": self.non_retryable_names(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetryPolicy:
        """Rebuild from `to_dict()`."""
        return cls(
            max_attempts=int(data["max_attempts"]),
            initial_interval=timedelta(seconds=data["initial_interval"]),
            backoff=float(data["backoff"]),
            max_interval=timedelta(seconds=data["max_interval"]),
            non_retryable=tuple(data["non_retryable"]),
        )


@dataclass(frozen=True)
class ActivityDefinition:
    """What `@activity` attaches to a function (``fn.__durable_activity__``).

    ``queue`` `None` runs it on the queue of the workflow that calls it. For a method
    (``method`` true), ``fn`` is the method bound to a stand-in until a worker binds it to
    the object it was given (`bind_activity`): either way its signature and type hints
    leave ``self`` out, so ``self`` is never part of a call's arguments nor serialized.
    """

    name: str
    fn: Callable[..., Any]
    queue: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None  # seconds per attempt (start-to-close)
    heartbeat_timeout: float | None = None
    schedule_to_close: float | None = None  # seconds from first schedule to final result
    is_async: bool = True
    method: bool = False


@dataclass(frozen=True)
class WorkflowDefinition:
    """What `@workflow` attaches to a function (``fn.__durable_workflow__``)."""

    name: str
    fn: Callable[..., Awaitable[Any]]
    queue: str = DEFAULT_QUEUE
    timeout: float | None = None  # seconds the whole run may take


def activity_definition(fn: object) -> ActivityDefinition:
    """The definition behind an `@activity` function; a clear error for anything else."""
    defn = getattr(fn, "__durable_activity__", None)
    if not isinstance(defn, ActivityDefinition):
        raise TypeError(
            f"{getattr(fn, '__qualname__', fn)!r} is not an activity: was it decorated "
            "with @activity?"
        )
    return defn


def bind_activity(fn: object) -> ActivityDefinition:
    """The definition a worker serves for ``fn``: a function's own, or for a method the
    definition bound to the object ``fn`` is a method of (``payments.charge``), so the
    worker calls it on that object, which carries its dependencies.

    Raises:
        TypeError: ``fn`` is not an activity, or is a method taken from its class
            (``Payments.charge``) rather than from an object (``payments.charge``).
    """
    defn = activity_definition(fn)
    if not defn.method:
        return defn
    func = cast(types.MethodType, defn.fn).__func__
    owner = getattr(fn, "__self__", None)
    if not inspect.ismethod(fn) or isinstance(owner, type):
        cls, _, method = defn.name.rpartition(".")
        raise TypeError(
            f"Activity {defn.name!r} is a method, and was given without an object: register "
            f"an object's method, e.g. Worker(activities=[{cls or 'Service'}(...).{method}]), "
            "so the worker has the object (and the dependencies it carries) to call it on."
        )
    return dataclasses.replace(defn, fn=types.MethodType(func, owner))


class _NoInstance:
    """``self`` of a method activity not yet bound by a worker (`bind_activity`): only its
    signature and hints are used; running it says what to do."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        # AttributeError (hasattr and copy probe attributes), with what to do.
        name = self.__dict__.get("_name")
        if name is None or attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(
            f"Method activity {name!r} ran without its object (it used self.{attr}): "
            "call it on an object outside workflows, and give a worker the object's method "
            "(Worker(activities=[obj.method]))."
        )

    def __repr__(self) -> str:
        return f"<no object for {self._name}>"


def _is_method(f: Callable[..., Any]) -> bool:
    """Whether ``f`` is defined in a class body (its qualified name says so) and takes
    ``self`` first: a method whose activity name is ``Class.method``."""
    parts = getattr(f, "__qualname__", "").split(".")
    if len(parts) < 2 or parts[-2] == "<locals>":
        return False
    try:
        params = list(inspect.signature(f).parameters)
    except (TypeError, ValueError):  # no signature to read: not a method we can tell
        return False
    return bool(params) and params[0] == "self"


def _is_own_object(first: object, name: str, route: object) -> bool:
    """Whether ``first``, the first argument of a method activity's call in a workflow, is
    an object of its class (``obj.charge(...)``) rather than an argument (``Cls.charge(...)``)."""
    if isinstance(first, type):
        return False
    return inspect.getattr_static(type(first), name, None) is route


def workflow_definition(fn: object) -> WorkflowDefinition:
    """The definition behind a `@workflow` function; a clear error for anything else."""
    defn = getattr(fn, "__durable_workflow__", None)
    if not isinstance(defn, WorkflowDefinition):
        raise TypeError(
            f"{getattr(fn, '__qualname__', fn)!r} is not a workflow: was it decorated "
            "with @workflow?"
        )
    return defn


def _in_workflow() -> bool:
    return current_run() is not None


@overload
def workflow(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Awaitable[R]]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    timeout: timedelta | float | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]: ...


def workflow(
    fn: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    timeout: timedelta | float | None = None,
) -> Any:
    """Mark an ``async def`` as a workflow: its awaited steps are journaled and replayed.

        @workflow
        async def place_order(order: dict) -> dict: ...

        @workflow(name="orders.place", queue="orders", timeout=timedelta(days=30))
        async def place_order_v2(order: dict) -> dict: ...

    Inside another workflow, calling it starts a child workflow. Elsewhere, start it with
    ``client.start(place_order, order)``.
    """

    def mark(f: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        if not inspect.iscoroutinefunction(f):
            raise TypeError(
                f"@workflow needs an 'async def' function; {f.__qualname__!r} is not one."
            )
        check_function(f)  # a hint its payloads could never be decoded faithfully with
        defn = WorkflowDefinition(
            name=name or f.__name__,
            fn=f,
            queue=queue,
            timeout=_seconds(timeout, "workflow timeout"),
        )

        @functools.wraps(f)
        def route(*args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
            run = current_run()
            if run is None:
                raise NotInWorkflowError(
                    f"Workflow {defn.name!r} was called outside a workflow. Start it with "
                    f"client.start({f.__name__}, ...) or client.execute(...); inside a "
                    "workflow, calling it runs it as a child workflow."
                )
            return cast(Awaitable[R], run.start_child(defn, args, kwargs, {}))

        route.__durable_workflow__ = defn  # type: ignore[attr-defined]
        return route

    return mark(fn) if fn is not None else mark


@overload
def activity(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def activity(
    *,
    name: str | None = None,
    queue: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    heartbeat_timeout: timedelta | float | None = None,
    schedule_to_close: timedelta | float | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def activity(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str | None = None,
    retry: RetryPolicy | None = None,
    timeout: timedelta | float | None = None,
    heartbeat_timeout: timedelta | float | None = None,
    schedule_to_close: timedelta | float | None = None,
) -> Any:
    """Mark a function (async, or sync: run in a thread pool) as an activity.

        @activity
        async def charge(order_id: str, cents: int) -> str: ...

        @activity(retry=RetryPolicy(max_attempts=5), timeout=timedelta(minutes=5))
        def refund(order_id: str) -> None: ...

    In a workflow, ``await charge(...)`` schedules it (at least once, retried per ``retry``)
    and returns its result or raises `ActivityError`. Outside a workflow it simply runs.
    ``timeout`` bounds each attempt; ``heartbeat_timeout`` fails an attempt whose last
    ``durable.heartbeat()`` is older; ``schedule_to_close`` bounds all attempts together.
    ``queue=None`` (the default) runs it on the queue of the workflow that calls it.

    On a method (defined in a class, ``self`` first), the activity is named
    ``Class.method`` unless ``name`` says otherwise, and carries the object's dependencies:

        class Payments:
            def __init__(self, pool: Pool) -> None:
                self.pool = pool

            @activity
            async def charge(self, order_id: str, cents: int) -> str: ...

        # the worker is given the method of an object: Worker(activities=[payments.charge])
        # a workflow calls it through the class, no object needed there:
        receipt = await Payments.charge(order_id, cents)

    ``self`` is never serialized nor part of the call's arguments: the worker runs the
    method on the object it was given. Type checkers see ``self`` in
    ``Payments.charge``'s signature; typed workflow code calls it as
    ``await durable.call(Payments.charge, order_id, cents)``, which does the same.
    """
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise ValueError(f"@activity(queue=...) must be a non-empty str or None, got {queue!r}")

    def mark(f: Callable[P, R]) -> Callable[P, R]:
        check_function(f)  # a hint its payloads could never be decoded faithfully with
        method = _is_method(f)
        default = ".".join(f.__qualname__.split(".")[-2:]) if method else f.__name__
        fn: Callable[..., Any] = f
        if method:  # bound to a stand-in: signature and hints without self
            fn = types.MethodType(f, _NoInstance(name or default))
        defn = ActivityDefinition(
            name=name or default,
            fn=fn,
            queue=queue,
            retry=retry if retry is not None else RetryPolicy(),
            timeout=_seconds(timeout, "activity timeout"),
            heartbeat_timeout=_seconds(heartbeat_timeout, "heartbeat_timeout"),
            schedule_to_close=_seconds(schedule_to_close, "schedule_to_close"),
            is_async=inspect.iscoroutinefunction(f),
            method=method,
        )

        @functools.wraps(f)
        def route(*args: P.args, **kwargs: P.kwargs) -> R:
            run = current_run()
            if run is None:
                return f(*args, **kwargs)
            if method and args and _is_own_object(args[0], f.__name__, route):
                args = args[1:]  # type: ignore[assignment]  # obj.charge(...): self stays here
            return run.schedule_activity(defn, args, kwargs, {})  # type: ignore[return-value]

        route.__durable_activity__ = defn  # type: ignore[attr-defined]
        return route

    return mark(fn) if fn is not None else mark


_CALL_OPTIONS = frozenset(
    {"retry", "timeout", "queue", "id", "heartbeat_timeout", "key", "priority", "parent_close"}
)
_CHILD_OPTIONS = frozenset({"id", "timeout", "queue", "parent_close"})


def call(fn: Callable[..., Any] | str, *args: Any, **options: Any) -> Awaitable[Any]:
    """Call an activity or child workflow with per-call options overriding the decorator's.

        receipt = await durable.call(charge, order_id, cents, retry=RetryPolicy(max_attempts=1))
        child = await durable.call(ship, order, id=f"ship-{order_id}", parent_close="abandon")
        size = await durable.call("resize_image", path, queue="media-node", result_type=Size)

    With a name instead of a function, it schedules a *remote* activity: one no Python
    worker needs to implement — a worker in another language polls its queue
    (``client.poll_tasks``, or the HTTP API) and completes it by token. It takes positional
    arguments only, and ``queue`` (default: the workflow's), ``retry``, ``timeout`` (per
    attempt, start-to-close), ``heartbeat_timeout``, ``key``, ``priority`` and
    ``result_type`` (the result is rebuilt as this type through `durable.hints`; without
    it, plain decoded data). It has
    the same task row, leases, retries and timeouts as any activity, and a Python worker
    that does implement the name on that queue may run it too.

    Options: for activities ``retry``, ``timeout`` (per attempt), ``heartbeat_timeout``,
    ``queue``, ``key`` (a str: the queue's ``key_concurrency`` holds tasks of one key,
    e.g. one tenant) and ``priority`` (an int, default 0: higher is claimed first; see
    `durable.limits`); for child workflows ``id``, ``timeout`` (the whole child run;
    ``None`` for none, whatever the decorator says), ``queue`` and ``parent_close``: what
    happens to the child if this workflow closes (completes, fails, is cancelled or
    terminated, continues as new) while the child runs — ``"cancel"`` (the default:
    cancellation is requested, the child may clean up), ``"terminate"`` (closed at once, no
    more of its code runs) or ``"abandon"`` (left running); see `durable.children`.
    Every other keyword is passed to the function (so a parameter named like an option
    is passed positionally). Only valid inside a workflow.
    """
    run = current_run()
    if run is None:
        raise NotInWorkflowError(
            "durable.call() schedules an activity or child workflow, so it only works "
            "inside a workflow. Outside one, call the function directly or use client.start."
        )
    if isinstance(fn, str):
        return _call_remote(run, fn, args, options)
    overrides = {k: options.pop(k) for k in list(options) if k in _CALL_OPTIONS}
    if getattr(fn, "__durable_workflow__", None) is not None:
        wdefn = workflow_definition(fn)
        if "key" in overrides or "priority" in overrides:
            raise TypeError(
                f"key and priority are options of activity calls (queue limits), not of "
                f"child workflow {wdefn.name!r}"
            )
        if "parent_close" in overrides:
            overrides["parent_close"] = check_parent_close(overrides["parent_close"])
        wrong = sorted(set(overrides) - _CHILD_OPTIONS)
        if wrong:
            # Ignored, not refused: runs recorded while they were silently ignored must
            # still replay. Said once per live call, not again on replay.
            if not run.is_replaying:
                logger.warning(
                    "durable.call: %s ignored for child workflow %r (a child takes id, "
                    "timeout, queue and parent_close)",
                    ", ".join(map(repr, wrong)),
                    wdefn.name,
                )
            for key in wrong:
                del overrides[key]
        return run.start_child(wdefn, args, options, overrides)
    defn = activity_definition(fn)
    for child_only in ("id", "parent_close"):
        if child_only in overrides:
            raise TypeError(
                f"{child_only!r} is an option for child workflows, not activity {defn.name!r}"
            )
    _check_limit_options(overrides)
    return run.schedule_activity(defn, args, options, overrides)


def check_parent_close(value: object) -> str:
    """``value`` if it is a parent-close policy (`PARENT_CLOSE`), else a clear
    `ValueError`."""
    if value not in PARENT_CLOSE:
        raise ValueError(
            f"parent_close must be one of {', '.join(map(repr, PARENT_CLOSE))} (what "
            f"happens to the child if the parent closes while it runs), got {value!r}"
        )
    return str(value)


def _check_limit_options(overrides: dict[str, Any]) -> None:
    if "key" in overrides:
        overrides["key"] = check_key(overrides["key"])
    if "priority" in overrides:
        overrides["priority"] = check_priority(overrides["priority"])


_REMOTE_OPTIONS = frozenset(
    {"retry", "timeout", "queue", "heartbeat_timeout", "result_type", "key", "priority"}
)


def _call_remote(
    run: Any, name: str, args: tuple[Any, ...], options: dict[str, Any]
) -> Awaitable[Any]:
    if not name:
        raise ValueError("durable.call() needs a non-empty activity name (or a function)")
    unknown = sorted(set(options) - _REMOTE_OPTIONS)
    if unknown:
        raise TypeError(
            f"durable.call({name!r}, ...) got {', '.join(map(repr, unknown))}: a remote "
            "activity takes positional arguments only (they travel as a JSON array), and "
            f"the options {', '.join(sorted(_REMOTE_OPTIONS))}"
        )
    queue = options.get("queue")
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise ValueError(f"queue must be a non-empty str, got {queue!r}")
    overrides = {k: v for k, v in options.items() if k != "result_type"}
    _check_limit_options(overrides)
    for key in ("timeout", "heartbeat_timeout"):
        if overrides.get(key) is not None:
            overrides[key] = _seconds(overrides[key], key)
    return cast(
        Awaitable[Any], run.schedule_remote(name, args, options.get("result_type"), overrides)
    )
