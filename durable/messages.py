"""What workflow code calls to handle messages: signal and update handlers, conditions.

    @workflow
    async def cart(user: str) -> list[str]:
        items: list[str] = []

        def check(item: str) -> None:           # validator: a raise rejects the update,
            if not item:                        # and nothing is journaled
                raise ValueError("empty item")

        async def add(item: str) -> int:        # the update: journaled, may await
            items.append(item)
            return len(items)

        durable.on_update("add", add, validator=check)
        durable.on_signal("clear", lambda: items.clear())
        await durable.wait_condition(lambda: len(items) >= 3, timeout=timedelta(days=1))
        await durable.all_handlers_finished()
        return items

The engine side is `durable.handlers`; the caller's side of an update is `durable.updates`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .context import _run  # the one way in: refuses outside a workflow and in a query

__all__ = ["all_handlers_finished", "on_signal", "on_update", "wait_condition"]


def _check(what: str, name: object, handler: object) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError(f"durable.{what}() needs a non-empty str name, got {name!r}")
    if not callable(handler):
        raise TypeError(
            f"durable.{what}({name!r}, handler): the handler must be a function (sync or "
            f"async), got {handler!r}"
        )


def on_signal(name: str, handler: Callable[..., Any]) -> None:
    """Handle every signal called ``name`` with ``handler`` (sync or async).

        durable.on_signal("clear", lambda: items.clear())        # a signal without a value
        durable.on_signal("add", lambda item: items.append(item))

    The handler gets the signal's value; a handler that takes no argument is called
    without one when the signal carries none (``handle.signal("clear")``). Each signal runs
    the handler in a task of its own, in arrival order; signals of that name that arrived
    before this call and that no ``wait_signal`` took are handed to it now, in order. A
    name with a handler no longer fills the ``wait_signal`` mailbox. A handler that raises
    fails the run, as the workflow function raising would. Registering again replaces the
    handler.

    Raises:
        TypeError: ``name`` is not a non-empty ``str`` or ``handler`` is not callable.
    """
    _check("on_signal", name, handler)
    _run("on_signal").on_signal(name, handler)


def on_update(
    name: str, handler: Callable[..., Any], validator: Callable[..., Any] | None = None
) -> None:
    """Handle updates called ``name``: ``handle.update(name, *args)`` returns what
    ``handler(*args)`` returns (or raises `UpdateFailed` with what it raised).

    ``validator`` (sync, same arguments) runs first, against the live state, before
    anything is journaled: raising rejects the update (the caller gets `UpdateRejected`)
    and leaves no trace in the journal. The handler (sync or async) is journaled, may await
    activities, timers and children, and replays like the workflow function; validators
    are not run on replay, so they must only read state. An update whose name has no
    handler when the worker takes it is rejected (`UpdateRejected` naming the registered
    ones): register handlers at the top of the workflow, before its first ``await``.
    Registering again replaces the handler. Use ``await durable.all_handlers_finished()``
    before returning so that running handlers end first.

    Raises:
        TypeError: ``name`` is not a non-empty ``str``, ``handler`` or ``validator`` is
            not callable, or ``validator`` is async.
    """
    _check("on_update", name, handler)
    if validator is not None and not callable(validator):
        raise TypeError(f"durable.on_update({name!r}, ...): validator must be a function")
    if inspect.iscoroutinefunction(validator):
        raise TypeError(
            f"durable.on_update({name!r}, ...): the validator must be a plain (sync) function: "
            "it runs before anything is journaled, so it cannot await; raise to reject."
        )
    _run("on_update").on_update(name, handler, validator)


async def wait_condition(fn: Callable[[], Any], timeout: float | timedelta | None = None) -> None:
    """Wait until ``fn()`` is true: checked now, then each time the workflow's code goes
    quiet after an input (a signal, an update, an activity's result, ...).

        await durable.wait_condition(lambda: approved or rejected, timeout=timedelta(days=3))

    ``fn`` must only read the workflow's state. Raises `TimeoutError` after ``timeout``
    (seconds or a timedelta; a durable timer), as ``wait_signal`` does, and what ``fn``
    raises if it raises.
    """
    if not callable(fn):
        raise TypeError(f"durable.wait_condition() needs a function, got {fn!r}")
    run = _run("wait_condition")
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    await run.wait_condition(fn, None if seconds is None else float(seconds))


async def all_handlers_finished() -> None:
    """Wait until no signal or update handler is running (call it before returning, so
    that updates in flight answer their callers rather than end with the run). Not from
    inside a handler: it would wait for itself."""
    run = _run("all_handlers_finished")
    await run.wait_condition(lambda: not run.handlers_running(), None)
