"""Workflows and activities that the worker subprocesses of ``tests/test_crash.py`` serve.

The crash tests run ``python -m durable worker tests.crash_app --db URL`` from the repository
root (with ``--lease 2``, mostly) and kill those processes for real.

``CRASH_LOG``, an environment variable, names a file to which every activity execution
appends one line, ``"<event> <activity> <key> <pid> <attempt>"`` with event ``start`` or
``end``: the side record that shows which steps really ran, where, and how often
(activities are at-least-once, so a step may run more than once).
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import durable

#: Retry forever, quickly: an attempt lost with a killed worker comes back at once.
AGAIN = durable.RetryPolicy(
    max_attempts=0,
    initial_interval=timedelta(milliseconds=50),
    backoff=1.0,
    max_interval=timedelta(milliseconds=50),
)
STEPS = 5  # sequential activities in `pipeline`, before its two parallel branches
MODULUS = 1_000_003


def _record(event: str, name: str, key: str) -> None:
    path = os.environ.get("CRASH_LOG")
    if not path:
        return
    attempt = durable.activity_info().attempt
    line = f"{event} {name} {key} {os.getpid()} {attempt}\n".encode()
    # One write() on an O_APPEND descriptor: lines from many processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _pause(n: int, k: int) -> float:
    """50-300 ms, varying by workflow and step, so kills catch workflows at every point."""
    return 0.05 + ((n * 7919 + k * 104_729) % 251) / 1000


def mix(x: int, n: int, k: int) -> int:
    """What step ``k`` of workflow ``n`` computes from ``x``."""
    return (x * 31 + n * 17 + k + 1) % MODULUS


@durable.activity(retry=AGAIN)
async def step(n: int, k: int, x: int) -> int:
    """Step ``k`` of `pipeline` ``n``: a short pause, then `mix`."""
    _record("start", "step", f"{n}:{k}")
    await asyncio.sleep(_pause(n, k))
    _record("end", "step", f"{n}:{k}")
    return mix(x, n, k)


@durable.activity(retry=AGAIN)
async def branch(n: int, side: str, x: int) -> int:
    """One of `pipeline`'s two parallel branches."""
    k = STEPS if side == "a" else STEPS + 1
    _record("start", "branch", f"{n}:{side}")
    await asyncio.sleep(_pause(n, k))
    _record("end", "branch", f"{n}:{side}")
    return mix(x, n, k)


@durable.workflow
async def pipeline(n: int) -> list[int]:
    """Five sequential steps, a two-way gather, a 0.2 s durable timer."""
    x = n
    for k in range(STEPS):
        x = await step(n, k, x)
    a, b = await asyncio.gather(branch(n, "a", x), branch(n, "b", x))
    await durable.sleep(0.2)
    return [n, x, a, b]


def expected(n: int) -> list[int]:
    """What `pipeline(n)` returns, computed without durable."""
    x = n
    for k in range(STEPS):
        x = mix(x, n, k)
    return [n, x, mix(x, n, STEPS), mix(x, n, STEPS + 1)]


@durable.activity(retry=AGAIN)
async def slow(key: str, seconds: float) -> str:
    """Takes ``seconds``; returns ``key@pid`` so the result names the process that ran it.

    A test holds the step while the file ``CRASH_LOG + ".hold-" + key`` exists."""
    _record("start", "slow", key)
    hold = os.environ.get("CRASH_LOG", "") + f".hold-{key}"
    while await asyncio.to_thread(os.path.exists, hold):
        await asyncio.sleep(0.01)
    await asyncio.sleep(seconds)
    _record("end", "slow", key)
    return f"{key}@{os.getpid()}"


@durable.workflow
async def relay(count: int, seconds: float) -> list[str]:
    """``count`` sequential `slow` steps: which process ran each shows in the result."""
    return [await slow(f"s{i}", seconds) for i in range(count)]


@durable.activity(retry=AGAIN)
async def lapsing(first: float, later: float) -> int:
    """Takes ``first`` seconds on attempt 1 and ``later`` on the next; returns its attempt."""
    attempt = durable.activity_info().attempt
    _record("start", "lapsing", "0")
    await asyncio.sleep(first if attempt == 1 else later)
    _record("end", "lapsing", "0")
    return attempt


@durable.workflow
async def lapse(first: float, later: float) -> int:
    """One `lapsing` activity: the result says which attempt's result was committed."""
    return await lapsing(first, later)
