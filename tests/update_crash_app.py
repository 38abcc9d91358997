"""A workflow whose update handler awaits a slow activity, served by the worker processes
that ``tests/test_update_crash.py`` kills (``python -m durable worker
tests.update_crash_app``). ``CRASH_LOG`` names a file each activity start appends to."""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import durable

AGAIN = durable.RetryPolicy(
    max_attempts=0,
    initial_interval=timedelta(milliseconds=50),
    backoff=1.0,
    max_interval=timedelta(milliseconds=50),
)


@durable.activity(retry=AGAIN)
async def credit(amount: int) -> int:
    """Log the start (pid), then take long enough for the test to kill the worker."""
    path = os.environ.get("CRASH_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"start {os.getpid()}\n".encode())
        finally:
            os.close(fd)
    await asyncio.sleep(1.5)
    return amount


@durable.workflow
async def account() -> int:
    """Deposits arrive as updates; each returns the new balance."""
    balance = [0]

    async def deposit(amount: int) -> int:
        balance[0] += await credit(amount)
        return balance[0]

    durable.on_update("deposit", deposit)
    await durable.wait_signal("close", timeout=120)
    await durable.all_handlers_finished()
    return balance[0]
