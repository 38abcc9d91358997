"""Queries: read-only functions of a run's state, registered by its code, asked by clients.

    @workflow
    async def cart(user: str) -> list[str]:
        items: list[str] = []
        durable.on_query("items", lambda: list(items))
        durable.on_query("has", lambda item: item in items)
        ...

    await handle.query("has", "apple")          # True or False, on the run's current state

A query is not journaled and never changes the run. How one travels (`durable.asking`,
`durable.answering`, `durable.querybox`): the client leaves it in the database and wakes
the workers; the worker that holds the run in memory answers from there; when none does
(the run sleeps on a long timer and was evicted, its worker restarted, the run closed), a
worker serving the workflow rebuilds the run by replaying its journal
(`durable.replayer.replay_journal`, what a worker's rebuild does) and answers from that.

This module is the part that runs inside the run: `on_query`, and `Queries`, the engine's
registry of query functions and the one place that calls them (`Queries.answer_query`).
While a query function runs, the run is marked as answering one: every durable operation
(an activity, a timer, ``publish``, ``set_tags``, ``continue_as_new``, ``random``, a new
task, waking the workflow's code) is refused, and the refusal is what the caller gets,
even if the function caught the exception.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import guard, payload
from .errors import NotInWorkflowError, RemoteError, SerializationError
from .loop import current_run

if TYPE_CHECKING:
    from .definition import WorkflowDefinition
    from .loop import WorkflowLoop

__all__ = ["QUERY_SAFE", "Answer", "Queries", "QueryRefused", "on_query"]

#: The ``durable.*`` helpers a query function may call: they only read the run.
QUERY_SAFE = frozenset({"now", "info"})


def on_query(name: str, fn: Callable[..., Any]) -> None:
    """Register ``fn`` as the query ``name`` of the running workflow.

        items: list[str] = []
        durable.on_query("items", lambda: list(items))
        durable.on_query("has", lambda item: item in items)   # queries take arguments

    ``await handle.query(name, *args)`` then returns ``fn(*args)``, computed on the run's
    current state by a worker (`durable.queries`). ``fn`` must be a plain function that
    only reads: it is not journaled, must not await or call durable operations (they are
    refused, and the caller gets `durable.QueryError`), and what it returns must encode as
    a payload. Registering a name again replaces its function. Registration is not
    journaled either, so a run rebuilt by replay registers its queries again as it goes.

    Raises:
        TypeError: ``name`` is not a non-empty ``str`` or ``fn`` is not callable.
        NotInWorkflowError: called outside a workflow.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"durable.on_query() needs a non-empty str name, got {name!r}: clients ask a "
            "query by name (handle.query(name, *args))."
        )
    if not callable(fn):
        raise TypeError(f"durable.on_query({name!r}, fn) needs a callable fn, got {fn!r}")
    run = current_run()
    if run is None:
        raise NotInWorkflowError(
            "durable.on_query() only works inside a workflow (code run by a worker from a "
            "@workflow function)."
        )
    run.register_query(name, fn)


class QueryRefused(Exception):
    """Raised inside a query function at a durable operation it may not call; the caller
    gets `durable.QueryError` with reason ``"refused"`` whatever the function does with it."""


