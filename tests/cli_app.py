"""A tiny application for the CLI tests, served by ``durable worker cli_app``."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import durable


@durable.activity
async def greet(name: str) -> str:
    """Make a greeting."""
    return f"hello {name}"


@durable.activity(
    retry=durable.RetryPolicy(max_attempts=2, initial_interval=timedelta(seconds=0.1))
)
async def explode(why: str) -> None:
    """Fail every attempt."""
    raise ValueError(why)


@durable.activity
async def crawl(pages: int) -> int:
    """Take a while, heartbeating the page reached (and noticing cancellation)."""
    for page in range(pages):
        durable.heartbeat({"page": page})
        await asyncio.sleep(0.05)
    return pages


@durable.workflow
async def greet_when_told(name: str) -> dict[str, Any]:
    """Greet, then wait for a ``go`` signal and return its value with the greeting."""
    greeting = await greet(name)
    durable.publish("state", "waiting")
    go = await durable.wait_signal("go")
    return {"greeting": greeting, "go": go}


@durable.workflow
async def fail_with(why: str) -> None:
    """Fail: an activity that fails each of its two attempts."""
    await explode(why)


@durable.workflow
async def crawl_pages(pages: int) -> int:
    """Run one long activity."""
    return await crawl(pages)


@durable.workflow
async def approve_then_sleep() -> str:
    """Wait up to two days for ``approve``, then sleep three days."""
    durable.publish("stage", {"waiting": "approval"})
    await durable.wait_signal("approve", timeout=timedelta(days=2))
    durable.publish("stage", {"waiting": "timer"})
    await durable.sleep(timedelta(days=3))
    return "done"


@durable.workflow
async def fail_slowly(why: str) -> None:
    """Fail an attempt, and wait ten minutes before the next."""
    ten = timedelta(minutes=10)
    later = durable.RetryPolicy(max_attempts=2, initial_interval=ten, max_interval=ten)
    await durable.call(explode, why, retry=later)
