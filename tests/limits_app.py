"""Workflows and activities the worker subprocesses of ``tests/test_limits.py`` serve.

Each activity appends a line to the file ``$LIMITS_LOG`` when it starts and when it ends
(``start|end INDEX KEY TIME PID``), one ``write`` each (O_APPEND: lines of the two worker
processes never mix), so the test measures the overlap the workers really produced.
"""

from __future__ import annotations

import asyncio
import os
import time

import durable
from durable import activity, workflow


def _log(event: str, index: int, key: str) -> None:
    line = f"{event} {index} {key} {time.time():.6f} {os.getpid()}\n"
    fd = os.open(os.environ["LIMITS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@activity(queue="media")
async def transcode(index: int, key: str, hold: float) -> int:
    """Holds a slot of queue ``media`` for ``hold`` seconds."""
    _log("start", index, key)
    await asyncio.sleep(hold)
    _log("end", index, key)
    return index


@activity(queue="ticks")
async def tick(index: int) -> int:
    """Starts, on queue ``ticks`` (rate-limited in the test)."""
    _log("start", index, "-")
    return index


@workflow
async def fan(keys: list[str], hold: float) -> int:
    """One `transcode` per key, all at once, each with its key."""
    done = await asyncio.gather(
        *(durable.call(transcode, i, k, hold, key=k) for i, k in enumerate(keys))
    )
    return len(done)


@workflow
async def ticks(n: int) -> int:
    """``n`` ticks at once."""
    return len(await asyncio.gather(*(tick(i) for i in range(n))))
