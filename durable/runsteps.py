"""A run's steps kept built while its journal grows: `RunSteps`.

A page or a stream that shows one run again and again (the console's run page, the HTTP
API's ``run:`` event stream) would otherwise read and walk the whole journal each time, a
second or more for a run of 100,000 steps. `RunSteps.read` reads only the entries written
since it last read (`durable.store.Store.read_journal_rows` after the last seq it folded)
into its `durable.steps.StepBuilder`, and `RunSteps.steps` gives them as
`durable.steps.build` would. It reads the last entry it folded again with them: when that
one is gone or changed (a repair took entries off the journal's end: `durable.repair`), it
builds anew from the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence

from .steps import Step, StepBuilder
from .store import RunRecord, Store, TaskRecord

__all__ = ["RunSteps"]


class RunSteps:
    """The steps of run ``run_id``, built from what its journal held at the last `read`.

    ``decode``: as `durable.steps.build_rows` says. ``keep``: journal kinds whose rows are
    kept as read (`kept`), for what a page says besides the steps (its repairs)."""

    def __init__(self, run_id: str, *, decode: bool = True, keep: Collection[str] = ()) -> None:
        self.run_id = run_id
        self.decode = decode
        self.keep = frozenset(keep)
        self.builder = StepBuilder(decode=decode, keep=keep)
        self._tail: tuple[int, str, float, bytes] | None = None  # the last row folded
        self._lock = asyncio.Lock()

    async def read(self, store: Store, run: RunRecord) -> None:
        """Fold in the entries ``run`` (this run, as just read) has beyond those folded."""
        async with self._lock:  # one read at a time: each folds from where the last ended
            last = self.builder.last
            rows = None
            if last and run.history_length >= last:
                rows = await store.read_journal_rows(self.run_id, after_seq=last - 1)
                if rows and tuple(rows[0]) == self._tail:
                    rows = rows[1:]
                else:
                    rows = None  # entries taken off the end: build anew
            if rows is None:
                if last:
                    self.builder = StepBuilder(decode=self.decode, keep=self.keep)
                rows = await store.read_journal_rows(self.run_id)
            if rows:
                seq, kind, time, data = rows[-1]
                self._tail = (seq, kind, time, data)
                self.builder.fold(rows)  # keeps the rows of `keep` kinds as it reads them

    @property
    def kept(self) -> list[tuple[int, str, float, bytes]]:
        """The rows of the ``keep`` kinds read so far, in journal order."""
        return self.builder.kept

    def steps(
        self,
        run: RunRecord,
        tasks: Sequence[TaskRecord] = (),
        timers: Mapping[int, float] | None = None,
    ) -> list[Step]:
        """The steps as of the last `read`, with the run's tasks and timers (see
        `durable.steps.StepBuilder.finish`)."""
        return self.builder.finish(run, tasks, timers)
