"""Workflows the HTTP API tests start over HTTP (tests/test_server*.py), served by a real
worker: plain values, durable's richer types in their JSON forms, signals, publishing,
failure, and one that waits until it is steered."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import durable


class Color(enum.Enum):
    """An Enum crossing as its value."""

    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Point:
    """A dataclass crossing as an object."""

    x: int
    y: int
    label: str = ""


@durable.activity
async def greet(name: str) -> str:
    return f"hello {name}"


@durable.workflow
async def hello(name: str, times: int = 1) -> list[str]:
    """Greets ``times`` times (one activity each), publishing the count as it goes."""
    out = []
    for n in range(times):
        out.append(await greet(name))
        durable.publish("count", n + 1)
    return out


@durable.workflow
async def rich(
    when: datetime,
    day: date,
    span: timedelta,
    blob: bytes,
    amount: Decimal,
    uid: UUID,
    color: Color,
    point: Point,
    pair: tuple[int, str],
    labels: set[str],
) -> dict[str, Any]:
    """Each argument rebuilt from its JSON form by its hint, returned as the richer type
    (so the result crosses back in its JSON form) with the type it arrived as."""
    types = {k: type(v).__name__ for k, v in locals().items()}
    values = {
        "when": when + timedelta(days=1),
        "day": day,
        "span": span * 2,
        "blob": blob + b"!",
        "amount": amount * 2,
        "uid": uid,
        "color": color,
        "point": Point(point.x + 1, point.y + 1, point.label),
        "pair": pair,
        "labels": labels,
    }
    return {"values": values, "types": types}


@durable.workflow
async def approval(order: str) -> str:
    """Publishes its state, then waits for the signal ``approve`` and returns its value."""
    durable.publish("state", {"order": order, "waiting": True})
    decision = await durable.wait_signal("approve")
    durable.publish("state", {"order": order, "waiting": False})
    return f"{order}: {decision}"


@durable.workflow
async def relay(rounds: int) -> int:
    """Each round waits for the signal ``next``, then greets (no publish, no status change:
    only its steps tell that it moved)."""
    for n in range(rounds):
        await durable.wait_signal("next")
        await greet(str(n))
    return rounds


@durable.workflow
async def fails(why: str) -> None:
    """Fails at once, with ``why`` as the message."""
    raise durable.ApplicationError(why, type="Refused", non_retryable=True)


@durable.workflow
async def fan_out(names: list[str]) -> list[str]:
    """Greets everyone at once (one fan-out group), then approves the lot on a signal."""
    greetings = await durable.map(greet, names)
    await durable.wait_signal("approve")
    return greetings


WORKFLOWS = [hello, rich, approval, relay, fails, fan_out]
ACTIVITIES = [greet]
