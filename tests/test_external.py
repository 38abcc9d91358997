"""External waits (``durable.external``) completed by token through the client, on every
backend: completion, failure, timeouts, repeated and stale completions, and replay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

import durable
from durable import ExternalError, StaleTask, TaskNotFound


@dataclass
class Receipt:
    amount: int
    currency: str


@durable.workflow
async def pay(order: str) -> Any:
    ext = durable.external("payment-callback", result_type=Receipt)
    durable.publish("token", ext.token)
    receipt = await ext.wait()
    assert isinstance(receipt, Receipt)
    return {"order": order, "amount": receipt.amount, "token": ext.token}


async def token_of(handle: durable.WorkflowHandle[Any]) -> str:
    token = await handle.read("token", timeout=20)
    assert isinstance(token, str)
    return token


async def test_external_wait_completed_by_token(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[pay]):
        handle = await client.start(pay, "o-1", id="pay")
        token = await token_of(handle)
        desc = await handle.describe()
        assert [(p.kind, p.name) for p in desc.pending] == [("external", "payment-callback")]
        [step] = [s for s in await handle.steps() if s.kind == "external"]
        assert (step.name, step.status) == ("payment-callback", "waiting")
        await client.complete(token, {"amount": 12, "currency": "EUR"})
        assert await handle.result(timeout=20) == {"order": "o-1", "amount": 12, "token": token}
        [step] = [s for s in await handle.steps() if s.kind == "external"]
        assert step.status == "completed"
        assert step.output == {"amount": 12, "currency": "EUR"}
        # The same completion again is a no-op; another one is refused with what is stored.
        await client.complete(token, {"amount": 12, "currency": "EUR"})
        with pytest.raises(StaleTask) as info:
            await client.complete(token, {"amount": 99, "currency": "EUR"})
        assert info.value.outcome == {
            "status": "completed",
            "result": {"amount": 12, "currency": "EUR"},
        }
        with pytest.raises(StaleTask):
            await client.fail(token, "too late")
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("external_completed") == 1
    # The wait's row went with it: nothing is left behind.
    store = await client._open()
    assert (await store.read_extras("pay", handle.run_id or "")).tasks == []


@durable.workflow
async def pay_or_explain() -> Any:
    ext = durable.external("callback")
    durable.publish("token", ext.token)
    try:
        return await ext.wait()
    except ExternalError as exc:
        return {"failed": exc.cause.type, "message": exc.cause.message, "name": exc.name}


async def test_external_wait_failed_by_token(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[pay_or_explain]):
        handle = await client.start(pay_or_explain, id="fail")
        token = await token_of(handle)
        await client.fail(token, {"type": "Declined", "message": "card declined"})
        assert await handle.result(timeout=20) == {
            "failed": "Declined",
            "message": "card declined",
            "name": "callback",
        }
        await client.fail(token, {"type": "Declined", "message": "card declined"})  # no-op
        with pytest.raises(StaleTask) as info:
            await client.complete(token, 1)
        assert info.value.outcome["status"] == "failed"
        assert info.value.outcome["error"]["type"] == "Declined"
        [step] = [s for s in await handle.steps() if s.kind == "external"]
        assert step.status == "failed"
        assert step.error is not None
        assert step.error.message == "card declined"


@durable.workflow
async def patient() -> Any:
    ext = durable.external("approval")
    durable.publish("token", ext.token)
    try:
        return await ext.wait(timeout=0.2)
    except TimeoutError:
        durable.publish("timed_out", True)
    return ["late", await ext.wait()]  # the wait goes on after a timeout


async def test_external_wait_times_out_and_can_be_waited_again(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[patient]):
        handle = await client.start(patient, id="patient")
        token = await token_of(handle)
        assert await handle.read("timed_out", timeout=20) is True
        await client.heartbeat_task(token)  # an open wait: nothing to renew, no error
        await client.complete(token, "yes")
        assert await handle.result(timeout=20) == ["late", "yes"]


async def test_completion_for_a_closed_run_is_stale(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[pay]):
        handle = await client.start(pay, "o-2", id="closed")
        token = await token_of(handle)
        await handle.terminate("gave up")
        with pytest.raises(StaleTask) as info:
            await client.complete(token, {"amount": 1, "currency": "EUR"})
        assert info.value.outcome == {"status": "closed", "run_status": "terminated"}
        store = await client._open()
        assert (await store.read_extras("closed", handle.run_id or "")).tasks == []


async def test_a_token_of_another_database_is_not_found(client: durable.Client) -> None:
    from durable.tokens import TaskToken

    token = TaskToken("x", "elsewhere", "run-x", 3).encode()
    with pytest.raises(TaskNotFound, match="does not exist"):
        await client.complete(token, 1)


@durable.workflow
async def both(path: str) -> Any:
    size = await durable.call("measure", path)
    ext = durable.external("review")
    durable.publish("token", ext.token)
    verdict = await ext.wait()
    return {"size": size, "verdict": verdict, "token": ext.token}


async def test_a_run_using_both_replays_on_another_worker(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[both]):
        handle = await client.start(both, "/x", id="both")
        [task] = await client.poll_tasks("default", worker="node", wait=10)
        await client.complete(task.token, 7)
        token = await token_of(handle)
    # A fresh worker rebuilds the run by replay: same commands, same token.
    async with durable.Worker(client, workflows=[both]):
        await client.complete(token, "ok")
        result = await handle.result(timeout=20)
    assert result == {"size": 7, "verdict": "ok", "token": token}
    desc = await handle.describe()
    assert desc.problem is None


async def test_external_outside_a_workflow_says_so() -> None:
    with pytest.raises(durable.NotInWorkflowError):
        durable.external("x")
    with pytest.raises(TypeError, match="non-empty str"):
        durable.external("")


async def test_concurrent_completions_apply_once(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[pay_or_explain]):
        handle = await client.start(pay_or_explain, id="race")
        token = await token_of(handle)
        outcomes = await asyncio.gather(
            *(client.complete(token, i) for i in range(5)), return_exceptions=True
        )
        winners = [i for i, o in enumerate(outcomes) if o is None]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, StaleTask) for o in outcomes if o is not None)
        assert await handle.result(timeout=20) == winners[0]
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("external_completed") == 1


def test_the_cli_says_what_an_external_step_waits_for() -> None:
    from datetime import UTC, datetime

    from durable.cli.render import clock, progress, steps_table

    at = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)
    waiting = durable.Step(3, "external", "payment-callback", "0", None, "waiting", scheduled_at=at)
    assert progress("running", [waiting]) == (
        f"0/1 steps done, waiting for external completion 'payment-callback' since {clock(at)}"
    )
    lines = steps_table([waiting], at)
    assert any("client.complete(token" in line for line in lines)
