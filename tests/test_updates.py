"""Updates (`durable.on_update`, `handle.update`) on both backends: results, errors,
validators that reject without journaling, idempotent update ids, closed runs, replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import durable
from durable.replayer import RunHistory
from durable.testing import WorkflowEnvironment, replay


@durable.activity
async def double(x: int) -> int:
    return x * 2


@durable.workflow
async def cart(user: str) -> list[str]:
    items: list[str] = []

    def check(item: str) -> None:
        if not item:
            raise ValueError("empty item")

    async def add(item: str) -> int:
        items.append(item)
        return len(items)

    async def add_twice(n: int) -> int:
        doubled = await double(n)  # an update may await activities
        await durable.sleep(0.01)  # and timers
        items.append(str(doubled))
        return doubled

    def boom() -> None:
        raise ValueError("the handler broke")

    durable.on_update("add", add, validator=check)
    durable.on_update("add_twice", add_twice)
    durable.on_update("boom", boom)
    durable.on_signal("clear", lambda: items.clear())
    await durable.wait_condition(lambda: "done" in items, timeout=60)
    await durable.all_handlers_finished()
    return items


async def _history_kinds(handle: durable.WorkflowHandle[Any]) -> list[str]:
    return [e.kind for e in await handle.history()]


async def test_update_returns_the_handlers_result_and_is_journaled(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        assert await handle.update("add", "apple") == 1
        assert await handle.update("add_twice", 21) == 42
        assert await handle.update("add", "done") == 3
        assert await handle.result(timeout=20) == ["apple", "42", "done"]
    history = await handle.history()
    accepted = [e.data["name"] for e in history if e.kind == "update_accepted"]
    completed = [e.data["name"] for e in history if e.kind == "update_completed"]
    assert accepted == ["add", "add_twice", "add"]
    assert completed == ["add", "add_twice", "add"]


async def test_a_validators_rejection_raises_and_writes_nothing(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        assert await handle.update("add", "a") == 1
        before = await _history_kinds(handle)
        with pytest.raises(durable.UpdateRejected, match="empty item") as caught:
            await handle.update("add", "")
        assert caught.value.cause.type == "ValueError"
        assert await _history_kinds(handle) == before  # nothing journaled
        assert await handle.update("add", "done") == 2
        assert await handle.result(timeout=20) == ["a", "done"]


async def test_an_unknown_update_name_is_rejected_naming_the_registered_ones(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        with pytest.raises(durable.UpdateRejected, match=r"no handler for update 'nope'") as c:
            await handle.update("nope", 1)
        assert c.value.cause.type == "UnknownUpdate"
        assert "'add', 'add_twice', 'boom'" in str(c.value)
        assert "update_accepted" not in await _history_kinds(handle)
        await handle.update("add", "done")
        await handle.result(timeout=20)


async def test_arguments_that_do_not_fit_are_rejected(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        with pytest.raises(durable.UpdateRejected, match="arguments do not fit"):
            await handle.update("add_twice", "not a number")
        await handle.update("add", "done")
        await handle.result(timeout=20)


async def test_a_handler_that_raises_fails_the_update_not_the_run(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        with pytest.raises(durable.UpdateFailed, match="the handler broke") as caught:
            await handle.update("boom")
        assert caught.value.cause.type == "ValueError"
        assert await handle.update("add", "done") == 1
        assert await handle.result(timeout=20) == ["done"]


async def test_the_same_update_id_runs_once_and_returns_the_same_outcome(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        first = await handle.update("add", "apple", update_id="u-1")
        again = await handle.update("add", "apple", update_id="u-1")
        assert first == again == 1
        # Two requests with one id in flight together: one runs, both get its outcome.
        both = await asyncio.gather(
            handle.update("add", "pear", update_id="u-2"),
            handle.update("add", "pear", update_id="u-2"),
        )
        assert both == [2, 2]
        await handle.update("add", "done")
        assert await handle.result(timeout=20) == ["apple", "pear", "done"]
    accepted = [e.data["id"] for e in await handle.history() if e.kind == "update_accepted"]
    assert sorted(accepted) == sorted({*accepted})  # each id journaled once


async def test_a_rejected_id_sent_again_is_rejected_again(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        for _ in range(2):
            with pytest.raises(durable.UpdateRejected, match="empty item"):
                await handle.update("add", "", update_id="bad")
        await handle.update("add", "done")
        await handle.result(timeout=20)


async def test_an_update_to_a_closed_run_is_refused_and_writes_nothing(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        await handle.update("add", "done", update_id="last")
        await handle.result(timeout=20)
        before = await _history_kinds(handle)
        with pytest.raises(durable.UpdateRejected, match=r"has closed \(completed\)") as c:
            await handle.update("add", "late")
        assert c.value.cause.type == "WorkflowClosed"
        assert await _history_kinds(handle) == before
        # Retrying an id the run answered before it closed still gets that answer.
        assert await handle.update("add", "done", update_id="last") == 1


async def test_unknown_workflow_and_bad_names(client: durable.Client) -> None:
    with pytest.raises(durable.WorkflowNotFound):
        await client.get_handle("nobody").update("add", 1)
    handle = client.get_handle("nobody")
    with pytest.raises(TypeError, match="update name must be a non-empty str"):
        await handle.update("", 1)
    with pytest.raises(TypeError, match="update_id must be a non-empty str"):
        await handle.update("add", 1, update_id="")


@durable.workflow
async def returns_early() -> str:
    async def slow() -> str:
        await durable.sleep(3600)
        return "never"

    durable.on_update("slow", slow)
    await durable.wait_signal("stop", timeout=60)
    return "stopped"


async def test_a_run_that_closes_while_an_update_is_pending_answers_it(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[returns_early]):
        handle = await client.start(returns_early)
        pending = asyncio.ensure_future(handle.update("slow"))
        for _ in range(200):
            if "update_accepted" in await _history_kinds(handle):
                break
            await asyncio.sleep(0.02)
        await handle.signal("stop")
        with pytest.raises(durable.UpdateFailed, match=r"closed \(completed\) before") as c:
            await asyncio.wait_for(pending, 20)
        assert c.value.cause.type == "WorkflowClosed"


async def test_a_run_terminated_while_an_update_waits_answers_it(
    client: durable.Client,
) -> None:
    handle = await client.start(returns_early)  # no worker: the update is never taken
    pending = asyncio.ensure_future(handle.update("slow"))
    await asyncio.sleep(0.2)
    await handle.terminate("enough")
    with pytest.raises(durable.UpdateFailed, match=r"closed \(terminated\)"):
        await asyncio.wait_for(pending, 20)


@durable.workflow
async def moves_on(n: int) -> int:
    async def slow() -> str:
        await durable.sleep(3600)
        return "never"

    durable.on_update("slow", slow)
    await durable.wait_signal("next", timeout=60)
    if n == 0:
        durable.continue_as_new(1)
    return n


async def test_a_run_that_continues_as_new_while_an_update_is_pending_answers_it(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[moves_on]):
        handle = await client.start(moves_on, 0)
        pending = asyncio.ensure_future(handle.update("slow"))
        for _ in range(200):
            if "update_accepted" in await _history_kinds(handle):
                break
            await asyncio.sleep(0.02)
        await handle.signal("next")
        with pytest.raises(durable.UpdateFailed, match=r"closed \(continued_as_new\)"):
            await asyncio.wait_for(pending, 20)


@durable.workflow
async def loops(n: int) -> int:
    async def bump(by: int) -> int:
        return n + by

    durable.on_update("bump", bump)
    if n < 2:
        await durable.sleep(0.05)
        durable.continue_as_new(n + 1)
    await durable.wait_signal("stop", timeout=60)
    return n


async def test_an_update_sent_across_continue_as_new_is_answered(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[loops]):
        handle = await client.start(loops, 0)
        results = await asyncio.gather(*(handle.update("bump", 10) for _ in range(3)))
        assert all(r in (10, 11, 12) for r in results)
        for _ in range(400):  # a signal to a run that continues as new before it waits is
            if (await handle.describe()).input == [2]:  # journaled there, not moved on
                break
            await asyncio.sleep(0.02)
        assert await handle.update("bump", 1) == 3  # reaches the last run
        await handle.signal("stop")
        assert await handle.result(timeout=20) == 2


async def test_a_run_with_updates_replays(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        await handle.update("add", "apple")
        await handle.update("add_twice", 2)
        with pytest.raises(durable.UpdateFailed):
            await handle.update("boom")
        await handle.signal("clear")
        await handle.update("add", "done")
        assert await handle.result(timeout=20) == ["done"]
    store = await client._open()
    run = await store.get_run(handle.id)
    assert run is not None
    history = RunHistory.of(run, await store.read_journal(run.run_id))
    assert replay(history, [cart]) == len(history.entries)


async def test_updates_are_steps_people_see(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[cart], activities=[double]):
        handle = await client.start(cart, "ann")
        await handle.update("add", "apple")
        with pytest.raises(durable.UpdateFailed):
            await handle.update("boom")
        steps = [s for s in await handle.steps() if s.kind == "update"]
        assert [(s.name, s.status, s.input) for s in steps] == [
            ("add", "completed", ["apple"]),
            ("boom", "failed", []),
        ]
        assert steps[0].output == 1
        assert steps[1].error is not None
        assert "the handler broke" in steps[1].error.message
        await handle.update("add", "done")
        await handle.result(timeout=20)


@durable.workflow
async def slow_account() -> int:
    balance = [0]

    async def deposit(amount: int) -> int:
        await durable.sleep(timedelta(days=1))  # a day in virtual time
        balance[0] += amount
        return balance[0]

    durable.on_update("deposit", deposit)
    await durable.wait_condition(lambda: balance[0] >= 5, timeout=timedelta(days=30))
    return balance[0]


async def test_an_update_awaiting_a_day_long_timer_completes_with_time_skipping() -> None:
    async with WorkflowEnvironment(workflows=[slow_account]) as env:
        handle = await env.client.start(slow_account)
        started = env.now()
        assert await asyncio.wait_for(handle.update("deposit", 5), 20) == 5
        assert env.now() - started >= timedelta(days=1)
        assert env.now() - started < timedelta(days=30)  # no jump past the update's answer
        assert await handle.result() == 5


@durable.workflow
async def hops(n: int) -> list[int]:
    seen: list[int] = []

    def add(k: int) -> int:
        seen.append(k)
        return n

    durable.on_update("add", add)
    await durable.wait_signal("next", timeout=60)
    if n == 0:
        durable.continue_as_new(1)
    return seen


async def test_a_duplicate_that_reaches_a_successor_does_not_run_again(
    client: durable.Client,
) -> None:
    from durable import journal, payload

    async with durable.Worker(client, workflows=[hops]):
        handle = await client.start(hops, 0)
        assert await handle.update("add", 7, update_id="d") == 0
        await handle.signal("next")
        for _ in range(400):
            if (await handle.describe()).input == [1]:
                break
            await asyncio.sleep(0.02)
        # A second request of that id, in flight when the first run continued as new,
        # reaches the successor: the outcome is known, so it is dropped, not run again.
        args = payload.encode({"args": [7], "kwargs": {}})
        item = journal.UpdateAccepted("d", "add", args)
        store = await client._open()
        await store.send(handle.id, item.KIND, journal.encode(item), client.clock.now())
        assert await handle.update("add", 7, update_id="d") == 0
        await handle.signal("next")
        assert await handle.result(timeout=20) == []
    assert "update_accepted" not in await _history_kinds(handle)


@durable.workflow
async def odd_handlers() -> str:
    def publishes(x: int) -> None:
        durable.publish("seen", x)  # a validator may not issue commands

    def unencodable() -> object:
        return object()

    durable.on_update("checked", lambda x: x, validator=publishes)
    durable.on_update("unencodable", unencodable)
    await durable.wait_signal("stop", timeout=60)
    return "done"


async def test_a_validator_that_writes_and_a_result_that_cannot_encode(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[odd_handlers]):
        handle = await client.start(odd_handlers)
        with pytest.raises(durable.UpdateRejected, match="validators only read"):
            await handle.update("checked", 1)
        with pytest.raises(durable.UpdateFailed, match="result of update 'unencodable'"):
            await handle.update("unencodable")
        kinds = await _history_kinds(handle)
        assert "published" not in kinds
        assert kinds.count("update_accepted") == 1  # the rejected one left no trace
        await handle.signal("stop")
        assert await handle.result(timeout=20) == "done"
