"""``handle.query(name, *args)``: a query left in the database, answered by a worker, read back.

The client checks what it can before anything is written (the name, that the arguments
encode, that the workflow exists and some worker serves it), leaves the query for the run
that is current now (`durable.querybox.QueryBox.post_query`, which wakes the workers),
waits on `TOPIC_ANSWERS` for the answer (`durable.answering` says who writes it), and
deletes the row whatever happens. Waiting costs no polling on PostgreSQL (NOTIFY); on
SQLite another process's answer is seen by the data-version check that every wait for
work uses (`durable_sqlite.wakeups`).

`QueryMethods` is the part of `durable.client.WorkflowHandle` that asks, kept apart for size.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import payload
from .errors import QueryError
from .queries import Answer
from .querybox import NewQuery
from .topics import TOPIC_ANSWERS

if TYPE_CHECKING:
    from .client import Client
    from .rows import RunRecord

__all__ = ["QUERY_TIMEOUT", "QueryMethods", "decode_answer", "encode_query_args"]

QUERY_TIMEOUT = 10.0  # seconds handle.query() waits for an answer by default


def encode_query_args(name: str, args: tuple[Any, ...] | list[Any]) -> bytes:
    """Check ``name`` and encode ``args`` as a query's arguments.

    Raises:
        TypeError: ``name`` is not a non-empty ``str``.
        SerializationError: an argument cannot be encoded (or decoded back).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"A query name must be a non-empty str, got {name!r}; the workflow registers it "
            "with durable.on_query(name, fn)."
        )
    what = f"arguments of query {name!r}"
    encoded = payload.encode({"args": list(args), "kwargs": {}}, what=what)
    payload.decode(encoded, what=f"{what} (checked before sending them)")
    return encoded


def decode_answer(data: bytes, run: RunRecord, name: str) -> Any:
    """The value of an answer, or the `QueryError` it holds raised."""
    answer = Answer.decode(data)
    if answer.error is None:
        assert answer.result is not None
        return payload.decode(answer.result, what=f"result of query {name!r}")
    cause = answer.error
    reason = answer.reason or "failed"
    if reason == "failed" and cause.type not in ("NonDeterminismError", "QueryFailed"):
        message = f"Query {name!r} of workflow {run.name!r} ({run.workflow_id}) raised {cause}"
    else:
        message = cause.message
    raise QueryError(message, reason, cause, run.workflow_id, name)


class QueryMethods:
    """``WorkflowHandle.query`` (see the module docstring)."""

    client: Client
    id: str

    if TYPE_CHECKING:

        async def _current(self) -> RunRecord: ...

    async def query(self, name: str, *args: Any, timeout: float | timedelta = QUERY_TIMEOUT) -> Any:
        """Ask the run's query ``name`` (registered with `durable.on_query`) and return what
        its function returns for ``args``, computed on the run's current state.

            items = await handle.query("items")
            has_apple = await handle.query("has", "apple")

        Answered by the worker that holds the run in memory, or by a worker serving the
        workflow that rebuilds it by replay (an evicted, sleeping or closed run): nothing
        is written to the run. The current run of the workflow id is asked (after
        continue-as-new, the newest).

        Raises:
            QueryError: the run has no such query, refused it (the function is async, or
                awaits or calls a durable operation, or does not take these arguments),
                the function raised (``.cause``), or no worker answered within
                ``timeout`` seconds (``.reason`` says which).
            SerializationError: an argument cannot be encoded; nothing was sent.
            WorkflowNotFound: no workflow with this id.
            TypeError: ``name`` is not a non-empty ``str``.
        """
        encoded = encode_query_args(name, args)
        limit = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        if not limit > 0:
            raise ValueError(f"A query's timeout must be > 0 seconds, got {timeout!r}")
        store = await self.client._open()
        run = await self._current()
        if not any(run.name in w.workflows for w in await store.list_workers()):
            raise QueryError(
                f"No worker serves workflow {run.name!r}, so nothing can answer query "
                f"{name!r} of {self.id!r}. Start one that registers it (e.g. `durable worker "
                "MODULE` for the module that defines it), then ask again.",
                "no_answer",
                workflow_id=self.id,
                query=name,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        mark = store.watermark()
        query_id = await store.post_query(
            NewQuery(self.id, run.run_id, name, encoded, self.client.clock.now())
        )
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining > 0:
                    await store.wait([TOPIC_ANSWERS], remaining, since=mark)
                mark = store.watermark()
                answer = await store.read_answer(query_id)
                if answer is not None:
                    return decode_answer(answer, run, name)
                if remaining <= 0:
                    raise QueryError(
                        f"No worker answered query {name!r} of workflow {run.name!r} "
                        f"({self.id}) within {limit:g} s. Is a worker serving {run.name!r} "
                        "running and reaching this database? Start one (`durable worker "
                        "MODULE`), or pass a longer timeout.",
                        "no_answer",
                        workflow_id=self.id,
                        query=name,
                    )
        finally:
            await asyncio.shield(store.delete_query(query_id))
