"""What closing a run does in the worker (`durable.stepping`): a failed run keeps its error,
activities it left running are cancelled, and a run that continues as new hands its
successor everything that is not its input: the parent waiting for it (a child's result
must reach the parent from the last run) and its own timeout (a per-call override of a
child's, which the decorator does not know)."""

from __future__ import annotations

import asyncio
import contextlib
import time
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
    # The parent's journal names the run that answered: the child's last one.
    [last] = [d.run_id for d in runs if d.status == "completed"]
    [reply] = [e for e in await handle.history() if e.kind == "child_completed"]
    assert (reply.data["workflow_id"], reply.data["run_id"]) == ("looping-child", last)


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


@durable.workflow
async def fails_plainly() -> str:
    raise durable.ApplicationError("out of stock", type="Stock")


async def test_a_failed_run_keeps_its_error(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[fails_plainly]):
        handle = await client.start(fails_plainly)
        with pytest.raises(durable.WorkflowFailed) as info:
            await handle.result(timeout=20)
    assert (info.value.cause.type, info.value.cause.message) == ("Stock", "out of stock")


heartbeats: list[str] = []


@durable.activity
async def beats_until_cancelled() -> str:
    for _ in range(400):  # 20 s at most
        try:
            durable.heartbeat()
        except asyncio.CancelledError:
            heartbeats.append("cancelled")
            raise
        await asyncio.sleep(0.05)
    return "ran to the end"


@durable.workflow
async def leaves_an_activity_running() -> str:
    left = asyncio.ensure_future(beats_until_cancelled())
    await durable.sleep(0.3)
    return "closed" if not left.done() else "the activity ended first"


async def test_closing_a_run_cancels_the_activities_it_left_running(
    client: durable.Client,
) -> None:
    heartbeats.clear()
    async with durable.Worker(
        client, workflows=[leaves_an_activity_running], activities=[beats_until_cancelled]
    ):
        handle = await client.start(leaves_an_activity_running)
        assert await handle.result(timeout=20) == "closed"
        closed = time.monotonic()
        while not heartbeats and time.monotonic() - closed < 20:
            await asyncio.sleep(0.02)
        # At its next heartbeat (every 50 ms), not when a lease renewal some seconds later
        # finds the task gone.
        assert time.monotonic() - closed < 3
    assert heartbeats == ["cancelled"]


@durable.workflow
async def waits_for_a_child_to_be_cancelled() -> str:
    try:
        await durable.call(loops_then_hangs, 0, id="cancelled-child")
    except durable.ChildWorkflowError as exc:
        return str(exc)
    return "the child completed"


async def test_a_cancelled_child_tells_its_parent_which_run_ended_and_how(
    client: durable.Client,
) -> None:
    async with durable.Worker(
        client, workflows=[waits_for_a_child_to_be_cancelled, loops_then_hangs]
    ):
        handle = await client.start(waits_for_a_child_to_be_cancelled)
        child = client.get_handle("cancelled-child")
        for _ in range(400):
            with contextlib.suppress(durable.WorkflowNotFound):
                if (await child.describe()).status == "running":
                    break
            await asyncio.sleep(0.05)
        await child.cancel()
        message = await handle.result(timeout=20)
    assert message.startswith("Child workflow 'loops_then_hangs' (cancelled-child, started at ")
    assert message.endswith(" cancelled: CancelledError: child workflow was cancelled")
    [reply] = [e for e in await handle.history() if e.kind == "child_failed"]
    child_run = (await child.describe()).run_id
    assert (reply.data["status"], reply.data["run_id"]) == ("cancelled", child_run)


@durable.workflow
async def continues_then_waits(n: int) -> str:
    if n > 0:
        durable.continue_as_new(n - 1)
    await durable.sleep(30)
    return "late"


@durable.workflow
async def moves_on_before_its_child_answers(first: bool) -> str:
    if first:
        child = asyncio.ensure_future(durable.call(continues_then_waits, 1, id="late-child"))
        await durable.sleep(1.0)  # the child has continued as new meanwhile
        if not child.done():
            durable.continue_as_new(False)  # which cancels the child: it answers this run
    await durable.sleep(2.0)
    return "done"


async def test_a_childs_reply_to_a_parent_run_that_moved_on_is_dropped(
    client: durable.Client,
) -> None:
    """A child answers the parent *run* that started it, and so does the child's successor
    when it continued as new: when that parent run has continued as new too (cancelling
    the child), the child's reply is dropped, not handed to the parent's new run, which
    never asked."""
    async with durable.Worker(
        client, workflows=[moves_on_before_its_child_answers, continues_then_waits]
    ):
        handle = await client.start(moves_on_before_its_child_answers, True)
        assert await handle.result(timeout=20) == "done"
        child = client.get_handle("late-child")
        assert (await child.describe()).status == "cancelled"
    child_runs = [d async for d in client.list(name="continues_then_waits")]
    assert sorted(d.status for d in child_runs) == ["cancelled", "continued_as_new"]
    kinds = [e.kind for e in await handle.history()]  # the parent's last run
    assert not [k for k in kinds if k.startswith("child_")], kinds
