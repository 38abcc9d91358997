"""`durable demo`: a trip booking run end to end on a SQLite file, printed as it happens.

The workflow books a hotel and a flight in parallel, charges a card (whose first attempt
fails and is retried durably), sleeps on a durable timer, and waits for an approval signal
that the demo sends. Each journal entry is printed as the worker writes it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from . import context as durable
from .client import Client
from .definition import RetryPolicy, activity, workflow
from .urls import redact_url
from .worker import Worker

__all__ = ["book_trip", "run_demo"]

_attempts: dict[str, int] = {}


@activity
async def reserve_hotel(trip: str) -> str:
    """Reserve a hotel room (demo)."""
    await asyncio.sleep(0.05)
    return f"hotel-{trip}"


@activity
async def reserve_flight(trip: str) -> str:
    """Reserve a flight (demo)."""
    await asyncio.sleep(0.08)
    return f"flight-{trip}"


@activity(retry=RetryPolicy(max_attempts=3, initial_interval=timedelta(seconds=0.2)))
async def charge_card(trip: str, cents: int) -> str:
    """Charge the card; the first attempt fails, to show a durable retry."""
    _attempts[trip] = _attempts.get(trip, 0) + 1
    if _attempts[trip] == 1:
        raise ConnectionError("payment gateway timed out")
    return f"receipt-{trip}-{cents}"


@workflow
async def book_trip(trip: str, cents: int) -> dict[str, Any]:
    """Book hotel and flight in parallel, charge, pause, then wait for approval."""
    hotel, flight = await asyncio.gather(reserve_hotel(trip), reserve_flight(trip))
    durable.publish("progress", "reserved")
    receipt = await charge_card(trip, cents)
    await durable.sleep(0.5)
    approved = await durable.wait_signal("approved", timeout=30)
    return {"hotel": hotel, "flight": flight, "receipt": receipt, "approved": approved}


def _summary(data: dict[str, Any]) -> str:
    """One readable line for a journal entry's data."""
    parts = []
    for key in ("name", "ref", "attempt", "key", "value", "result"):
        if key in data and data[key] is not None:
            parts.append(f"{key}={data[key]!r}")
    if "due" in data:
        parts.append(f"due={datetime.fromtimestamp(data['due'], UTC):%H:%M:%S.%f}"[:-3])
    if "error" in data:
        parts.append(f"error={data['error']}")
    return " ".join(parts)


async def run_demo(url: str) -> None:
    """Run `book_trip` with a worker in this process, printing each journal entry."""
    shown = redact_url(url)  # never print a password
    print(f"durable demo on {shown}")
    async with Client(url) as client:
        worker = Worker(
            client, workflows=[book_trip], activities=[reserve_hotel, reserve_flight, charge_card]
        )
        async with worker:
            handle = await client.start(
                book_trip, "lisbon", 42_000, id="demo-trip", if_exists="restart"
            )
            seen = 0
            signalled = False
            while True:
                events = await handle.history()
                for event in events[seen:]:
                    print(f"  {event.seq:>3}  {event.kind:<20} {_summary(event.data)}")
                seen = len(events)
                if events and events[-1].kind.startswith("workflow_"):
                    if events[-1].kind != "workflow_started":
                        break
                desc = await handle.describe()
                if not signalled and any(e.kind == "timer_fired" for e in events):
                    print("  ...  sending signal 'approved' = True")
                    await handle.signal("approved", True)
                    signalled = True
                if desc.status not in ("pending", "running"):
                    break
                await asyncio.sleep(0.05)
            result = await handle.result()
    print(f"result: {result}")
    print()
    print("Try next:")
    print(f"  durable list --db {shown}")
    print(f"  durable show demo-trip --db {shown}")
    print(f"  durable server --db {shown}")
    print("    then open http://127.0.0.1:8233/runs/demo-trip to see the run in the console")
