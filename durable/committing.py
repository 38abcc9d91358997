"""Group commit: the steps of every run a worker steps, written in few transactions.

A step hands its `durable.store.StepCommit` to `GroupCommit._commit` and waits; the
*committer* task writes all the steps pending at that moment (at most `COMMIT_BATCH`) in
one `Store.commit_steps` transaction and tells each whether it was accepted. While that
transaction runs, further steps gather for the next one, so under load each transaction
(one fsync) carries many steps. A batch that fails on one step's data is split down to that
step (see `GroupCommit._commit_batch`); its neighbours go through at once.

`GroupCommit` is a part of `durable.worker.Worker` (through `durable.stepping.RunStepping`),
kept apart for size: it uses the worker's store and clock.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .clock import Clock
from .errors import StepDataError
from .store import StepCommit, Store

__all__ = ["COMMIT_BATCH", "GroupCommit"]

logger = logging.getLogger("durable.worker")

COMMIT_BATCH = 500  # most steps written in one group-commit transaction


class GroupCommit:
    """The worker's group commit of steps (see the module docstring)."""

    clock: Clock
    _commits: list[tuple[StepCommit, asyncio.Future[bool]]]
    _commit_wanted: asyncio.Event
    _busy: int

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

    async def _commit(self, step: StepCommit) -> bool:
        return await self._submit(step)

    def _submit(self, step: StepCommit) -> asyncio.Future[bool]:
        """Queue ``step`` for the committer; the future says whether it was accepted (a
        step awaits it directly: no coroutine of its own per step)."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._commits.append((step, fut))
        self._commit_wanted.set()
        return fut

    async def _committer(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            while self._commits:
                batch, self._commits = self._commits[:COMMIT_BATCH], self._commits[COMMIT_BATCH:]
                self._busy += 1
                try:
                    await self._commit_batch(batch)
                finally:
                    self._busy -= 1

    async def _commit_batch(self, batch: list[tuple[StepCommit, asyncio.Future[bool]]]) -> None:
        """Commit ``batch`` in one transaction and settle each step's future.

        A batch that fails on one step's data (`StepDataError`) is split in halves and each
        committed apart, down to the step at fault, whose future gets the error (its run is
        parked): the healthy steps beside it go through at once instead of waiting for their
        leases to expire. Any other failure (the database out of reach) fails them all.
        """
        try:
            results = await self.store.commit_steps([step for step, _ in batch], self.clock.now())
        except StepDataError as exc:
            if len(batch) == 1:
                logger.error("Step of run %s cannot be committed: %s", batch[0][0].run_id, exc)
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            half = len(batch) // 2
            await self._commit_batch(batch[:half])
            await self._commit_batch(batch[half:])
        except Exception as exc:
            logger.exception("Group commit of %d steps failed", len(batch))
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for (_, fut), ok in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(ok)