@dataclass(frozen=True)
class Answer:
    """What answering a query came to: ``result`` (encoded) or ``error`` with ``reason``
    (see `durable.QueryError`). ``tainted``: the function touched the run's loop (woke its
    code), so the run in memory may no longer be what its journal says: drop it."""

    result: bytes | None = None
    error: RemoteError | None = None
    reason: str | None = None
    tainted: bool = False

    def encode(self) -> bytes:
        """The stored form of the answer (`durable.querybox`)."""
        return payload.envelope(
            {
                "result": self.result,
                "error": None if self.error is None else self.error.to_dict(),
                "reason": self.reason,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Answer:
        """The answer stored as ``data`` by `encode`."""
        doc = payload.decode(data, what="a query's answer")
        error = doc.get("error")
        return cls(
            result=doc.get("result"),
            error=RemoteError.from_dict(error) if isinstance(error, dict) else None,
            reason=doc.get("reason"),
        )


def refusal(reason: str, type_: str, message: str) -> Answer:
    """An answer that is an error of ``reason`` (see `durable.QueryError`)."""
    return Answer(error=RemoteError(type_, message), reason=reason)


class Queries:
    """The queries of one run: a part of `durable.engine.WorkflowRun`."""

    definition: WorkflowDefinition
    workflow_id: str
    _loop: WorkflowLoop
    #: The query being answered now (``None`` between queries): operations are refused.
    answering: str | None = None
    _refusal: str | None = None  # what the query being answered tried, if refused
    _query_fns: dict[str, Callable[..., Any]] | None = None

    def register_query(self, name: str, fn: Callable[..., Any]) -> None:
        """See `on_query`."""
        if self.answering is not None:
            raise self.refuse_in_query(f"durable.on_query({name!r}, ...)")
        if self._query_fns is None:
            self._query_fns = {}
        self._query_fns[name] = fn

    def query_names(self) -> list[str]:
        """The names of the queries registered so far, sorted."""
        return sorted(self._query_fns or ())

    def refuse_in_query(self, what: str) -> QueryRefused:
        """The error for ``what`` (an operation) attempted by the query being answered;
        recorded, so that the caller is told even if the function swallows it."""
        message = (
            f"Query {self.answering!r} of workflow {self.definition.name!r} "
            f"({self.workflow_id}) called {what}: a query only reads the run's state, so it "
            "cannot await, start activities, timers or child workflows, publish, set tags, "
            "continue as new, draw random values or wake the workflow's code. Return a value "
            "computed from the workflow's variables; change the run with a signal instead."
        )
        if self._refusal is None:
            self._refusal = message
        return QueryRefused(message)

    def answer_query(self, name: str, args: bytes) -> Answer:
        """Call query ``name`` with the encoded ``args`` on the run's current state.

        Never raises for what the query does: every outcome is an `Answer`.
        """
        fns = self._query_fns or {}
        fn = fns.get(name)
        label = f"query {name!r} of workflow {self.definition.name!r} ({self.workflow_id})"
        if fn is None:
            if fns:
                known = ", ".join(repr(n) for n in sorted(fns))
                has = f"it registers {known}"
            else:
                has = "it has registered none so far"
            return refusal(
                "unknown_query",
                "UnknownQuery",
                f"No {label}: {has}. Register one in the workflow with durable.on_query(name, fn).",
            )
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            return refusal(
                "refused",
                "QueryRefused",
                f"The function of {label} is async; a query cannot await anything. Register "
                "a plain function (def or lambda) that returns a value.",
            )
        try:
            call_args, kwargs = payload.decode_args(fn, args, what=f"arguments of {label}")
            inspect.signature(fn).bind(*call_args, **kwargs)
        except SerializationError as exc:
            return refusal("refused", "SerializationError", str(exc))
        except TypeError as exc:
            return refusal(
                "refused", "TypeError", f"The arguments given do not fit {label}: {exc}."
            )
        except ValueError:
            pass  # no signature to check (a builtin): the call says what is wrong
        return self._call_query(name, fn, call_args, kwargs, label)

    def _call_query(
        self,
        name: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        label: str,
    ) -> Answer:
        loop = self._loop
        ready = len(loop._ready)
        self.answering, self._refusal = name, None
        # As the run's own code runs: durable.* helpers find the run (and refuse what a
        # query may not do), and the guard refuses I/O, threads and the wall clock.
        previous = asyncio._get_running_loop()
        asyncio._set_running_loop(loop)
        outer = guard.enter(self.definition.name)
        error: BaseException | None = None
        value: Any = None
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:
            error = exc
        finally:
            guard.leave(outer)
            asyncio._set_running_loop(previous)
            self.answering = None
        tainted = len(loop._ready) != ready
        if tainted and self._refusal is None:
            self._refusal = f"Query {name!r} woke the workflow's code (a future, an event)"
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never started: nothing ran
            return refusal(
                "refused",
                "QueryRefused",
                f"The function of {label} returned an awaitable ({type(value).__name__}); a "
                "query cannot await anything (an activity or durable.sleep called in a query "
                "returns one). Return a value computed from the workflow's variables.",
            )
        if self._refusal is not None:
            return Answer(
                error=RemoteError("QueryRefused", self._refusal), reason="refused", tainted=tainted
            )
        if error is not None:
            record = payload.error_record(error)
            return Answer(error=record, reason="failed")
        try:
            return Answer(result=payload.encode(value, what=f"result of {label}"))
        except SerializationError as exc:
            return Answer(error=payload.error_record(exc), reason="failed")
