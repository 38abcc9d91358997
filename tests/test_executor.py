"""One activity attempt offline (`durable.executor.run_attempt`): timeouts and heartbeats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import durable
from durable import payload
from durable.context import ActivityContext, ActivityInfo
from durable.definition import RetryPolicy, activity_definition
from durable.executor import Attempt, AttemptResult, run_attempt


@durable.activity
async def beats_for(seconds: float) -> str:
    """Runs ``seconds`` in all, heartbeating every 50 ms."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        durable.heartbeat()
        await asyncio.sleep(0.05)
    return "done"


@durable.activity
async def silent_for(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def _attempt(fn: Any, *args: Any, **spec: Any) -> AttemptResult:
    defn = activity_definition(fn)
    info = ActivityInfo(
        "wf", "run", defn.name, 1, None, "default", "run:2", datetime.now(UTC), None, None
    )
    data = {
        "name": defn.name,
        "args": payload.encode_args(fn, args, {}, what="arguments"),
        "retry": RetryPolicy().to_dict(),
        "timeout": None,
        "heartbeat_timeout": None,
        **spec,
    }
    return await run_attempt(Attempt("run:2", defn, data, 1, ActivityContext(info)))


async def test_the_heartbeat_timeout_runs_from_the_last_heartbeat_not_the_start() -> None:
    """An attempt that heartbeats every 50 ms for 2.5 times its 1 s heartbeat timeout is
    alive all along: the timeout counts from the last heartbeat (the margin is for a
    loaded machine, where a heartbeat may come late)."""
    result = await _attempt(beats_for, 2.5, heartbeat_timeout=1.0)
    assert result.error is None, result.error
    assert payload.decode(result.result) == "done"


async def test_an_attempt_without_heartbeats_fails_retryably_after_the_heartbeat_timeout() -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    result = await _attempt(silent_for, 30.0, heartbeat_timeout=0.3)
    assert loop.time() - began < 10
    assert result.error is not None
    assert result.retryable
    assert result.error.type == "TimeoutError"
    assert "sent no heartbeat for 0.3s" in result.error.message


async def test_the_attempt_timeout_holds_even_while_heartbeating() -> None:
    result = await _attempt(beats_for, 30.0, timeout=0.4, heartbeat_timeout=5.0)
    assert result.error is not None
    assert result.retryable
    assert "timed out after 0.4s" in result.error.message
