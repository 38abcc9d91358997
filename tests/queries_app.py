"""Workflows with queries, for tests/test_queries*.py: served in-process by those tests, and
by ``durable worker queries_app`` subprocesses (worker restarts, the CLI)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import durable

#: One entry per time `cart`'s code ran from the top in this process (live or by replay):
#: how a test tells an answer from memory (no new entry) from one by replay (one more).
STARTS: list[str] = []


@dataclasses.dataclass(frozen=True)
class Item:
    name: str
    size: int = 1


@durable.workflow
async def cart(user: str) -> list[str]:
    """Holds the items signalled to it until the signal ``add`` brings ``None``."""
    STARTS.append(user)
    items: list[str] = []
    durable.on_query("items", lambda: list(items))
    durable.on_query("has", lambda item: item in items)

    def count(item: Item, at_least: int = 1) -> bool:
        return isinstance(item, Item) and items.count(item.name) * item.size >= at_least

    durable.on_query("count", count)
    durable.on_query("user", lambda: user)
    while True:
        item = await durable.wait_signal("add")
        if item is None:
            return items
        items.append(item)


@durable.activity
async def charge(cents: int) -> int:
    return cents


def _raises() -> None:
    raise ValueError("no such shelf")


async def _async_fn() -> int:
    return 1


def _swallows() -> str:
    try:
        durable.publish("state", 1)
    except Exception:
        return "swallowed"
    return "published"


@durable.workflow
async def misbehaves() -> str:
    """Registers every kind of query that must be refused; ends on the signal ``go``, or
    when its code is woken by `woken` (which only a query that breaks the rules sets)."""
    woken = asyncio.Event()
    queries: dict[str, Any] = {
        "async_fn": _async_fn,
        "awaits": lambda: durable.sleep(1),
        "activity": lambda: charge(5),
        "publish": lambda: durable.publish("state", 1),
        "swallows": _swallows,
        "tags": lambda: durable.set_tags(stage="x"),
        "continues": lambda: durable.continue_as_new(),
        "random": lambda: durable.random().random(),
        "task": lambda: asyncio.ensure_future(asyncio.sleep(0)),
        "wakes": woken.set,
        "raises": _raises,
        "unencodable": lambda: object(),
        "year": lambda: durable.now().year,
        "registers": lambda: durable.on_query("late", lambda: 1),
        "handles": lambda: durable.on_signal("late", lambda: None),
        "updates": lambda: durable.on_update("late", lambda: None),
    }
    for name, fn in queries.items():
        durable.on_query(name, fn)
    waiter = asyncio.ensure_future(woken.wait())
    signal = asyncio.ensure_future(durable.wait_signal("go"))
    done, _ = await asyncio.wait([waiter, signal], return_when=asyncio.FIRST_COMPLETED)
    for task in (waiter, signal):
        task.cancel()
    return "woken" if waiter in done else "signalled"
