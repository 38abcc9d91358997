"""What a run calls: activities (Python ones, or remote ones by name) and child workflows.

Calling issues a command (``activity_scheduled``, ``child_started``) and returns a future
that the answer (``activity_completed``/``activity_failed``, ``child_completed``/
``child_failed``) resolves; a future the code gives up on (cancelled) becomes an effect
that cancels the task or the child. A remote activity (``durable.call("name", ...)``) is
scheduled like any other, by name, with its arguments as given and its result decoded
plainly or rebuilt as the ``result_type`` the call names (`durable.hints`).

`Calls` is a part of `durable.engine.WorkflowRun`, kept apart for size.
"""

from __future__ import annotations

import asyncio
import functools
import math
import random as random_module
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import frozen, journal, payload
from .definition import ActivityDefinition, RetryPolicy, WorkflowDefinition
from .errors import ActivityError, ChildWorkflowError, SerializationError

if TYPE_CHECKING:
    from .engine import Effects
    from .loop import WorkflowLoop

__all__ = ["Calls", "as_seconds"]

_OnDone = Callable[[asyncio.Future[Any]], None]


@dataclass(slots=True)
class _Child:
    """A child workflow in flight: the seq of its ``child_started``, the future its answer
    resolves, its definition, its workflow id and its recorded parent-close policy."""

    seq: int
    future: asyncio.Future[Any]
    defn: WorkflowDefinition
    workflow_id: str
    parent_close: str


