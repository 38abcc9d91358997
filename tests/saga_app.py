"""The saga that the worker subprocesses of ``tests/test_sagas.py`` serve and get killed in.

``python -m durable worker tests.saga_app --db URL --lease 1``, from the repository root.
``SAGA_LOG`` names a file to which each activity execution appends
``"<event> <activity> <key> <pid> <attempt>"`` (event ``start`` or ``end``): which steps
really ran, where, and how often.
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

import durable
from durable import ApplicationError, RetryPolicy

#: Retry at once: an attempt lost with a killed worker comes back as soon as it is reclaimed.
AGAIN = RetryPolicy(
    max_attempts=0,
    initial_interval=timedelta(milliseconds=50),
    backoff=1.0,
    max_interval=timedelta(milliseconds=50),
)
KILLED_UNDO_SECONDS = 5.0  # the first undo's first attempt: long enough to be killed in


def _record(event: str, name: str, key: str) -> None:
    path = os.environ.get("SAGA_LOG")
    if not path:
        return
    attempt = durable.activity_info().attempt
    line = f"{event} {name} {key} {os.getpid()} {attempt}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)  # one write: no tearing
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@durable.activity(retry=AGAIN)
async def book_leg(key: str) -> str:
    """Book one leg; its reference is the key."""
    _record("start", "book_leg", key)
    _record("end", "book_leg", key)
    return key


@durable.activity(retry=RetryPolicy(max_attempts=1))
async def fail_leg(key: str) -> None:
    """The leg that cannot be booked."""
    raise ApplicationError(f"{key} cannot be booked", type="NoSeats")


@durable.activity(retry=AGAIN)
async def undo_leg(key: str) -> None:
    """Undo a booked leg; the first attempt of the first undo (``legs - 1``) is slow."""
    _record("start", "undo_leg", key)
    if key == "leg2" and durable.activity_info().attempt == 1:
        await asyncio.sleep(KILLED_UNDO_SECONDS)
    _record("end", "undo_leg", key)


@durable.workflow
async def trip_saga(legs: int) -> None:
    """Book ``legs`` legs, registering each one's undo, then fail: the undos run."""
    async with durable.saga() as saga:
        for i in range(legs):
            saga.compensate(undo_leg, await book_leg(f"leg{i}"))
        await fail_leg("last")
