"""Sagas: undo the finished steps of a block that failed, newest first, durably.

    async with durable.saga() as saga:
        receipt = await charge(order)
        saga.compensate(refund, receipt)        # registered, not run
        hotel = await reserve_hotel(order)
        saga.compensate(cancel_hotel, hotel)
        await reserve_flight(order)             # raises: cancel_hotel, then refund, run

When the block raises an exception, or the workflow is cancelled while in it, the
registered compensations run in reverse order of registration, each as an ordinary
activity with its own retry policy, and then the error propagates. A block that ends
normally drops its compensations.

Durability and replay: registering is not journaled; it is plain code, and replay runs the
same code, so it registers the same compensations. Each compensation that runs is an
``activity_scheduled`` entry marked ``compensation`` (`durable.journal`), shown as a step
of kind ``compensation`` (`durable.steps`) by ``handle.steps()``, ``durable show`` and the
console. A worker that dies while compensating is replaced by one that replays the
journal up to there and goes on with the compensations not yet done.

Cancellation: compensations run shielded. A cancellation that arrives while they run (or
the one that started them) does not stop them; once they are done, the cancellation
propagates and the run ends cancelled. Only a run that is closed from outside (its
timeout, ``terminate``) or evicted from a worker's memory skips them: no code of a closed
run runs, and an evicted one is rebuilt by replay and compensates then.

A compensation that fails after its retries does not stop the others: every registered
compensation is tried, then `durable.CompensationError` is raised from the original error,
carrying it (``.error``) and the failures (``.failures``), so a failed undo is never
silent. A run cancelled while in the block whose compensation fails ends failed with it,
not cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

from . import payload
from .definition import ActivityDefinition, activity_definition
from .engine import WorkflowRun
from .errors import ActivityError, CompensationError, NonDeterminismError, NotInWorkflowError
from .loop import current_run

__all__ = ["Saga", "saga"]


def saga() -> Saga:
    """A saga block: register compensations as steps finish; they run if the block fails.

        async with durable.saga() as saga:
            receipt = await charge(order)
            saga.compensate(refund, receipt)

    See `durable.sagas` for what happens on failure, cancellation and replay.

    Raises:
        NotInWorkflowError: outside a workflow.
    """
    run = current_run()
    if run is None:
        raise NotInWorkflowError(
            "durable.saga() only works inside a workflow (code run by a worker from a "
            "@workflow function): its compensations are durable activities."
        )
    return Saga(run)


class Saga:
    """What ``async with durable.saga() as saga`` gives: `compensate` registers an undo.

    After the block, `compensated` names the compensations that ran and succeeded (in the
    order they ran) and `failures` holds the `ActivityError` of each that failed.
    """

    def __init__(self, run: WorkflowRun) -> None:
        self._run = run
        self._steps: list[tuple[ActivityDefinition, tuple[Any, ...], dict[str, Any]]] = []
        self._entered = False
        self._cancelled = False  # a cancellation arrived while compensating
        self.compensated: list[str] = []
        self.failures: list[ActivityError] = []

    def compensate(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Register activity ``fn(*args, **kwargs)`` to undo the step that just finished.

        Nothing runs now. If the block fails, the compensations registered so far run,
        newest first, each as a durable activity with ``fn``'s retry policy and timeouts.
        The arguments are checked for serializability here and encoded when it runs.

        Raises:
            TypeError: ``fn`` is not an ``@activity`` function, or the saga's block is over.
            SerializationError: an argument cannot be a payload.
        """
        try:
            defn = activity_definition(fn)
        except TypeError:
            raise TypeError(
                f"saga.compensate() takes an @activity function and its arguments, got "
                f"{getattr(fn, '__qualname__', fn)!r}: compensations run as durable "
                "activities (decorate it with @activity and give it to the worker)."
            ) from None
        if not self._entered:
            raise TypeError(
                "saga.compensate() works inside 'async with durable.saga() as saga:' only: "
                "the block is what a failure undoes."
            )
        if not self._run.is_replaying:
            payload.encode_args(
                defn.fn, args, kwargs, what=f"arguments of compensation {defn.name!r}"
            )
        self._steps.append((defn, args, dict(kwargs)))

    async def __aenter__(self) -> Saga:
        if self._entered:
            raise RuntimeError("A durable.saga() block runs once; call durable.saga() again.")
        self._entered = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        steps, self._steps = self._steps, []
        self._entered = False  # no registering after the block
        if exc is None or not steps or not self._compensates(exc):
            return False
        await self._compensate(steps)
        if self.failures:
            raise CompensationError(self._message(exc, len(steps)), exc, self.failures) from exc
        if self._cancelled and not isinstance(exc, asyncio.CancelledError):
            raise asyncio.CancelledError("workflow cancelled while compensating") from exc
        return False  # the original error propagates

    def _compensates(self, exc: BaseException) -> bool:
        """Whether ``exc`` ending the block calls for compensation: an error of the code or
        a cancellation of the workflow; not the unwinding of a run that is closed or
        evicted, a `continue_as_new`, or a replay that no longer matches its journal."""
        if self._run._evicting or self._run.closed:
            return False
        if isinstance(exc, NonDeterminismError):
            return False
        return isinstance(exc, Exception | asyncio.CancelledError)

    async def _compensate(
        self, steps: list[tuple[ActivityDefinition, tuple[Any, ...], dict[str, Any]]]
    ) -> None:
        for defn, args, kwargs in reversed(steps):
            if self._run._evicting:
                raise asyncio.CancelledError("evicted while compensating")
            fut = self._run.schedule_activity(defn, args, kwargs, {"compensation": True})
            try:
                await self._shielded(fut)
            except ActivityError as err:
                self.failures.append(err)
            else:
                self.compensated.append(defn.name)

    async def _shielded(self, fut: asyncio.Future[Any]) -> Any:
        """``fut``'s result; a cancellation of the workflow meanwhile is noted, not obeyed."""
        while True:
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                if self._run._evicting or fut.cancelled():
                    raise
                self._cancelled = True

    def _message(self, exc: BaseException, total: int) -> str:
        what = (
            "was cancelled"
            if isinstance(exc, asyncio.CancelledError)
            else f"failed with {type(exc).__name__}: {exc}"
        )
        failed = "; ".join(str(f) for f in self.failures)
        return (
            f"A saga in workflow {self._run.definition.name!r} ({self._run.workflow_id}) {what}, "
            f"and {len(self.failures)} of its {total} compensation(s) failed too (the others "
            f"ran): {failed}. Undo those steps by hand, or fix the compensation and redrive "
            "the run."
        )
