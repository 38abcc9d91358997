"""`durable.notify.Hub`: in-process wake-ups by topic, with ``since`` and bounded memory."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from durable import notify
from durable.notify import ALL, Hub
from durable.topics import TOPIC_LIMITS


async def _returns_at_once(hub: Hub, topics: list[str], since: int | None = None) -> bool:
    started = time.monotonic()
    await hub.wait(topics, 5.0, since)
    return time.monotonic() - started < 2.5


async def test_notify_wakes_waiters_on_its_topics_only() -> None:
    hub = Hub()
    on_a = asyncio.create_task(hub.wait(["a"], 5.0))
    on_b = asyncio.create_task(hub.wait(["b"], 5.0))
    await asyncio.sleep(0.01)
    hub.notify(["a"])
    await asyncio.wait_for(on_a, 1.0)
    await asyncio.sleep(0.01)
    assert not on_b.done()
    hub.notify([ALL])  # wakes everyone
    await asyncio.wait_for(on_b, 1.0)


async def test_since_catches_a_notification_between_query_and_wait() -> None:
    hub = Hub()
    mark = hub.generation
    hub.notify(["run:w"])  # lands after the caller's query, before its wait
    assert await _returns_at_once(hub, ["run:w"], since=mark)
    later = hub.generation
    started = time.monotonic()
    await hub.wait(["run:w"], 0.2, since=later)  # nothing new: waits out its timeout
    assert time.monotonic() - started >= 0.15
    assert hub.notified_since(["run:w"], mark)
    assert not hub.notified_since(["run:w"], later)
    assert not hub.notified_since(["run:other"], mark)


async def test_notify_from_another_thread_wakes_the_waiters_loop() -> None:
    hub = Hub()
    waiter = asyncio.create_task(hub.wait(["t"], 5.0))
    await asyncio.sleep(0.01)
    threading.Thread(target=hub.notify, args=(["t"],)).start()
    await asyncio.wait_for(waiter, 2.0)


async def test_memory_of_topics_is_bounded_and_forgetting_errs_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One topic per workflow would grow the hub forever: it remembers the most recent
    `TOPICS_REMEMBERED`. A forgotten topic counts as notified at the latest forgotten
    generation, so a wait whose ``since`` predates that returns at once (a spurious return,
    which callers allow), and one whose ``since`` is later waits as usual."""
    monkeypatch.setattr(notify, "TOPICS_REMEMBERED", 100)
    hub = Hub()
    mark = hub.generation
    hub.notify(["run:first"])
    for i in range(1000):
        hub.notify(["runs", f"run:{i}"])  # "runs" stays recent: it is notified every time
    assert len(hub._topic_generation) <= 100
    assert "runs" in hub._topic_generation
    assert "run:first" not in hub._topic_generation
    assert hub.notified_since(["run:first"], mark)  # forgotten, but not missed
    assert await _returns_at_once(hub, ["run:first"], since=mark)
    now = hub.generation
    assert not hub.notified_since(["run:first"], now)
    started = time.monotonic()
    await hub.wait(["run:first"], 0.2, since=now)
    assert time.monotonic() - started >= 0.15


def test_pinned_topics_are_never_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker asks on every step whether queue limits changed (`TOPIC_LIMITS`): forgetting
    it among thousands of workflow topics would answer yes, and cost the worker its fast
    path. Pinned topics answer exactly; ``ALL`` still counts."""
    monkeypatch.setattr(notify, "TOPICS_REMEMBERED", 100)
    hub = Hub()
    hub.notify([TOPIC_LIMITS])
    mark = hub.generation
    assert hub.pinned_since(TOPIC_LIMITS, mark - 1)
    for i in range(1000):
        hub.notify([f"run:{i}"])
    assert hub.notified_since([TOPIC_LIMITS], mark)  # forgotten: an early yes
    assert not hub.pinned_since(TOPIC_LIMITS, mark)  # pinned: exact
    hub.notify([TOPIC_LIMITS])
    assert hub.pinned_since(TOPIC_LIMITS, mark)
    mark = hub.generation
    hub.notify([ALL])
    assert hub.pinned_since(TOPIC_LIMITS, mark)
