"""Workflows whose steps are finished from outside, over HTTP (tests/test_server_tasks.py):
a remote activity served by "another language" (the test, polling), and an external wait
completed by its token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import durable

FAST = durable.RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=50))


@durable.workflow
async def resize(path: str, width: int) -> Any:
    """Calls the activity ``resize_image``, which no Python worker implements."""
    return await durable.call("resize_image", path, width, queue="media-node", retry=FAST)


@durable.workflow
async def resize_or_say_why(path: str) -> str:
    """Like `resize`, but a failure comes back as the workflow's result."""
    try:
        await durable.call("resize_image", path, 1, queue="media-node", retry=FAST)
    except durable.ActivityError as exc:
        return f"failed: {exc.cause.type}: {exc.cause.message}" if exc.cause else "failed"
    return "done"


@durable.workflow
async def awaits_payment(order: str) -> Any:
    """Publishes an external wait's token, then waits for someone to complete it."""
    ext = durable.external("payment")
    durable.publish("token", ext.token)
    try:
        return {"order": order, "payment": await ext.wait(timeout=timedelta(minutes=5))}
    except durable.ExternalError as exc:
        return {"order": order, "failed": str(exc)}


WORKFLOWS = [resize, resize_or_say_why, awaits_payment]
