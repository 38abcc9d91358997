"""Parent-close policies (`durable.children`): what a closing parent does to the children
still running, whichever way it closes, on every backend; and the recorded policy holding
on replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import durable
from durable import journal, payload
from durable.children import open_children
from durable.definition import check_parent_close, workflow_definition
from durable.engine import WorkflowRun
from durable.rows import JournalEntry
from durable.store import CLOSED_STATUSES

POLICIES = ("cancel", "terminate", "abandon")


@durable.workflow
async def lingering(tag: str) -> str:
    await durable.wait_signal("finish")
    return f"{tag} finished"


@durable.workflow
async def lingering_with_grandchild(tag: str) -> str:
    pending = durable.call(lingering, "grand", id=f"{tag}-grand", parent_close="terminate")
    await durable.wait_signal("finish")
    return str(await pending)


@durable.workflow
async def leaves_children(prefix: str, how: str) -> str:
    """Starts a child per policy (not awaited), then closes as ``how`` says on signal."""
    started = [
        durable.call(lingering, p, id=f"{prefix}-{p}", parent_close=p)
        for p in ("cancel", "abandon")
    ]
    started.append(
        durable.call(
            lingering_with_grandchild,
            f"{prefix}-terminate",
            id=f"{prefix}-terminate",
            parent_close="terminate",
        )
    )
    started.append(durable.call(lingering, "default", id=f"{prefix}-default"))
    await durable.wait_signal("close")
    if how == "fail":
        raise RuntimeError("the parent fails")
    if how == "continue":
        durable.continue_as_new(f"{prefix}-next", "complete")
    if how == "wait":
        await durable.wait_signal("never")
    return f"left {len(started)}"


async def wait_for(handle: durable.WorkflowHandle[Any], *statuses: str) -> str:
    status = ""
    for _ in range(1000):
        try:
            status = (await handle.describe()).status
        except durable.WorkflowNotFound:
            status = "missing"
        if status in statuses:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"{handle.id} stayed {status!r}, never reached {statuses}")


WORKFLOWS = [leaves_children, lingering, lingering_with_grandchild]


async def start_parent(client: durable.Client, prefix: str, how: str) -> Any:
    parent = await client.start(leaves_children, prefix, how, id=prefix)
    for child in ("cancel", "abandon", "terminate", "default"):
        await wait_for(client.get_handle(f"{prefix}-{child}"), "running")
    await wait_for(client.get_handle(f"{prefix}-terminate-grand"), "running")
    return parent


async def statuses(client: durable.Client, prefix: str) -> dict[str, str]:
    """Each child's status once the closed ones settled (abandoned ones stay running)."""
    out = {}
    for child in ("cancel", "abandon", "terminate", "terminate-grand", "default"):
        handle = client.get_handle(f"{prefix}-{child}")
        wanted = ("running",) if child == "abandon" else CLOSED_STATUSES
        out[child] = await wait_for(handle, *wanted)
    return out


EXPECTED = {
    "cancel": "cancelled",
    "abandon": "running",
    "terminate": "terminated",
    "terminate-grand": "terminated",
    "default": "cancelled",
}


@pytest.mark.parametrize("how", ["complete", "fail", "continue"])
async def test_a_parent_closing_by_its_code_applies_each_childs_policy(
    client: durable.Client, how: str
) -> None:
    async with durable.Worker(client, workflows=WORKFLOWS):
        parent = await start_parent(client, "p", how)
        await parent.signal("close")
        if how == "continue":  # the successor starts children of its own; it is not them
            await wait_for(client.get_handle("p-next-cancel"), "running")
        else:
            await wait_for(parent, "completed" if how == "complete" else "failed")
        assert await statuses(client, "p") == EXPECTED
        # the abandoned child goes on by itself; its answer goes to no one
        abandoned = client.get_handle("p-abandon")
        await abandoned.signal("finish")
        assert await abandoned.result(timeout=20) == "abandon finished"
        terminated = await client.get_handle("p-terminate").describe()
        assert terminated.error is not None
        assert "parent workflow 'p' closed" in terminated.error.message


async def test_terminating_a_parent_applies_each_childs_policy(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=WORKFLOWS):
        parent = await start_parent(client, "t", "wait")
        await parent.terminate(reason="bad data")
        assert (await parent.describe()).status == "terminated"
        assert await statuses(client, "t") == EXPECTED
        grand = await client.get_handle("t-terminate-grand").describe()
        assert grand.error is not None
        assert "was terminated" in grand.error.message
        cancelled = await client.get_handle("t-cancel").history()
        reasons = [e.data.get("reason") for e in cancelled if e.kind == "cancel_requested"]
        assert reasons == ["parent workflow 't' was terminated: bad data"]


async def test_terminating_a_terminated_parent_again_finishes_its_childrens_policies(
    client: durable.Client,
) -> None:
    # As if the process terminating the parent died before it reached the children.
    async with durable.Worker(client, workflows=WORKFLOWS):
        parent = await start_parent(client, "r", "wait")
        store = await client._open()
        run = await store.get_run("r")
        assert run is not None
        assert await store.terminate(
            run.run_id, entry_data=b"\x80", error=b"\xc0", now=client.clock.now(), parent_item=None
        )
        await asyncio.sleep(0.2)
        assert (await client.get_handle("r-terminate").describe()).status == "running"
        await parent.terminate()  # the parent is closed: only its children's policies apply
        assert await statuses(client, "r") == EXPECTED


@durable.workflow
async def bad_policy() -> str:
    return str(await durable.call(lingering, "x", parent_close="kill"))


@durable.activity
async def noop() -> None:
    return None


