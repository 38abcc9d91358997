"""Repair end to end on every backend: `WorkflowHandle.retry` and `Client.fork`.

Side effects are counted, so "completed steps are not run again" is what is checked, not
what the journal claims: a failure, a fix (a new worker with other behaviour), a retry.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

import durable
from durable import RepairError, RetryPolicy

ONCE = RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=10))
done: Counter[str] = Counter()
broken: set[str] = set()  # what is "deployed" broken right now


@pytest.fixture(autouse=True)
def _reset() -> None:
    done.clear()
    broken.clear()


@durable.activity
async def charge(order: str) -> str:
    done["charge"] += 1
    return f"receipt-{order}"


@durable.activity(retry=ONCE)
async def ship(receipt: str) -> str:
    done["ship"] += 1
    if "ship" in broken:
        raise ConnectionError("carrier down")
    return f"shipped {receipt}"


@durable.activity
async def notify(what: str) -> str:
    done["notify"] += 1
    return what


@durable.workflow
async def order(order_id: str) -> str:
    receipt = await charge(order_id)
    if "code" in broken:
        raise ValueError("bug in the workflow code")
    shipped = await ship(receipt)
    return await notify(shipped)


@durable.workflow
async def approval(order_id: str) -> str:
    receipt = await charge(order_id)
    ok = await durable.wait_signal("go")
    return await notify(f"{receipt} {ok}")


@durable.workflow
async def leg(receipt: str) -> str:
    shipped = await ship(receipt)
    return await notify(shipped)


@durable.workflow
async def trip(order_id: str) -> str:
    receipt = await charge(order_id)
    return await leg(receipt)  # a child workflow


@durable.workflow
async def patient(order_id: str) -> str:
    try:
        return await leg(order_id)
    except durable.ChildWorkflowError:
        return str(await durable.wait_signal("go"))


@durable.workflow
async def shifty(x: str) -> str:
    first = await (notify(x) if "shift" in broken else charge(x))  # a deploy that changes it
    ok = await durable.wait_signal("go")
    return f"{first} {ok}"


@durable.workflow(timeout=timedelta(seconds=0.5))
async def hasty(x: str) -> str:
    receipt = await charge(x)
    return f"{receipt} {await durable.wait_signal('go')}"


def _worker(client: durable.Client) -> durable.Worker:
    return durable.Worker(
        client,
        workflows=[order, approval, leg, trip, patient, shifty, hasty],
        activities=[charge, ship, notify],
    )


async def test_retry_runs_the_failed_step_again_and_no_completed_one(
    client: durable.Client,
) -> None:
    broken.add("ship")
    async with _worker(client):
        handle = await client.start(order, "o1", id="o1")
        with pytest.raises(durable.WorkflowFailed, match=r"carrier down"):
            await handle.result(timeout=20)
    assert done == {"charge": 1, "ship": 2}
    broken.clear()  # the fix is deployed
    async with _worker(client):
        await handle.retry()
        assert await handle.result(timeout=20) == "shipped receipt-o1"
    assert done == {"charge": 1, "ship": 3, "notify": 1}
    kinds = [e.kind for e in await handle.history()]
    assert "workflow_failed" not in kinds
    assert "activity_failed" not in kinds
    assert kinds.count("run_retried") == 1
    assert kinds.count("workflow_started") == 1
    steps = {s.name: s for s in await handle.steps()}
    assert [a.number for a in steps["ship"].attempts] == [1, 2, 3]
    assert [a.error is None for a in steps["ship"].attempts] == [False, False, True]
    retried = next(e for e in await handle.history() if e.kind == "run_retried")
    assert retried.data["status"] == "failed"
    assert retried.data["step"] == steps["ship"].seq
    assert "carrier down" in retried.data["cause"]


async def test_retry_of_code_that_raised_replays_it_with_the_fixed_code(
    client: durable.Client,
) -> None:
    broken.add("code")
    async with _worker(client):
        handle = await client.start(order, "o2", id="o2")
        with pytest.raises(durable.WorkflowFailed, match=r"bug in the workflow code"):
            await handle.result(timeout=20)
    broken.clear()
    async with _worker(client):
        await handle.retry()
        assert await handle.result(timeout=20) == "shipped receipt-o2"
    assert done == {"charge": 1, "ship": 1, "notify": 1}
    retried = next(e for e in await handle.history() if e.kind == "run_retried")
    assert retried.data["step"] is None


async def test_retry_through_a_failed_child_re_opens_the_child_too(
    client: durable.Client,
) -> None:
    broken.add("ship")
    async with _worker(client):
        handle = await client.start(trip, "t1", id="t1")
        with pytest.raises(durable.WorkflowFailed, match="carrier down"):
            await handle.result(timeout=20)
    broken.clear()
    async with _worker(client):
        await handle.retry()
        assert await handle.result(timeout=20) == "shipped receipt-t1"
    assert done == {"charge": 1, "ship": 3, "notify": 1}
    [child] = [s for s in await handle.steps() if s.kind == "child"]
    assert child.status == "completed"
    parent_note = next(e for e in await handle.history() if e.kind == "run_retried")
    assert parent_note.data["step"] == child.seq
    assert child.child_id is not None
    kid = client.get_handle(child.child_id)
    kid_note = next(e for e in await kid.history() if e.kind == "run_retried")
    assert kid_note.data["reason"] == "retried with its parent 't1'"
    assert (await kid.describe()).status == "completed"


async def test_a_failed_child_whose_parent_goes_on_is_not_retried_alone(
    client: durable.Client,
) -> None:
    broken.add("ship")
    async with _worker(client):
        handle = await client.start(patient, "p1", id="p1")
        for _ in range(500):
            if any(p.kind == "signal" for p in (await handle.describe()).pending):
                break
            await asyncio.sleep(0.02)
        [child] = [s for s in await handle.steps() if s.kind == "child"]
        assert child.child_id is not None
        with pytest.raises(RepairError, match="is a child of 'p1', which is still running"):
            await client.get_handle(child.child_id).retry()
        await handle.signal("go", "fine")
        assert await handle.result(timeout=20) == "fine"


async def _until(check: Any) -> None:
    for _ in range(500):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("it did not happen in 10 s")


async def test_a_parked_run_is_tried_again_at_once_by_retry(client: durable.Client) -> None:
    handle = await client.start(shifty, "x", id="s1")

    async def waiting() -> bool:
        return any(p.kind == "signal" for p in (await handle.describe()).pending)

    async with _worker(client):
        await _until(waiting)
    broken.add("shift")  # a deploy that no longer replays the run
    async with _worker(client):
        await handle.signal("go", True)

        async def parked() -> bool:
            return "no longer replays" in ((await handle.describe()).problem or "")

        await _until(parked)
        broken.clear()  # fixed, while that worker goes on running (no restart unparks it)
        await handle.retry()
        assert await handle.result(timeout=20) == "receipt-x True"
    assert done == {"charge": 1}
    note = next(e for e in await handle.history() if e.kind == "run_retried")
    assert note.data["status"] == "running"
    assert "no longer replays" in note.data["cause"]


async def test_a_run_that_timed_out_is_re_opened_with_its_timeout_again(
    client: durable.Client,
) -> None:
    async with _worker(client):
        handle = await client.start(hasty, "h", id="h1")
        with pytest.raises(durable.WorkflowFailed, match=r"timed out|timeout"):
            await handle.result(timeout=20)
        await handle.retry()
        # Open again, waiting where it was, until its timeout (started again) runs out.
        with pytest.raises(durable.WorkflowFailed, match=r"timed out|timeout"):
            await handle.result(timeout=20)
    assert done == {"charge": 1}
    kinds = [e.kind for e in await handle.history()]
    assert kinds.count("run_retried") == 1
    assert kinds.count("timer_fired") == 1  # the first time-out was dropped by the retry


async def test_a_terminated_run_retried_goes_on_where_it_stood(client: durable.Client) -> None:
    async with _worker(client):
        handle = await client.start(approval, "o3", id="o3")
        for _ in range(200):
            if any(p.kind == "signal" for p in (await handle.describe()).pending):
                break
            await asyncio.sleep(0.02)
        await handle.terminate("operator mistake")
        assert (await handle.describe()).status == "terminated"
        await handle.retry()
        assert (await handle.describe()).status == "running"
        await handle.signal("go", True)
        assert await handle.result(timeout=20) == "receipt-o3 True"
    assert done == {"charge": 1, "notify": 1}
    kinds = [e.kind for e in await handle.history()]
    assert "workflow_terminated" not in kinds
    assert "run_retried" in kinds


async def test_fork_reuses_the_prefix_and_runs_the_rest_live(client: durable.Client) -> None:
    async with _worker(client):
        handle = await client.start(order, "o4", id="o4")
        assert await handle.result(timeout=20) == "shipped receipt-o4"
        history = await handle.history()
        # Right after ship was scheduled: charge reused, ship and notify run again.
        at = next(
            e.seq for e in history if e.kind == "activity_scheduled" and e.data["name"] == "ship"
        )
        fork = await client.fork("o4", at_seq=at)
        assert fork.id.startswith("o4-fork-")
        assert await fork.result(timeout=20) == "shipped receipt-o4"
    assert done == {"charge": 1, "ship": 2, "notify": 2}
    copied = await fork.history()
    assert [(e.kind, e.data.get("name")) for e in copied[:at]] == [
        (e.kind, e.data.get("name")) for e in history[:at]
    ]
    assert copied[at].kind == "run_forked"
    assert copied[at].data["at_seq"] == at
    assert (await handle.describe()).status == "completed"  # the source is untouched


async def test_wrong_states_and_bad_seqs_are_refused_with_what_to_do(
    client: durable.Client,
) -> None:
    with pytest.raises(durable.WorkflowNotFound):
        await client.get_handle("nope").retry()
    with pytest.raises(durable.WorkflowNotFound):
        await client.fork("nope", at_seq=1)
    handle = await client.start(approval, "o5", id="o5")  # no worker: pending
    with pytest.raises(RepairError, match=r"still pending.*nothing to retry"):
        await handle.retry()
    async with _worker(client):
        done_handle = await client.start(order, "o6", id="o6")
        await done_handle.result(timeout=20)
    with pytest.raises(RepairError, match=r"completed: there is nothing to retry.*fork"):
        await done_handle.retry()
    length = (await done_handle.describe()).history_length
    with pytest.raises(RepairError, match=rf"past the end.*{length} entries"):
        await client.fork("o6", at_seq=length + 5)
    ended = rf"ended \(seq {length}: workflow_completed\); fork at {length - 2} or"
    with pytest.raises(RepairError, match=ended):
        await client.fork("o6", at_seq=length)
    # the result of notify, without the command completing the run that came with it
    with pytest.raises(
        RepairError,
        match=rf"cuts entries {length - 1}-{length} .* fork at {length - 2} \(before them\)\.",
    ):
        await client.fork("o6", at_seq=length - 1)
    with pytest.raises(
        RepairError, match=r"cuts entries 1-2 of workflow 'o6' apart.*fork at 0 .* or 2"
    ):
        await client.fork("o6", at_seq=1)  # workflow_started, then charge scheduled with it
    with pytest.raises(RepairError, match=r"at_seq must be a whole number"):
        await client.fork("o6", at_seq=-1)
    await client.fork("o6", at_seq=2, new_id="o6-copy")
    with pytest.raises(durable.WorkflowAlreadyExists, match=r"o6-copy"):
        await client.fork("o6", at_seq=2, new_id="o6-copy")
