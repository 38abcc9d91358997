"""Remote calls and external waits in the replay engine, offline (`durable.calls`,
`durable.waits`): the commands they issue, how answers resolve them, and replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from test_engine import T0, Journal

import durable
from durable import payload
from durable.errors import NonDeterminismError, RemoteError
from durable.tokens import TaskToken


@dataclass
class Shot:
    path: str
    at: datetime


@durable.workflow
async def remote_then_external(path: str) -> Any:
    shot = await durable.call("snap", path, queue="camera", result_type=Shot, timeout=5)
    ext = durable.external("review")
    durable.publish("token", ext.token)
    verdict = await ext.wait()
    return [shot.path, shot.at.year, verdict, ext.token]


def test_remote_call_and_external_wait_issue_commands_and_replay() -> None:
    j = Journal(remote_then_external, "/p")
    assert j.kinds() == ["workflow_started", "activity_scheduled"]
    scheduled = j.entries[1][1]
    assert (scheduled["name"], scheduled["queue"], scheduled["timeout"]) == ("snap", "camera", 5.0)
    assert payload.decode(scheduled["args"]) == {"args": ["/p"], "kwargs": {}}
    # The JSON form of a datetime, as a remote worker sends it, rebuilt by result_type.
    j.complete(2, {"path": "/p", "at": "2026-03-04T05:06:07Z"})
    assert j.kinds()[-2:] == ["external_started", "published"]
    seq = j.seq_of("external_started")
    token = payload.decode(j.entries[-1][1]["value"])
    assert TaskToken.parse(token) == TaskToken("x", "wf-1", "run-1", seq)
    j.feed("external_completed", {"ref": seq, "result": payload.encode("fine")})
    assert j.run.outcome is not None
    assert payload.decode(j.run.outcome.result) == ["/p", 2026, "fine", token]
    replayed = j.replay()
    assert replayed.outcome is not None
    assert replayed.outcome.result == j.run.outcome.result  # the same token on replay


@durable.workflow
async def calls_other_name(path: str) -> Any:
    return await durable.call("not-snap")


def test_a_recorded_remote_call_of_another_name_is_a_mismatch() -> None:
    j = Journal(remote_then_external, "/p")
    j.complete(2, {"path": "/p", "at": "2026-03-04T05:06:07Z"})
    with pytest.raises(NonDeterminismError, match="'snap'"):
        j.replay(calls_other_name)


@durable.workflow
async def early_answer() -> Any:
    ext = durable.external("early")
    await durable.sleep(10)
    first = await ext.wait()
    return [first, await ext.wait()]  # the answer is kept: waiting again gets it again


def test_an_answer_before_the_wait_is_kept() -> None:
    j = Journal(early_answer)
    seq = j.seq_of("external_started")
    j.feed("external_completed", {"ref": seq, "result": payload.encode(3)})
    assert j.run.outcome is None
    j.feed("timer_fired", {"ref": j.seq_of("timer_started")}, T0 + 10)
    assert j.run.outcome is not None
    assert payload.decode(j.run.outcome.result) == [3, 3]


@durable.workflow
async def failed_external() -> Any:
    ext = durable.external("x")
    try:
        await ext.wait()
    except durable.ExternalError as exc:
        return [exc.name, exc.cause.type, exc.cause.message]
    return None


def test_a_failed_external_wait_raises_external_error() -> None:
    j = Journal(failed_external)
    error = RemoteError("Declined", "no").to_dict()
    j.feed("external_failed", {"ref": j.seq_of("external_started"), "error": error})
    assert j.run.outcome is not None
    assert payload.decode(j.run.outcome.result) == ["x", "Declined", "no"]
