"""Signal handlers (`durable.on_signal`), `durable.wait_condition` and
`durable.all_handlers_finished`, on both backends, live and on replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

import durable
from durable import payload
from durable.cli import render
from durable.definition import workflow_definition
from durable.engine import WorkflowRun
from durable.replayer import RunHistory
from durable.testing import replay


@durable.activity
async def shout(text: str) -> str:
    return text.upper()


@durable.workflow
async def collector() -> list[Any]:
    seen: list[Any] = []

    async def loud(text: str) -> None:
        seen.append(await shout(text))  # an async handler may await activities

    # Signals sent before the handlers exist wait for them (the workflow sleeps first).
    await durable.sleep(0.2)
    durable.on_signal("add", seen.append)
    durable.on_signal("loud", loud)
    durable.on_signal("reset", lambda: seen.clear())  # a signal without a value
    await durable.wait_condition(lambda: "stop" in seen)
    await durable.all_handlers_finished()
    return seen


async def test_signal_handlers_see_signals_in_order_including_earlier_ones(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[collector], activities=[shout]):
        handle = await client.start(collector)
        for value in (1, 2, 3):  # before registration: buffered, then handed over in order
            await handle.signal("add", value)
        await asyncio.sleep(0.4)
        await handle.signal("reset")
        await handle.signal("add", "x")
        await handle.signal("loud", "hey")
        await asyncio.sleep(0.3)
        await handle.signal("add", "stop")
        assert await handle.result(timeout=20) == ["x", "HEY", "stop"]
    store = await client._open()
    run = await store.get_run(handle.id)
    assert run is not None
    history = RunHistory.of(run, await store.read_journal(run.run_id))
    assert replay(history, [collector]) == len(history.entries)


@durable.workflow
async def early_signals() -> list[int]:
    seen: list[int] = []
    await durable.sleep(0.3)
    durable.on_signal("n", seen.append)
    await durable.wait_condition(lambda: len(seen) >= 3, timeout=30)
    return seen


async def test_signals_before_registration_reach_the_handler_in_arrival_order(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[early_signals]):
        handle = await client.start(early_signals)
        for n in (3, 1, 2):
            await handle.signal("n", n)
        assert await handle.result(timeout=20) == [3, 1, 2]


@durable.workflow
async def mixed() -> list[str]:
    got: list[str] = []
    durable.on_signal("handled", got.append)
    got.append(await durable.wait_signal("mailbox", timeout=30))
    await durable.wait_condition(lambda: len(got) >= 2, timeout=30)
    return got


async def test_wait_signal_keeps_working_for_names_without_a_handler(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[mixed]):
        handle = await client.start(mixed)
        await handle.signal("handled", "h")
        await handle.signal("mailbox", "m")
        assert sorted(await handle.result(timeout=20)) == ["h", "m"]


@durable.workflow
async def handler_breaks() -> str:
    def bad(value: int) -> None:
        raise ValueError(f"cannot take {value}")

    durable.on_signal("bad", bad)
    await durable.wait_signal("never", timeout=60)
    return "unreachable"


async def test_a_signal_handler_that_raises_fails_the_run(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[handler_breaks]):
        handle = await client.start(handler_breaks)
        await handle.signal("bad", 7)
        with pytest.raises(durable.WorkflowFailed, match=r"signal 'bad' raised: cannot take 7"):
            await handle.result(timeout=20)


@durable.workflow
async def waits_for_condition(timeout: float) -> str:
    flag: list[bool] = []
    durable.on_signal("go", lambda: flag.append(True))
    try:
        await durable.wait_condition(lambda: bool(flag), timeout=timedelta(seconds=timeout))
    except TimeoutError:
        return "timed out"
    return "went"


async def test_wait_condition_returns_when_true_and_times_out_durably(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[waits_for_condition]):
        quick = await client.start(waits_for_condition, 0.2)
        assert await quick.result(timeout=20) == "timed out"
        assert "timer_started" in [e.kind for e in await quick.history()]
        [step] = [s for s in await quick.steps() if s.kind == "condition"]
        assert step.status == "failed"
        assert step.error is not None
        assert step.error.type == "TimeoutError"
        slow = await client.start(waits_for_condition, 60)
        await slow.signal("go")
        assert await slow.result(timeout=20) == "went"
        [step] = [s for s in await slow.steps() if s.kind == "condition"]
        assert step.status == "completed"


@durable.workflow
async def condition_then_signal() -> str:
    flag: list[bool] = []
    durable.on_signal("go", lambda: flag.append(True))
    await durable.wait_condition(lambda: bool(flag), timeout=timedelta(hours=1))
    return str(await durable.wait_signal("end"))


async def test_a_condition_wait_is_a_step_that_says_what_it_waits_for(
    client: durable.Client,
) -> None:
    """Not a sleep: the console, `durable show` and describe() show a condition, waiting
    until its timeout, then completed once it held (the run still going on)."""
    async with durable.Worker(client, workflows=[condition_then_signal]):
        handle = await client.start(condition_then_signal)
        step = await _condition_step(handle, "waiting")
        assert step.name == "condition"
        assert step.scheduled_at is not None
        assert step.input == step.scheduled_at + timedelta(hours=1)  # its timeout, as due
        [pending] = (await handle.describe()).pending
        assert pending.kind == "condition"
        line = render.progress("running", await handle.steps())  # durable show, the console
        assert "waiting for a condition (durable.wait_condition) until " in line
        await handle.signal("go")
        await _condition_step(handle, "completed")
        assert (await handle.describe()).status == "running"  # waiting for 'end' now
        await handle.signal("end", "done")
        assert await handle.result(timeout=20) == "done"


async def _condition_step(handle: durable.WorkflowHandle[str], status: str) -> Any:
    for _ in range(400):
        found = [s for s in await handle.steps() if s.kind == "condition"]
        if found and found[0].status == status:
            return found[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no condition step {status}: {await handle.steps()}")


@durable.workflow
async def bad_condition() -> None:
    def broken() -> bool:
        raise RuntimeError("predicate broke")

    await durable.wait_condition(broken)


async def test_a_predicate_that_raises_fails_the_wait(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[bad_condition]):
        handle = await client.start(bad_condition)
        with pytest.raises(durable.WorkflowFailed, match="predicate broke"):
            await handle.result(timeout=20)


def test_outside_a_workflow_the_calls_say_where_they_work() -> None:
    with pytest.raises(durable.NotInWorkflowError, match=r"durable.on_signal\(\)"):
        durable.on_signal("x", print)
    with pytest.raises(durable.NotInWorkflowError, match=r"durable.on_update\(\)"):
        durable.on_update("x", print)
    with pytest.raises(TypeError, match="non-empty str name"):
        durable.on_signal("", print)
    with pytest.raises(TypeError, match="handler must be a function"):
        durable.on_update("x", 3)  # type: ignore[arg-type]
    with pytest.raises(durable.NotInWorkflowError):
        asyncio.run(durable.wait_condition(lambda: True))

    async def checks(item: str) -> None:
        pass

    with pytest.raises(TypeError, match="validator must be a plain"):
        durable.on_update("x", print, validator=checks)


# -- the engine alone: conditions re-checked at quiescence, identical on replay ---------


@durable.workflow
async def counter() -> int:
    total: list[int] = []
    durable.on_signal("add", total.append)
    await durable.wait_condition(lambda: sum(total) >= 5)
    return sum(total)


def _signal(name: str, value: Any) -> dict[str, Any]:
    return {"name": name, "value": payload.encode(value)}


def test_engine_checks_conditions_after_each_input_and_replays_the_same() -> None:

    defn = workflow_definition(counter)
    assert defn is not None
    run = WorkflowRun(defn, workflow_id="w", run_id="r", queue="q")
    started = {"args": payload.encode({"args": [], "kwargs": {}})}
    recorded = [("workflow_started", started, run.apply("workflow_started", started, 1.0))]
    for i, value in enumerate((2, 2, 1)):
        data = _signal("add", value)
        recorded.append(("signal_received", data, run.apply("signal_received", data, 2.0 + i)))
    assert [c.kind for c in recorded[-1][2]] == ["workflow_completed"]
    assert recorded[2][2] == []  # 4 < 5: nothing yet
    again = WorkflowRun(defn, workflow_id="w", run_id="r", queue="q")
    for kind, data, commands in recorded:
        again.apply(kind, data, 1.0, recorded=[(c.kind, c.data) for c in commands])
    assert again.outcome is not None
    assert again.outcome.status == "completed"
