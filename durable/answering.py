"""The worker's side of queries: who answers one, and how (`durable.queries`).

The *query loop* of a worker that serves workflows waits on `TOPIC_QUERIES` (a wake-up,
not a poll: nothing is read while no query comes) and reads the queries left for the
workflows it serves (`durable.querybox`). For each it decides:

- **from memory**, at once, when it holds the run's engine between steps and that engine
  is as long as the run's journal (so it is the run's current state: the lease holder
  always, or a worker that still caches a run nobody leases);
- **later**, when another live worker holds the run's lease (it has it in memory and will
  answer), or when this worker's own step of the run is under way: the request is looked
  at again after a moment, and once `HOLDER_GRACE` seconds have passed without an answer
  it is answered by replay;
- **once started**, for a run no worker has started yet (a query right after
  ``client.start``): looked at again until its first step is committed;
- **by replay** otherwise (nobody holds the run: it sleeps, was evicted, its worker
  restarted, or it is closed): the worker takes the request, so that one worker replays,
  rebuilds the run from its journal exactly as a step's rebuild does
  (`durable.replayer.replay_journal`), answers, and drops the rebuilt run.

Answering never writes to the run. A query function that woke the run's code (completed
one of its futures) leaves the engine in memory unlike its journal: that engine is dropped,
and the next step rebuilds the run by replay.

`QueryAnswering` is a part of `durable.worker.Worker`, kept apart for size.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any

from . import payload
from .errors import NonDeterminismError, RemoteError
from .queries import Answer
from .querybox import QueryRequest
from .replayer import engine_for, replay_journal
from .topics import TOPIC_QUERIES

if TYPE_CHECKING:
    import asyncio

    from .clock import Clock
    from .definition import WorkflowDefinition
    from .stepping import Driver
    from .store import Store

__all__ = ["HOLDER_GRACE", "QUERY_BATCH", "QUERY_IDLE_WAIT", "QueryAnswering"]

logger = logging.getLogger("durable.worker")

HOLDER_GRACE = 1.0  # seconds the holder of a run's lease gets to answer before a replay
QUERY_BATCH = 100  # queries read per look
QUERY_IDLE_WAIT = 60.0  # seconds between looks while no query comes (wake-ups end it sooner)
QUERY_RECHECK = 0.005  # seconds before a deferred query is looked at again (doubling)


class QueryAnswering:
    """The query loop of a worker (see the module docstring)."""

    worker_id: str
    clock: Clock
    workflows: dict[str, WorkflowDefinition]
    _drivers: collections.OrderedDict[str, Driver]
    _stopping: asyncio.Event

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

        def _spawn(self, coro: Any) -> None: ...

    async def _query_loop(self) -> None:
        names = list(self.workflows)
        deferred: dict[int, float] = {}  # query id -> when first deferred (monotonic)
        recheck = QUERY_RECHECK
        while not self._stopping.is_set():
            mark = self.store.watermark()
            requests = await self.store.pending_queries(names, QUERY_BATCH)
            waiting: dict[int, float] = {}
            for request in requests:
                how = self._how_to_answer(request)
                if how == "memory":
                    await self._answer_from_memory(request)
                    continue
                first = deferred.get(request.id, time.monotonic())
                if how == "unstarted" or (
                    how == "later" and time.monotonic() - first < HOLDER_GRACE
                ):
                    waiting[request.id] = first
                    continue
                if await self.store.take_query(request.id, self.worker_id):
                    self._spawn(self._answer_by_replay(request))
            deferred = waiting
            if waiting:
                await self.store.wait([TOPIC_QUERIES], recheck, since=mark)
                recheck = min(recheck * 2, HOLDER_GRACE / 4)
            else:
                recheck = QUERY_RECHECK
                await self.store.wait([TOPIC_QUERIES], QUERY_IDLE_WAIT, since=mark)

    def _how_to_answer(self, request: QueryRequest) -> str:
        """``"memory"``, ``"later"``, ``"replay"``, or ``"unstarted"`` (a run whose first
        step has not run yet: asked again until it has, or the client gives up)."""
        if request.history_length == 0 and request.status == "pending":
            return "unstarted"
        driver = self._drivers.get(request.run_id)
        if driver is not None:
            if driver.stepping:
                return "later"  # its engine is between an input and its commit
            engine = driver.engine
            if engine is not None and engine.history_length == request.history_length:
                return "memory"
            if driver.held:
                return "later"  # rebuilt by its next step
        leased = (
            request.lease_owner is not None
            and request.lease_owner != self.worker_id
            and (request.lease_expires_at or 0.0) > self.clock.now()
        )
        return "later" if leased else "replay"

    async def _answer_from_memory(self, request: QueryRequest) -> None:
        driver = self._drivers[request.run_id]
        engine = driver.engine
        assert engine is not None
        answer = engine.answer_query(request.query, request.args)
        if answer.tainted and not driver.stepping:
            # The query woke the run's code: what is in memory is no longer its journal.
            engine.evict()
            driver.engine = None
        await self._store_answer(request, answer)

    async def _answer_by_replay(self, request: QueryRequest) -> None:
        try:
            answer = await self._replayed_answer(request)
        except Exception as exc:
            logger.exception("Worker %s could not answer query %s", self.worker_id, request.id)
            answer = Answer(
                error=RemoteError(
                    "QueryFailed",
                    f"Worker {self.worker_id} could not answer query {request.query!r} of "
                    f"{request.workflow_id!r}: {exc!r}; see that worker's log.",
                ),
                reason="failed",
            )
        try:
            await self._store_answer(request, answer)
        except Exception:
            # A task of the worker's group: it must not end the worker. The client waits
            # until its timeout and says no worker answered.
            logger.exception(
                "Worker %s could not store the answer to query %s", self.worker_id, request.id
            )

    async def _replayed_answer(self, request: QueryRequest) -> Answer:
        run = await self.store.get_run(request.workflow_id, request.run_id)
        if run is None:
            return Answer(
                error=RemoteError("WorkflowNotFound", f"Run {request.run_id} is gone."),
                reason="failed",
            )
        engine = engine_for(self.workflows[run.name], run)
        try:
            entries = await self.store.read_journal(run.run_id) if run.history_length else []
            try:
                replay_journal(engine, run.run_id, entries, _entry_data)
            except NonDeterminismError as err:
                return Answer(error=RemoteError("NonDeterminismError", str(err)), reason="failed")
            engine.take_effects()  # carried out when they were first recorded
            return engine.answer_query(request.query, request.args)
        finally:
            engine.evict()

    async def _store_answer(self, request: QueryRequest, answer: Answer) -> None:
        stored = await self.store.answer_query(request.id, self.worker_id, answer.encode())
        if not stored:
            logger.debug("Query %s was answered or withdrawn meanwhile", request.id)


def _entry_data(entry: Any) -> dict[str, Any]:
    data = payload.decode(entry.data)
    if not isinstance(data, dict):
        raise ValueError(f"journal entry {entry.seq} ({entry.kind}) is not a map")
    return data