class Calls:
    """Activities and child workflows of one `durable.engine.WorkflowRun`."""

    workflow_id: str
    run_id: str
    queue: str
    is_replaying: bool
    history_length: int
    random: random_module.Random
    _loop: WorkflowLoop
    _effects: Effects
    _evicting: bool
    _expected: list[tuple[str, dict[str, Any]]]
    _expected_pos: int
    # Activities in flight by seq: (future, name, how to decode its result, the future's
    # done callback, which notices a cancellation).
    _activities: dict[int, tuple[asyncio.Future[Any], str, Callable[[bytes], Any], _OnDone]]
    # Children in flight by their run id. By run id, not workflow id: one parent may start
    # two children of one id (the second refused while the first runs), and each answer
    # must reach its own call.
    _children: dict[str, _Child]

    if TYPE_CHECKING:

        def _emit(self, record: journal.Record) -> int: ...

    def _resolve_activity(self, rec: journal.ActivityCompleted | journal.ActivityFailed) -> None:
        ref = rec.ref
        entry = self._activities.pop(ref, None)
        if entry is None:
            return
        fut, name, decode, on_done = entry
        if fut.done():
            return
        # Resolved here, so never cancelled: its callback would be a loop callback for nothing.
        fut.remove_done_callback(on_done)
        if isinstance(rec, journal.ActivityFailed):
            fut.set_exception(
                ActivityError(
                    f"Activity {name!r} (step {ref} of workflow {self.workflow_id!r}) "
                    f"failed after {rec.attempts} attempt(s): {rec.error}",
                    rec.error,
                    rec.attempts,
                )
            )
            return
        try:
            fut.set_result(decode(rec.result or b"\xc0"))
        except SerializationError as err:
            fut.set_exception(err)

    def _resolve_child(self, rec: journal.ChildCompleted | journal.ChildFailed) -> None:
        child_id = rec.workflow_id
        key = rec.run_id if rec.run_id in self._children else None
        if key is None:
            # From a run the parent did not start: the child's successor after it continued
            # as new (or an answer recorded before answers named their run). The oldest call
            # of that id still waiting is the one it answers.
            key = next((k for k, e in self._children.items() if e.workflow_id == child_id), None)
        entry = self._children.pop(key, None) if key is not None else None
        if entry is None:
            return
        seq, fut, defn = entry.seq, entry.future, entry.defn
        if fut.done():
            return
        if isinstance(rec, journal.ChildCompleted):
            try:
                fut.set_result(payload.decode_result(defn.fn, rec.result or b"\xc0"))
            except SerializationError as err:
                fut.set_exception(err)
            return
        error = rec.error
        what = "could not start" if rec.status == "already_exists" else rec.status
        fut.set_exception(
            ChildWorkflowError(
                f"Child workflow {defn.name!r} ({child_id}, started at step {seq} of "
                f"{self.workflow_id!r}) {what}: {error}",
                error,
                child_id,
            )
        )

    def schedule_activity(
        self,
        defn: ActivityDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        overrides: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """Issue ``activity_scheduled``; the future resolves with its journaled result."""
        # On replay the command is only compared (by name), never written: the arguments
        # were encoded when it was recorded, so they are not encoded again.
        encoded = (
            b""
            if self.is_replaying
            else payload.encode_args(
                defn.fn, args, kwargs, what=f"arguments of activity {defn.name!r}"
            )
        )
        return self._schedule(
            defn.name,
            # An activity without a queue of its own runs on its caller's. A recorded
            # command keeps the queue it was recorded with (replay compares names only).
            overrides.get("queue") or defn.queue or self.queue,
            encoded,
            overrides.get("retry", defn.retry),
            overrides.get("timeout", defn.timeout),
            overrides.get("heartbeat_timeout", defn.heartbeat_timeout),
            defn.schedule_to_close,
            functools.partial(payload.decode_result, defn.fn),
            compensation=bool(overrides.get("compensation", False)),
            key=overrides.get("key"),
            priority=overrides.get("priority", 0),
        )

    def schedule_remote(
        self, name: str, args: tuple[Any, ...], result_type: Any, overrides: dict[str, Any]
    ) -> asyncio.Future[Any]:
        """Issue ``activity_scheduled`` for activity ``name``, implemented elsewhere (a
        worker in another language polling its queue): arguments as given, the result
        decoded plainly or rebuilt as ``result_type``."""
        what = f"arguments of remote activity {name!r}"
        encoded = (
            b""
            if self.is_replaying
            else payload.encode({"args": list(args), "kwargs": {}}, what=what)
        )
        result_what = f"result of remote activity {name!r}"
        return self._schedule(
            name,
            overrides.get("queue") or self.queue,
            encoded,
            overrides.get("retry", RetryPolicy()),
            overrides.get("timeout"),
            overrides.get("heartbeat_timeout"),
            None,
            lambda data: payload.decode(data, result_type, what=result_what, root="result"),
            key=overrides.get("key"),
            priority=overrides.get("priority", 0),
        )

    def _schedule(
        self,
        name: str,
        queue: str,
        encoded: bytes,
        retry: Any,
        timeout: Any,
        heartbeat_timeout: Any,
        schedule_to_close: float | None,
        decode: Callable[[bytes], Any],
        compensation: bool = False,
        key: str | None = None,
        priority: int = 0,
    ) -> asyncio.Future[Any]:
        if not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be a RetryPolicy, got {retry!r}")
        # `frozen.build`: every field given, without 12 calls of `object.__setattr__`.
        scheduled = {
            "name": name,
            "queue": queue,
            "args": encoded,
            "retry": retry.to_dict(),
            "timeout": as_seconds(timeout),
            "heartbeat_timeout": as_seconds(heartbeat_timeout),
            "schedule_to_close": schedule_to_close,
            "branch": "0",  # the data's branch and group are `durable.branches`' to add
            "group": None,
            "compensation": compensation,
            "key": key,
            "priority": priority,
        }
        seq = self._emit(frozen.build(journal.ActivityScheduled, scheduled))
        fut: asyncio.Future[Any] = self._loop.create_future()
        if self._evicting:
            return fut
        on_done = functools.partial(self._activity_future_done, seq)
        self._activities[seq] = (fut, name, decode, on_done)
        fut.add_done_callback(on_done)
        return fut

    def _activity_future_done(self, seq: int, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() and seq in self._activities and not self._evicting:
            del self._activities[seq]
            self._effects.cancelled_activities.append(seq)

    def start_child(
        self,
        defn: WorkflowDefinition,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        overrides: dict[str, Any],
    ) -> asyncio.Future[Any]:
        """Issue ``child_started``; the future resolves with the child's result.

        ``overrides["parent_close"]`` (checked by `durable.call`) is recorded with it; on
        replay the recorded policy holds, whatever the code says now (`durable.children`).
        """
        encoded = (
            b""
            if self.is_replaying
            else payload.encode_args(
                defn.fn, args, kwargs, what=f"arguments of child workflow {defn.name!r}"
            )
        )
        child_id = overrides.get("id") or self._default_child_id(defn.name)
        run_id = str(uuid.UUID(int=self.random.getrandbits(128), version=4))
        # An explicit timeout=None means none at all: recorded as infinity, since a run
        # without a recorded timeout falls back to the decorator's.
        timeout = (
            math.inf
            if "timeout" in overrides and overrides["timeout"] is None
            else as_seconds(overrides.get("timeout", defn.timeout))
        )
        policy = overrides.get("parent_close", journal.PARENT_CLOSE[0])
        if self.is_replaying and self._expected_pos < len(self._expected):
            kind, recorded = self._expected[self._expected_pos]
            if kind == "child_started":
                policy = recorded.get("parent_close", journal.PARENT_CLOSE[0])
        seq = self._emit(
            journal.ChildStarted(
                name=defn.name,
                id=child_id,
                run_id=run_id,
                queue=overrides.get("queue", defn.queue),
                args=encoded,
                timeout=timeout,
                parent_close=policy,
            )
        )
        fut: asyncio.Future[Any] = self._loop.create_future()
        if self._evicting:
            return fut
        self._children[run_id] = _Child(seq, fut, defn, child_id, policy)
        fut.add_done_callback(lambda f: self._child_future_done(run_id, f))
        return fut

    def _default_child_id(self, name: str) -> str:
        """A child id unique to this run: its workflow id, a prefix of its run id (so a
        successor or a restarted run never reuses a predecessor's child ids), the child's
        name and the seq of the command starting it."""
        seq = self.history_length + 1
        if self.is_replaying and self._expected_pos < len(self._expected):
            kind, recorded = self._expected[self._expected_pos]
            if kind == "child_started" and recorded.get("name") == name:
                # Runs recorded before ids carried the run keep the id they started with.
                return str(recorded.get("id"))
        return f"{self.workflow_id}/{self.run_id[:8]}/{name}-{seq}"

    def _child_future_done(self, run_id: str, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled() and run_id in self._children and not self._evicting:
            child_id = self._children.pop(run_id).workflow_id
            self._effects.cancelled_children.append((child_id, run_id))


def as_seconds(value: Any) -> float | None:
    """Seconds from a timedelta or a number; `None` stays `None`."""
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)