@durable.workflow
async def policy_on_an_activity() -> None:
    await durable.call(noop, parent_close="abandon")


async def test_a_bad_policy_fails_the_call_saying_what_is_allowed(client: durable.Client) -> None:
    async with durable.Worker(
        client, workflows=[bad_policy, policy_on_an_activity, lingering], activities=[noop]
    ):
        with pytest.raises(durable.WorkflowFailed) as failed:
            await client.execute(bad_policy, timeout=20)
        assert failed.value.cause.type == "ValueError"
        assert "parent_close must be one of 'cancel', 'terminate', 'abandon'" in str(
            failed.value.cause.message
        )
        assert "got 'kill'" in failed.value.cause.message
        with pytest.raises(durable.WorkflowFailed) as failed:
            await client.execute(policy_on_an_activity, timeout=20)
        assert failed.value.cause.type == "TypeError"
        assert "'parent_close' is an option for child workflows" in failed.value.cause.message


def test_check_parent_close() -> None:
    for policy in POLICIES:
        assert check_parent_close(policy) == policy
    with pytest.raises(ValueError, match="got None"):
        check_parent_close(None)


# -- the recorded policy ------------------------------------------------------------------

CODE_SAYS = {"policy": "terminate"}


@durable.workflow
async def starts_one_then_waits() -> None:
    durable.call(lingering, "x", id="kid", parent_close=CODE_SAYS["policy"])
    await durable.wait_signal("go")


def run_of(fn: Any) -> WorkflowRun:
    return WorkflowRun(workflow_definition(fn), workflow_id="wf", run_id="run-1", queue="q")


def test_the_recorded_policy_holds_on_replay_and_old_journals_mean_cancel() -> None:
    started = {"args": payload.encode_args(starts_one_then_waits, (), {}, what="args")}
    signal = {"name": "go", "value": payload.encode(None)}
    live = run_of(starts_one_then_waits)
    recorded = [(c.kind, c.data) for c in live.apply("workflow_started", started, 1.0)]
    child = next(d for k, d in recorded if k == "child_started")
    assert child["parent_close"] == "terminate"
    live.evict()

    CODE_SAYS["policy"] = "abandon"  # the code changed; the journal did not
    try:
        replayed = run_of(starts_one_then_waits)
        replayed.apply("workflow_started", started, 1.0, recorded=recorded)
        replayed.apply("signal_received", signal, 2.0)
        assert replayed.outcome is not None
        effects = replayed.take_effects()
        assert effects.terminated_children == [("kid", child["run_id"])]
        assert effects.cancelled_children == []

        # A journal recorded before policies existed has none: "cancel".
        old = [(k, {x: v for x, v in d.items() if x != "parent_close"}) for k, d in recorded]
        replayed = run_of(starts_one_then_waits)
        replayed.apply("workflow_started", started, 1.0, recorded=old)
        replayed.apply("signal_received", signal, 2.0)
        effects = replayed.take_effects()
        assert effects.cancelled_children == [("kid", child["run_id"])]
        assert effects.terminated_children == []
    finally:
        CODE_SAYS["policy"] = "terminate"


def test_open_children_leaves_out_answered_ones() -> None:
    def entry(seq: int, rec: journal.Record) -> JournalEntry:
        return JournalEntry(seq, rec.KIND, 0.0, journal.encode(rec))

    error = durable.RemoteError("X", "no")
    entries = [
        entry(1, journal.ChildStarted("c", "a", "ra", "q", b"", parent_close="abandon")),
        entry(2, journal.ChildStarted("c", "b", "rb", "q", b"")),
        entry(3, journal.ChildStarted("c", "d", "rd", "q", b"", parent_close="terminate")),
        entry(4, journal.ChildFailed("b", error, "failed", "rb")),
        entry(5, journal.ChildCompleted("a", b"\xc0", None)),  # an old answer: by id
    ]
    found = open_children(entries)
    assert [(c.workflow_id, c.run_id, c.parent_close) for c in found] == [("d", "rd", "terminate")]
    # the default is not stored
    assert "parent_close" not in journal.ChildStarted("c", "b", "rb", "q", b"").to_data()


@durable.workflow
async def awaits_its_child(prefix: str) -> str:
    try:
        return str(await durable.call(lingering, "kid", id=f"{prefix}-kid"))
    except durable.ChildWorkflowError as err:
        return f"child {err.cause.type}"


async def test_retrying_a_terminated_parent_hears_how_its_child_closed(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[awaits_its_child, lingering]):
        parent = await client.start(awaits_its_child, "rt", id="rt")
        kid = client.get_handle("rt-kid")
        await wait_for(kid, "running")
        await parent.terminate()
        assert await wait_for(kid, *CLOSED_STATUSES) == "cancelled"
        await parent.retry()
        assert await parent.result(timeout=20) == "child CancelledError"


@durable.workflow
async def starts_and_leaves(prefix: str) -> str:
    for policy in POLICIES:  # started and left in the very step that closes the parent
        durable.call(lingering, policy, id=f"{prefix}-{policy}", parent_close=policy)
    return "gone"


async def test_children_started_in_the_closing_step_get_their_policies(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[starts_and_leaves, lingering]):
        assert await client.execute(starts_and_leaves, "s", id="s", timeout=20) == "gone"
        got = {}
        for policy in POLICIES:
            handle = client.get_handle(f"s-{policy}")
            wanted = ("running",) if policy == "abandon" else CLOSED_STATUSES
            got[policy] = await wait_for(handle, *wanted)
    assert got == {"cancel": "cancelled", "terminate": "terminated", "abandon": "running"}
