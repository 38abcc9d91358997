"""`durable.frozen.build` and the records the worker makes with it on its hot path: the same
objects as their constructors make, and the same journal bytes as before it was used."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import pytest

import durable
from durable import frozen, journal, payload
from durable.context import ActivityInfo
from durable.definition import RetryPolicy, workflow_definition
from durable.engine import WorkflowRun
from durable.executor import Attempt
from durable.plan import RunState
from durable.retry import AttemptResult
from durable.store import NewTask


@durable.activity(name="frozen_probe")
async def probe(i: int, note: str = "") -> int:
    return i


@durable.workflow(name="frozen_flow")
async def flow(n: int) -> int:
    first, second = await asyncio.gather(
        probe(n, note="x"),
        durable.call(
            probe,
            n,
            retry=RetryPolicy(max_attempts=3),
            timeout=dt.timedelta(seconds=5),
            heartbeat_timeout=2,
            key="k",
            priority=2,
        ),
    )
    return int(first + second)


def _fields(cls: type) -> dict[str, Any]:
    """A value for every field of ``cls``, distinct per field."""
    return {f.name: f"{f.name}-value" for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(
    "cls",
    [
        ActivityInfo,
        Attempt,
        AttemptResult,
        NewTask,
        RunState,
        journal.ActivityScheduled,
        journal.ActivityCompleted,
    ],
)
def test_build_makes_what_the_constructor_makes(cls: type) -> None:
    values = _fields(cls)
    built, made = frozen.build(cls, dict(values)), cls(**values)
    assert built == made
    assert repr(built) == repr(made)
    assert hash(built) == hash(made)
    assert type(built) is cls
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.name = "changed"  # type: ignore[attr-defined]


def test_first_step_journal_bytes_are_unchanged() -> None:
    """The bytes of the first step's commands and of an activity's completion, as recorded
    before the hot path built these records with `frozen.build` (taken from 247f996)."""
    engine = WorkflowRun(workflow_definition(flow), workflow_id="wf", run_id="run-1", queue="q")
    started = journal.WorkflowStarted(payload.encode_args(flow, (7,), {}, what="input"))
    commands = engine.apply(started.KIND, started.to_data(), 1000.0)
    assert [(c.seq, c.kind) for c in commands] == [
        (2, "activity_scheduled"),
        (3, "activity_scheduled"),
    ]
    assert [payload.envelope(c.data).hex() for c in commands] == [
        "89a46e616d65ac66726f7a656e5f70726f6265a57175657565a171a461726773c41782a461726773"
        "9107a66b776172677381a46e6f7465a178a5726574727985ac6d61785f617474656d70747303b069"
        "6e697469616c5f696e74657276616ccb3ff0000000000000a76261636b6f6666cb40000000000000"
        "00ac6d61785f696e74657276616ccb4059000000000000ad6e6f6e5f726574727961626c6590a774"
        "696d656f7574c0b16865617274626561745f74696d656f7574c0b17363686564756c655f746f5f63"
        "6c6f7365c0a66272616e6368a130a567726f757002",
        "8ba46e616d65ac66726f7a656e5f70726f6265a57175657565a171a461726773c41082a461726773"
        "9107a66b776172677380a5726574727985ac6d61785f617474656d70747303b0696e697469616c5f"
        "696e74657276616ccb3ff0000000000000a76261636b6f6666cb4000000000000000ac6d61785f69"
        "6e74657276616ccb4059000000000000ad6e6f6e5f726574727961626c6590a774696d656f7574cb"
        "4014000000000000b16865617274626561745f74696d656f7574cb4000000000000000b173636865"
        "64756c655f746f5f636c6f7365c0a66272616e6368a130a567726f757002a36b6579a16ba8707269"
        "6f7269747902",
    ]
    engine.evict()
    done = journal.ActivityCompleted(2, payload.encode(7), 1001.0, "w", 1)
    assert journal.encode(done).hex() == (
        "85a372656602a6726573756c74c40107aa737461727465645f6174cb408f480000000000a6776f72"
        "6b6572a177a7617474656d707401"
    )
    assert journal.encode(journal.WorkflowCancelled()) == b"\x80"
    assert journal.TimerFired(4).to_data() == {"ref": 4}
