"""What a run waits for from outside: signals, and external completions by token.

A signal is sent to a workflow by name (``handle.signal``) and kept in a FIFO mailbox per
name until the code takes it (`Waits.wait_signal`). An external wait (`Waits.external`, what
``durable.external(name)`` calls) is one step the code starts and gets an `External` for:
its ``token`` names this run and the step's seq, so it is the same on replay, and whoever
holds it completes the wait once, with ``client.complete(token, value)`` or
``client.fail(token, error)``. The answer may come before the code waits for it; it is
kept. A wait that times out (``wait(timeout=...)``, a durable timer) does not end the
external step: waiting again still gets the completion when it comes.

`Waits` is a part of `durable.engine.WorkflowRun`, kept apart for size.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import journal, payload
from .errors import ExternalError, SerializationError
from .tokens import TaskToken

if TYPE_CHECKING:
    from .definition import WorkflowDefinition
    from .loop import WorkflowLoop

__all__ = ["External", "Waits"]

logger = logging.getLogger("durable.engine")

T = TypeVar("T")


class External(Generic[T]):
    """An external wait of a workflow: hand out `token`, then ``await wait()``.

        ext = durable.external("payment-callback", result_type=Receipt)
        await send_payment_link(order, ext.token)        # an activity hands the token out
        receipt = await ext.wait(timeout=timedelta(days=2))

    Completed from anywhere with ``client.complete(ext.token, value)`` (or failed with
    ``client.fail(ext.token, error)``), once.
    """

    def __init__(self, waits: Waits, name: str, seq: int, token: str, result_type: Any) -> None:
        self.name = name
        self.seq = seq
        self._token = token
        self._waits = waits
        self._result_type = result_type
        self._outcome: tuple[bool, Any] | None = None  # (ok, value or ExternalError)
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    def __repr__(self) -> str:
        return f"<External {self.name!r} step {self.seq}>"

    @property
    def token(self) -> str:
        """The token that completes this wait: deterministic (the same on replay) and
        durable (valid while the run is open)."""
        return self._token

    async def wait(self, timeout: float | Any = None) -> T:
        """The value the wait was completed with (rebuilt as ``result_type`` when given).

        Raises `ExternalError` when it was failed (``client.fail``), and `TimeoutError` after
        ``timeout`` (seconds or a timedelta; a durable timer) if no completion came: the
        wait goes on, and waiting again still gets it.
        """
        if self._outcome is not None:
            return self._result()
        fut: asyncio.Future[Any] = self._waits._loop.create_future()
        self._waiters.append(fut)
        try:
            if timeout is None:
                await fut
            else:
                seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
                await asyncio.wait_for(fut, float(seconds))
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)
        return self._result()

    def _result(self) -> T:
        assert self._outcome is not None
        ok, value = self._outcome
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def _resolve(self, rec: journal.ExternalCompleted | journal.ExternalFailed, where: str) -> None:
        if self._outcome is not None:
            return  # one completion per wait; the store admits no second
        if isinstance(rec, journal.ExternalCompleted):
            what = f"completion of external wait {self.name!r} ({where})"
            try:
                value = payload.decode(rec.result or b"\xc0", self._result_type, what=what)
                self._outcome = (True, value)
            except SerializationError as err:
                self._outcome = (False, err)
        else:
            self._outcome = (
                False,
                ExternalError(
                    f"External wait {self.name!r} ({where}) was failed: {rec.error}",
                    rec.error,
                    self.name,
                ),
            )
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)


class Waits:
    """Signals and external waits of one `durable.engine.WorkflowRun`."""

    workflow_id: str
    run_id: str
    definition: WorkflowDefinition
    _loop: WorkflowLoop
    _now: float

    if TYPE_CHECKING:

        def _emit(self, record: journal.Record) -> int: ...

        def _annotate(self, record: journal.Record) -> None: ...

    def __init__(self) -> None:
        self._signals: dict[str, collections.deque[Any]] = collections.defaultdict(
            collections.deque
        )
        self._signal_waiters: dict[str, collections.deque[asyncio.Future[Any]]] = (
            collections.defaultdict(collections.deque)
        )
        self._externals: dict[int, External[Any]] = {}

    # -- signals ------------------------------------------------------------------------

    def _receive_signal(self, rec: journal.SignalReceived) -> None:
        name = rec.name
        try:
            value = payload.decode(rec.value, what=f"signal {name!r}")
        except SerializationError as err:
            logger.error("Dropping undecodable signal %r for %s: %s", name, self.workflow_id, err)
            return
        waiters = self._signal_waiters[name]
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(value)
                return
        self._signals[name].append(value)

    async def wait_signal(self, name: str, timeout: float | None) -> Any:
        """The next signal called ``name`` (FIFO), waiting up to ``timeout`` seconds."""
        buffered = self._signals.get(name)
        if buffered:
            return buffered.popleft()
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._signal_waiters[name].append(fut)
        due = None if timeout is None else self._now + timeout
        self._annotate(journal.SignalWaitStarted(name, due))
        if timeout is None:
            return await fut
        return await asyncio.wait_for(fut, timeout)

    # -- external waits -----------------------------------------------------------------

    def external(self, name: str, result_type: Any = None) -> External[Any]:
        """Issue ``external_started``; the `External` names it by token."""
        seq = self._emit(journal.ExternalStarted(name))
        token = TaskToken("x", self.workflow_id, self.run_id, seq).encode()
        ext: External[Any] = External(self, name, seq, token, result_type)
        self._externals[seq] = ext
        return ext

    def _resolve_external(self, rec: journal.ExternalCompleted | journal.ExternalFailed) -> None:
        ext = self._externals.get(rec.ref)
        if ext is None:
            return
        where = f"step {rec.ref} of workflow {self.workflow_id!r}"
        ext._resolve(rec, where)
