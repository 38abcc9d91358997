"""The samples, run in-process on a fresh SQLite file, with their outcomes checked exactly;
and the order saga's real three-day approval timeout under time skipping."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

import durable
from durable.testing import WorkflowEnvironment
from samples import media_pipeline, order_saga
from samples.media_pipeline import Report
from samples.order_saga import ACTIVITIES, Booking, Trip, book_trip


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


async def _activities_scheduled(client: durable.Client, workflow_id: str) -> list[str]:
    events = await client.get_handle(workflow_id).history()
    return [e.data["name"] for e in events if e.kind == "activity_scheduled"]


async def test_order_saga_books_one_trip_and_compensates_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path, "saga.db")
    ok, overbooked, unapproved = await order_saga.main(url)

    assert ok == Booking(
        trip="t-1",
        status="booked",
        receipt="rcpt-t-1-120000",
        reservations=["hotel-ritz-t-1", "flight-tp-123-t-1"],
    )
    # The flight fails for good (after its retries): hotel and charge are undone, newest first.
    assert overbooked.status == "compensated"
    assert overbooked.receipt == "rcpt-t-2-80000"
    assert overbooked.reservations == ["hotel-ibis-t-2"]
    assert overbooked.undone == ["cancel_hotel", "refund_card"]
    assert overbooked.reason == "flight for t-2 is overbooked"
    # Nobody approves: all three steps are undone, newest first.
    assert unapproved.status == "compensated"
    assert unapproved.reservations == ["hotel-hilton-t-3", "flight-ba-9-t-3"]
    assert unapproved.undone == ["cancel_flight", "cancel_hotel", "refund_card"]
    assert unapproved.reason == "no approval within the deadline"

    # The journals agree: the undo steps really ran, in reverse order, after the failure.
    async with durable.connect(url) as client:
        assert await _activities_scheduled(client, "trip-1") == [
            "charge_card",
            "reserve_hotel",
            "reserve_flight",
        ]
        assert await _activities_scheduled(client, "trip-2") == [
            "charge_card",
            "reserve_hotel",
            "reserve_flight",
            "cancel_hotel",
            "refund_card",
        ]
        # The undo steps are marked as the saga's compensations.
        steps = await client.get_handle("trip-2").steps()
        assert [(s.kind, s.name) for s in steps if s.kind in ("activity", "compensation")] == [
            ("activity", "charge_card"),
            ("activity", "reserve_hotel"),
            ("activity", "reserve_flight"),
            ("compensation", "cancel_hotel"),
            ("compensation", "refund_card"),
        ]
        retries = [
            e for e in await client.get_handle("trip-2").history() if e.kind == "activity_retrying"
        ]
        assert [e.data["attempt"] for e in retries] == [1, 2]  # FAST_RETRY: 3 attempts
        assert await _activities_scheduled(client, "trip-3") == [
            "charge_card",
            "reserve_hotel",
            "reserve_flight",
            "cancel_flight",
            "cancel_hotel",
            "refund_card",
        ]
        for trip in ("trip-1", "trip-2", "trip-3"):
            assert (await client.get_handle(trip).describe()).status == "completed"

    out = capsys.readouterr().out
    assert f"order saga on {url}" in out
    assert "t-1: booked  undone=[]" in out
    assert (
        "t-2: compensated flight for t-2 is overbooked undone=['cancel_hotel', 'refund_card']"
        in out
    )


async def test_order_saga_approval_times_out_after_three_days_in_virtual_time() -> None:
    async with WorkflowEnvironment(workflows=[book_trip], activities=ACTIVITIES) as env:
        began, began_real = env.now(), time.monotonic()
        handle = await env.client.start(book_trip, Trip("t-9", 10_000, "ritz", "tp-1"), id="t-9")
        booking = await handle.result(timeout=30)
        elapsed = time.monotonic() - began_real
        skipped = env.now() - began

    assert booking.status == "compensated"
    assert booking.reason == "no approval within the deadline"
    assert booking.undone == ["cancel_flight", "cancel_hotel", "refund_card"]
    # The clock jumped to the approval deadline and no further; real time barely moved.
    assert timedelta(days=3) <= skipped < timedelta(days=3, minutes=1)
    assert elapsed < 5


async def test_order_saga_approval_after_two_days_books_the_trip() -> None:
    async with WorkflowEnvironment(workflows=[book_trip], activities=ACTIVITIES) as env:
        began = env.now()
        handle = await env.client.start(book_trip, Trip("t-8", 10_000, "ritz", "tp-1"), id="t-8")
        await env.sleep(timedelta(days=2))
        assert await handle.read("progress") == "awaiting approval"
        await handle.signal("approval", True)
        booking = await handle.result(timeout=30)
        # The approval beat the deadline, whose timer then never fired.
        assert abs(env.now() - began - timedelta(days=2)) < timedelta(seconds=1)
        kinds = [e.kind for e in await handle.history()]
        assert kinds.count("timer_started") == 1
        assert "timer_fired" not in kinds

    assert booking.status == "booked"
    assert booking.undone == []


async def test_media_pipeline_retries_flaky_steps_visibly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _url(tmp_path, "media.db")
    reports = await media_pipeline.main(url)

    assert reports == [
        Report(
            video=name,
            rendition=f"{name}.mp4",
            frames=24,
            faces=["ada", "grace"],
            transcript="hello world",
            url=f"https://cdn.example/{name}.mp4",
        )
        for name in ("keynote", "interview")
    ]
    async with durable.connect(url) as client:
        for workflow_id in ("video-keynote", "video-interview"):
            handle = client.get_handle(workflow_id)
            events = await handle.history()
            names = {e.seq: e.data["name"] for e in events if e.kind == "activity_scheduled"}
            retries = [
                (
                    names[e.data["ref"]],
                    e.data["attempt"],
                    e.data["error"].type,
                    e.data["error"].message,
                )
                for e in events
                if e.kind == "activity_retrying"
            ]
            assert sorted(retries) == [
                ("recognize_faces", 1, "ConnectionError", "face service unavailable"),
                ("recognize_faces", 2, "ConnectionError", "face service unavailable"),
                ("recognize_speech", 1, "TimeoutError", "speech service timed out"),
            ]
            assert sorted(names.values()) == sorted(
                [
                    "transcode",
                    "capture_frames",
                    "recognize_faces",
                    "recognize_speech",
                    "audit",
                    "upload",
                ]
            )
            assert await handle.read("stage") == "done"
            assert (await handle.describe()).status == "completed"

    out = capsys.readouterr().out
    assert "keynote: 24 frames, faces ['ada', 'grace'], 'hello world'" in out
    assert "3 failed attempts were retried for video-keynote" in out
