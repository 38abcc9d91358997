"""The storage contract, part: queries (`durable.querybox`) — a client's query is
listed for workers serving its run's workflow with what tells who answers it (the run's
journal length and lease), taken by one worker, answered once, read back, deleted; and
asking and answering wake the waiters on `TOPIC_QUERIES` and `TOPIC_ANSWERS`.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

import asyncio
import time

from durable.querybox import QUERY_ROW_TTL, NewQuery
from durable.store import Store
from durable.topics import TOPIC_ANSWERS, TOPIC_QUERIES

from .kit import new_run, start

__all__ = [
    "test_a_query_is_listed_taken_once_answered_once_read_and_deleted",
    "test_asking_and_answering_wake_their_waiters",
]


async def test_a_query_is_listed_taken_once_answered_once_read_and_deleted(
    store: Store,
) -> None:
    run_id = await start(store, "cart")  # claimed by w1, one journal entry
    other, _ = await store.create_run(new_run("else", name="other"), if_exists="error")
    before = await store.get_run("cart")
    q1 = await store.post_query(NewQuery("cart", run_id, "items", b"args-1", 10.0))
    q2 = await store.post_query(NewQuery("cart", run_id, "has", b"args-2", 11.0))
    await store.post_query(NewQuery("else", other.run_id, "x", b"", 11.0))
    await store.post_query(NewQuery("gone", "no-such-run", "x", b"", 11.0))
    assert q2 > q1

    pending = await store.pending_queries(["wf"], 10)
    assert [(p.id, p.query, p.args) for p in pending] == [
        (q1, "items", b"args-1"),
        (q2, "has", b"args-2"),
    ]
    first = pending[0]
    assert (first.workflow_id, first.run_id, first.name, first.created_at) == (
        "cart",
        run_id,
        "wf",
        10.0,
    )
    assert (first.status, first.history_length, first.lease_owner) == ("running", 1, "w1")
    assert first.lease_expires_at is not None
    assert [p.query for p in await store.pending_queries(["wf"], 1)] == ["items"]
    assert [p.query for p in await store.pending_queries(["other", "wf"], 10)] == [
        "items",
        "has",
        "x",
    ]
    assert await store.pending_queries(["nobody"], 10) == []

    # Taken by one worker: no longer listed, and no one else may answer it.
    assert await store.take_query(q1, "w2") is True
    assert await store.take_query(q1, "w3") is False
    assert await store.take_query(q1, "w2") is True  # the same worker again (a retry)
    assert [p.id for p in await store.pending_queries(["wf"], 10)] == [q2]
    assert await store.answer_query(q1, "w3", b"stolen") is False
    assert await store.read_answer(q1) is None
    assert await store.answer_query(q1, "w2", b"answer-1") is True
    assert await store.read_answer(q1) == b"answer-1"
    assert await store.answer_query(q1, "w2", b"again") is False  # answered once
    assert await store.read_answer(q1) == b"answer-1"

    # Answered without being taken (from memory): then no longer takeable or listed.
    assert await store.answer_query(q2, "w1", b"answer-2") is True
    assert await store.take_query(q2, "w2") is False
    assert await store.pending_queries(["wf"], 10) == []

    await store.delete_query(q1)
    await store.delete_query(q1)  # gone already: no error
    assert await store.read_answer(q1) is None
    assert await store.answer_query(q1, "w2", b"late") is False
    assert await store.read_answer(q2) == b"answer-2"

    # None of it touched the run.
    after = await store.get_run("cart")
    assert after is not None
    assert before is not None
    assert (after.history_length, after.status, after.lease_owner) == (
        before.history_length,
        before.status,
        before.lease_owner,
    )
    assert await store.read_inbox(run_id) == []

    # A row its client never deleted goes once it is older than QUERY_ROW_TTL.
    await store.post_query(NewQuery("cart", run_id, "late", b"", 11.0 + QUERY_ROW_TTL + 1))
    assert await store.read_answer(q2) is None
    assert [p.query for p in await store.pending_queries(["wf"], 10)] == ["late"]


async def test_asking_and_answering_wake_their_waiters(store: Store) -> None:
    run_id = await start(store, "cart")
    for topic in (TOPIC_QUERIES, TOPIC_ANSWERS):
        await store.wait([topic], 0.01)  # a first wait: its baseline is now
    mark = store.watermark()
    waiter = asyncio.ensure_future(store.wait([TOPIC_QUERIES], 30, since=mark))
    await asyncio.sleep(0.01)
    began = time.monotonic()
    query_id = await store.post_query(NewQuery("cart", run_id, "items", b"", 10.0))
    await asyncio.wait_for(waiter, 10)
    mark = store.watermark()
    waiter = asyncio.ensure_future(store.wait([TOPIC_ANSWERS], 30, since=mark))
    await asyncio.sleep(0.01)
    assert await store.answer_query(query_id, "w1", b"yes")
    await asyncio.wait_for(waiter, 10)
    assert time.monotonic() - began < 10
