"""What a worker tells its operator (INFO log): retries, failed runs, reclaimed tasks and
what a graceful stop waits for; and a run whose input does not fit its workflow."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

import durable
from durable import RetryPolicy

attempts: list[int] = []


@durable.activity(retry=RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=5)))
async def unreliable(order: str) -> str:
    attempts.append(1)
    raise ConnectionError(f"payment service down for {order}")


@durable.workflow
async def pays(order: str) -> str:
    return await unreliable(order)


async def test_retries_and_failed_runs_are_logged_with_their_errors(
    client: durable.Client, caplog: pytest.LogCaptureFixture
) -> None:
    attempts.clear()
    caplog.set_level(logging.INFO, logger="durable.worker")
    async with durable.Worker(client, workflows=[pays], activities=[unreliable]):
        with pytest.raises(durable.WorkflowFailed):
            await client.execute(pays, "o-9", id="pays-o-9", timeout=20)
    text = caplog.text
    assert "Activity 'unreliable' (step 2) attempt 1 failed: ConnectionError: payment " in text
    assert "service down for o-9; attempt 2 in" in text
    assert "Activity 'unreliable' (step 2) failed for good after 2 attempt(s)" in text
    assert "Workflow 'pays' (pays-o-9) failed: ActivityError: " in text


@durable.activity
async def slow_step(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slept"


@durable.workflow
async def runs_slow_step(seconds: float) -> str:
    return await slow_step(seconds)


async def test_a_graceful_stop_says_what_it_waits_for(
    client: durable.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="durable.worker")
    async with durable.Worker(client, workflows=[runs_slow_step], activities=[slow_step]) as w:
        handle = await client.start(runs_slow_step, 0.5)
        while not any(c.started for c in w._running().values()):
            await asyncio.sleep(0.01)
    assert "stopping: waiting up to 10 s for 1 activity attempt(s) ['slow_step']" in caplog.text
    assert "everything in flight has ended" in caplog.text
    assert await handle.result(timeout=1) == "slept"  # its result was committed on the way


@durable.workflow
async def greets(name: str, times: int) -> str:
    return name * times


async def test_a_run_whose_input_does_not_fit_fails_saying_why(client: durable.Client) -> None:
    """Started by name with the wrong arguments, a run used to be parked as if the code had
    changed under it (waiting for ever); it fails, with the reason. (Started while no
    worker describes the workflow: with one live, the start itself is refused.)"""
    handles = [
        await client.start("greets", *args) for args in (["ada"], ["ada", "twice"], ["ada", 2, 3])
    ]
    async with durable.Worker(client, workflows=[greets]):
        for handle in handles:
            with pytest.raises(durable.WorkflowFailed) as failed:
                await handle.result(timeout=20)
            message = failed.value.cause.message
            assert "the input of workflow 'greets' does not fit its signature" in message
            assert (await handle.describe()).problem is None
