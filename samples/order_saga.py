"""A trip booking saga: charge the card, reserve a hotel, reserve a flight, then wait for a
manager's approval. Any failure — a step that fails for good, a rejection, or no answer
within three days — undoes the finished steps in reverse order (`durable.saga`); so does
cancelling the workflow, which then ends cancelled.

    python -m samples.order_saga            # runs three bookings on a fresh SQLite file
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import durable
from durable import ApplicationError, RetryPolicy, activity, workflow
from durable.urls import redact_url as client_url  # never print a password

APPROVAL_TIMEOUT = timedelta(days=3)


@dataclass
class Trip:
    """What to book."""

    id: str
    cents: int
    hotel: str
    flight: str
    approval_timeout: timedelta = APPROVAL_TIMEOUT


@dataclass
class Booking:
    """How it ended: ``status`` is "booked" or "compensated"; ``undone`` lists what was undone."""

    trip: str
    status: str
    receipt: str | None = None
    reservations: list[str] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)
    reason: str = ""


FAST_RETRY = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=100))


@activity(retry=FAST_RETRY)
async def charge_card(trip: Trip) -> str:
    """Charge the trip's price; returns a receipt id."""
    return f"rcpt-{trip.id}-{trip.cents}"


@activity(retry=FAST_RETRY)
async def refund_card(receipt: str) -> None:
    """Refund a charge (compensation of `charge_card`)."""


@activity(retry=FAST_RETRY)
async def reserve_hotel(trip: Trip) -> str:
    """Reserve the hotel; returns a reservation id."""
    if trip.hotel == "full":
        raise ApplicationError(f"hotel for {trip.id} is full", type="NoRooms", non_retryable=True)
    return f"hotel-{trip.hotel}-{trip.id}"


@activity(retry=FAST_RETRY)
async def cancel_hotel(reservation: str) -> None:
    """Cancel a hotel reservation (compensation)."""


@activity(retry=FAST_RETRY)
async def reserve_flight(trip: Trip) -> str:
    """Reserve the flight; returns a reservation id."""
    if trip.flight == "overbooked":
        raise ApplicationError(f"flight for {trip.id} is overbooked", type="NoSeats")
    return f"flight-{trip.flight}-{trip.id}"


@activity(retry=FAST_RETRY)
async def cancel_flight(reservation: str) -> None:
    """Cancel a flight reservation (compensation)."""


@workflow
async def book_trip(trip: Trip) -> Booking:
    """Book the trip or leave nothing behind: each finished step registers its undo.

    A failure inside the saga block (or a cancellation of the workflow) runs the undos
    registered so far, newest first, as durable activities; then the error comes out of
    the block, and the booking says what was undone.
    """
    booking = Booking(trip=trip.id, status="booked")
    try:
        async with durable.saga() as saga:
            booking.receipt = await charge_card(trip)
            saga.compensate(refund_card, booking.receipt)
            durable.publish("progress", "charged")

            hotel = await reserve_hotel(trip)
            booking.reservations.append(hotel)
            saga.compensate(cancel_hotel, hotel)
            durable.publish("progress", "hotel reserved")

            flight = await reserve_flight(trip)
            booking.reservations.append(flight)
            saga.compensate(cancel_flight, flight)
            durable.publish("progress", "flight reserved")

            durable.publish("progress", "awaiting approval")
            try:
                approved = await durable.wait_signal("approval", timeout=trip.approval_timeout)
            except TimeoutError:
                raise ApplicationError(
                    "no approval within the deadline", type="ApprovalTimeout"
                ) from None
            if not approved:
                raise ApplicationError("the manager rejected the trip", type="Rejected")
    except (durable.ActivityError, ApplicationError) as err:
        booking.status = "compensated"
        booking.reason = (
            str(err.cause.message) if isinstance(err, durable.ActivityError) else str(err)
        )
        booking.undone = saga.compensated
        durable.publish("progress", "compensated")
        return booking
    durable.publish("progress", "booked")
    return booking


ACTIVITIES = [
    charge_card,
    refund_card,
    reserve_hotel,
    cancel_hotel,
    reserve_flight,
    cancel_flight,
]


async def main(url: str | None = None) -> list[Booking]:
    """Run three bookings: approved, a flight that fails, and one nobody approves in time."""
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='order-saga-')) / 'saga.db'}"
    print(f"order saga on {client_url(url)}")
    results = []
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[book_trip], activities=ACTIVITIES):
            ok = await client.start(book_trip, Trip("t-1", 120_000, "ritz", "tp-123"), id="trip-1")
            await ok.read("progress", timeout=10)
            while await ok.read("progress") != "awaiting approval":
                await asyncio.sleep(0.05)
            await ok.signal("approval", True)
            results.append(await ok.result(timeout=30))

            bad = await client.start(
                book_trip, Trip("t-2", 80_000, "ibis", "overbooked"), id="trip-2"
            )
            results.append(await bad.result(timeout=30))

            # In production the approval waits three days; here, two seconds.
            late = Trip("t-3", 50_000, "hilton", "ba-9", approval_timeout=timedelta(seconds=2))
            results.append(await client.execute(book_trip, late, id="trip-3", timeout=30))
    for booking in results:
        print(f"  {booking.trip}: {booking.status} {booking.reason} undone={booking.undone}")
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
