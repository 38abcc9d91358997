"""A tiny application for tests/test_cli.py, served by ``durable worker cli_app``."""

from __future__ import annotations

from typing import Any

import durable


@durable.activity
async def greet(name: str) -> str:
    """Make a greeting."""
    return f"hello {name}"


@durable.workflow
async def greet_when_told(name: str) -> dict[str, Any]:
    """Greet, then wait for a ``go`` signal and return its value with the greeting."""
    greeting = await greet(name)
    durable.publish("state", "waiting")
    go = await durable.wait_signal("go")
    return {"greeting": greeting, "go": go}
