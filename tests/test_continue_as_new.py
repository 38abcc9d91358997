"""A run that continues as new hands its successor everything that is not its input: the
parent waiting for it (a child's result must reach the parent from the last run) and its
own timeout (a per-call override of a child's, which the decorator does not know)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

import durable


@pytest.fixture
async def client(store_url: str) -> AsyncIterator[durable.Client]:
    async with durable.connect(store_url) as c:
        yield c


@durable.workflow
async def counts_down(n: int, total: int) -> int:
    if n > 0:
        durable.continue_as_new(n - 1, total + n)
    return total


@durable.workflow
async def waits_for_a_looping_child() -> int:
    return int(await durable.call(counts_down, 3, 0, id="looping-child"))


async def test_a_childs_result_reaches_its_parent_across_continue_as_new(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[waits_for_a_looping_child, counts_down]):
        handle = await client.start(waits_for_a_looping_child)
        assert await handle.result(timeout=20) == 3 + 2 + 1
    runs = [d async for d in client.list(name="counts_down")]
    assert sorted(d.status for d in runs) == ["completed"] + ["continued_as_new"] * 3


@durable.workflow
async def loops_then_hangs(n: int) -> str:
    if n > 0:
        durable.continue_as_new(n - 1)
    await durable.sleep(3600)
    return "woke"


@durable.workflow
async def gives_its_child_a_timeout() -> str:
    try:
        return str(await durable.call(loops_then_hangs, 1, id="hanging-child", timeout=0.5))
    except durable.ChildWorkflowError as exc:
        return f"child failed: {exc.cause.type}: {exc.cause.message}"


async def test_a_successor_keeps_the_run_timeout_given_by_the_parent(
    client: durable.Client,
) -> None:
    """The child's 0.5 s timeout was the parent's override (the decorator has none): the
    successor must time out too, or it sleeps an hour and the parent with it."""
    async with durable.Worker(client, workflows=[gives_its_child_a_timeout, loops_then_hangs]):
        handle = await client.start(gives_its_child_a_timeout)
        assert await asyncio.wait_for(handle.result(), 20) == (
            "child failed: TimeoutError: workflow 'loops_then_hangs' (hanging-child) exceeded "
            "its timeout of 0.5s"
        )
