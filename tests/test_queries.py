"""Queries (durable.queries, durable.asking, durable.answering) on both backends: answered
from memory by the worker that holds the run, by replay when none does, on closed runs;
with arguments; and every bad input refused with a clear error at the caller."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from queries_app import STARTS, Item, cart, charge, misbehaves

import durable
from durable import answering
from durable.store import WorkerRecord
from durable.testing import WorkflowEnvironment

WAIT = 20.0


async def _journal_length(handle: durable.WorkflowHandle[object]) -> int:
    return len(await handle.history())


async def test_a_held_run_is_answered_from_memory(
    client: durable.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the holder may answer: on a machine slow enough that a step outlasts the grace
    # the holder gets, a replay would answer instead (correct, but not what this tests).
    monkeypatch.setattr(answering, "HOLDER_GRACE", 8.0)
    async with durable.Worker(client, workflows=[cart]):
        handle = await client.start(cart, "ida", id="cart-1")
        await handle.signal("add", "apple")
        await handle.signal("add", "pear")
        await _until(handle, ["apple", "pear"])
        starts = STARTS.count("ida")  # this run's only: STARTS is the whole process's
        length = await _journal_length(handle)
        assert await handle.query("items") == ["apple", "pear"]
        assert await handle.query("has", "apple") is True
        assert await handle.query("has", "plum") is False
        assert await handle.query("user") == "ida"
        # From memory: the workflow's code did not run again, and nothing was written.
        assert STARTS.count("ida") == starts
        assert await _journal_length(handle) == length
        await handle.signal("add", None)
        assert await handle.result(timeout=WAIT) == ["apple", "pear"]


async def test_an_evicted_run_is_answered_by_replay_after_a_restart(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart]):
        handle = await client.start(cart, "bob", id="cart-2")
        await handle.signal("add", "fig")
        await _until(handle, ["fig"])
    length = await _journal_length(handle)
    async with durable.Worker(client, workflows=[cart]):  # holds nothing of it
        starts = STARTS.count("bob")
        assert await handle.query("has", "fig") is True
        assert STARTS.count("bob") == starts + 1  # rebuilt by replay to answer
        assert await handle.query("items") == ["fig"]
        assert await _journal_length(handle) == length
        assert (await handle.describe()).status == "running"
        # The query left no trace: the run goes on as if never asked.
        await handle.signal("add", "kiwi")
        await handle.signal("add", None)
        assert await handle.result(timeout=WAIT) == ["fig", "kiwi"]


async def test_a_run_evicted_from_a_full_cache_is_answered_by_replay(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart], cache_size=1):
        handle = await client.start(cart, "eve", id="cart-3")
        await handle.signal("add", "lime")
        await _until(handle, ["lime"])
        other = await client.start(cart, "fay", id="cart-3b")
        await other.signal("add", "nut")
        await _until(other, ["nut"])  # its claim evicted the first run from the cache
        starts = STARTS.count("eve")
        assert await handle.query("items") == ["lime"]
        assert STARTS.count("eve") == starts + 1


async def test_a_closed_run_is_answered_by_replay(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cart]):
        handle = await client.start(cart, "cy", id="cart-4")
        for item in ("tea", "tea", None):
            await handle.signal("add", item)
        assert await handle.result(timeout=WAIT) == ["tea", "tea"]
        length = await _journal_length(handle)
        assert await handle.query("items") == ["tea", "tea"]
        assert await handle.query("count", Item("tea"), 2) is True
        assert await handle.query("count", Item("tea", size=2), 5) is False
        assert await _journal_length(handle) == length
        assert (await handle.describe()).status == "completed"


async def test_arguments_are_rebuilt_from_the_query_functions_hints(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart]):
        handle = await client.start(cart, "di", id="cart-5")
        await handle.signal("add", "egg")
        await _until(handle, ["egg"])
        # `count` takes an Item: the dict the client encodes comes back as one.
        assert await handle.query("count", Item("egg")) is True
        assert await handle.query("count", Item("egg"), 1) is True
        assert await handle.query("count", {"name": "egg", "size": 3}, 3) is True
        with pytest.raises(durable.QueryError, match=r"do not fit query 'count'") as caught:
            await handle.query("count")
        assert caught.value.reason == "refused"
        with pytest.raises(durable.QueryError, match=r"query 'count'") as caught:
            await handle.query("count", {"nom": "egg"})
        assert caught.value.reason == "refused"


async def test_bad_queries_are_refused_at_the_caller(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[misbehaves], activities=[charge]):
        handle = await client.start(misbehaves, id="bad-1")
        await _until_query(handle, "year")
        length = await _journal_length(handle)
        refused = {
            "async_fn": "is async",
            "awaits": "returned an awaitable",
            "activity": r"called a durable operation \(activity_scheduled 'charge'\)",
            "publish": r"called durable.publish\(\)",
            "swallows": r"called durable.publish\(\)",
            "tags": r"called a durable operation \(tags_set",
            "continues": r"called durable.continue_as_new\(\)",
            "random": r"called durable.random\(\)",
            "task": r"called asyncio.create_task\(\)",
            "registers": r"called durable.on_query\('late', ...\)",
            "handles": r"called durable.on_signal\(\)",
            "updates": r"called durable.on_update\(\)",
            "wakes": "woke the workflow's code",
        }
        for name, message in refused.items():
            with pytest.raises(durable.QueryError, match=message) as caught:
                await handle.query(name)
            assert caught.value.reason == "refused", name
            assert caught.value.query == name
        with pytest.raises(durable.QueryError, match=r"raised ValueError: no such shelf") as c:
            await handle.query("raises")
        assert c.value.reason == "failed"
        assert c.value.cause is not None
        assert c.value.cause.type == "ValueError"
        assert "_raises" in c.value.cause.traceback
        with pytest.raises(durable.QueryError, match=r"result of query 'unencodable'") as c:
            await handle.query("unencodable")
        assert c.value.reason == "failed"
        with pytest.raises(durable.QueryError, match=r"No query 'nope'.*'activity', ") as c:
            await handle.query("nope")
        assert c.value.reason == "unknown_query"
        assert await handle.query("year") >= 2023
        # None of it reached the journal, woke the workflow or started anything.
        assert await _journal_length(handle) == length
        await handle.signal("go")
        assert await handle.result(timeout=WAIT) == "signalled"
        kinds = [e.kind for e in await handle.history()]
        assert "activity_scheduled" not in kinds
        assert "published" not in kinds


async def test_client_side_refusals(client: durable.Client) -> None:
    with pytest.raises(durable.WorkflowNotFound):
        await client.get_handle("nobody").query("items")
    handle = await client.start(cart, "no-worker", id="cart-6")
    with pytest.raises(durable.SerializationError, match=r"arguments of query 'has'"):
        await handle.query("has", object())
    with pytest.raises(TypeError, match="query name must be a non-empty str"):
        await handle.query("")
    with pytest.raises(ValueError, match="timeout must be > 0"):
        await handle.query("items", timeout=0)
    with pytest.raises(durable.QueryError, match=r"No worker serves workflow 'cart'") as c:
        await handle.query("items")
    assert c.value.reason == "no_answer"


async def test_no_answer_within_the_timeout_says_to_start_a_worker(
    client: durable.Client, store_url: str
) -> None:
    handle = await client.start(cart, "ghost", id="cart-7")
    # A worker that registered but is not running: nobody answers.
    store = await client._open()
    now = client.clock.now()
    await store.register_worker(
        WorkerRecord("ghost:1", ("default",), ("cart",), (), "host", 1, now, now)
    )
    with pytest.raises(durable.QueryError, match=r"No worker answered .* within 0.3 s") as c:
        await handle.query("items", timeout=0.3)
    assert c.value.reason == "no_answer"


async def _until(handle: durable.WorkflowHandle[list[str]], items: list[str]) -> None:
    """Wait until the run holds ``items`` (as its query says)."""
    for _ in range(2000):
        if await handle.query("items") == items:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the run never held {items}")


async def _until_query(handle: durable.WorkflowHandle[object], name: str) -> None:
    """Wait until the run has registered query ``name`` (its first step ran)."""
    for _ in range(2000):
        try:
            await handle.query(name)
            return
        except durable.QueryError as exc:
            if exc.reason != "unknown_query":
                raise
        await asyncio.sleep(0.01)
    raise AssertionError(f"the run never registered {name!r}")


@durable.workflow
async def sleeper() -> int:
    n = 0
    durable.on_query("n", lambda: n)
    n = 5
    await durable.sleep(timedelta(days=90))
    n = 6
    return n


async def test_queries_in_a_time_skipping_environment() -> None:
    async with WorkflowEnvironment(workflows=[sleeper]) as env:
        handle = await env.client.start(sleeper)
        assert await handle.query("n") == 5  # asked before its first step: answered after
        assert await handle.result() == 6  # 90 days skipped
        assert await handle.query("n") == 6


GATES: dict[str, asyncio.Event] = {}
GATED_STARTS: list[str] = []


@durable.activity
async def wait_gate(key: str) -> str:
    await GATES[key].wait()
    return key


@durable.workflow
async def gated(key: str) -> str:
    GATED_STARTS.append(key)
    state = "waiting"
    durable.on_query("state", lambda: state)
    await wait_gate(key)
    state = "done"
    return state


async def test_the_worker_holding_the_lease_answers_and_the_others_let_it(
    client: durable.Client,
) -> None:
    GATES["g1"] = asyncio.Event()
    served = {"workflows": [gated], "activities": [wait_gate]}
    async with durable.Worker(client, **served), durable.Worker(client, **served):
        handle = await client.start(gated, "g1", id="gated-1")
        await _until_query(handle, "state")
        starts = len(GATED_STARTS)
        for _ in range(5):
            # Held by one worker (its activity runs there): the other never replays it.
            assert await handle.query("state") == "waiting"
        assert len(GATED_STARTS) == starts
        GATES["g1"].set()
        assert await handle.result(timeout=WAIT) == "done"


async def test_a_run_leased_by_a_silent_worker_is_answered_by_replay(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart]):
        handle = await client.start(cart, "gil", id="cart-8")
        await handle.signal("add", "fig")
        await _until(handle, ["fig"])
    await handle.signal("add", "kiwi")  # waits in the inbox
    store = await client._open()
    now = client.clock.now()
    claimed = await store.claim_runs(
        "silent:1", queues=["default"], names=["cart"], now=now, lease_until=now + 600, limit=10
    )
    assert [c.run.workflow_id for c in claimed] == ["cart-8"]  # and never heard of again
    async with durable.Worker(client, workflows=[cart]):
        # The lease holder does not answer: after a grace the run's journal is replayed.
        assert await handle.query("items") == ["fig"]
