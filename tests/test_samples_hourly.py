"""samples/hourly_pipeline.py: the hourly schedule firing in virtual time (three hours in
well under a second), each run billing its hour from the lake with a corrupt shard
tolerated; and the sample itself on a SQLite file, whose newest hour fails on a shard that
has not landed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

import durable
from durable.steplogs import Log
from durable.testing import WorkflowEnvironment
from samples import hourly_pipeline
from samples.hourly_pipeline import (
    ACTIVITIES,
    CENTS_PER_1000_CALLS,
    SHARDS,
    Bill,
    HourReport,
    hour_of,
    hourly_usage,
    land,
)


def expected_bills(lake: Path, hour: str, skip: tuple[int, ...] = ()) -> list[Bill]:
    """The bills of an hour, read from its shard files directly (minus ``skip``)."""
    calls: Counter[str] = Counter()
    for index in range(SHARDS):
        if index not in skip:
            path = lake / hour / f"shard-{index:02d}.jsonl"
            for line in path.read_text().splitlines():
                record = json.loads(line)
                calls[record["user"]] += record["calls"]
    return [
        Bill(hour, user, n, n * CENTS_PER_1000_CALLS // 1000) for user, n in sorted(calls.items())
    ]


async def _logs_settled(handle: durable.WorkflowHandle[object], level: str) -> list[Log]:
    for _ in range(400):  # stored shortly after the attempt, batched
        got = await handle.logs()
        if any(r.level == level for r in got):
            return got
        await asyncio.sleep(0.025)
    return await handle.logs()


async def test_the_schedule_bills_each_hour_at_the_top_of_the_next_in_virtual_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="samples")
    lake = tmp_path / "lake"
    async with WorkflowEnvironment(workflows=[hourly_usage], activities=ACTIVITIES) as env:
        top = env.now().replace(minute=0, second=0, microsecond=0)
        ticks = [top + timedelta(hours=n) for n in (1, 2, 3)]
        for n, tick in enumerate(ticks):
            land(lake, hour_of(tick), corrupt=5 if n == 1 else None)
        schedule = await env.client.schedule(
            hourly_usage, str(lake), id="hourly-usage", cron="0 * * * *"
        )
        assert (await schedule.describe()).next_fire_times[:3] == ticks
        await env.sleep(ticks[-1] - env.now() + timedelta(minutes=1))
        runs = (await schedule.describe()).recent_runs
        assert [(r.id, r.scheduled_at, r.status) for r in reversed(runs)] == [
            (f"hourly-usage@{t.strftime('%Y-%m-%dT%H:%M:%S')}Z", t, "completed") for t in ticks
        ]
        reports = [await env.client.get_handle(r.id, hourly_usage).result() for r in reversed(runs)]
        corrupt = env.client.get_handle(runs[1].id)
        steps = await corrupt.steps()
        logs = await _logs_settled(corrupt, "ERROR")

    hours = [hour_of(t) for t in ticks]
    assert reports == [
        HourReport(hours[0], SHARDS, [], expected_bills(lake, hours[0])),
        HourReport(hours[1], SHARDS - 1, [5], expected_bills(lake, hours[1], skip=(5,))),
        HourReport(hours[2], SHARDS, [], expected_bills(lake, hours[2])),
    ]
    # Every shard a step of its own, read once; the corrupt one failed at once (not retried).
    reads = [s for s in steps if s.name == "read_shard"]
    assert [s.input[0]["index"] for s in reads] == list(range(SHARDS))
    assert [(s.status, len(s.attempts)) for s in reads] == [("completed", 1)] * 5 + [
        ("failed", 1)
    ] + [("completed", 1)] * 2
    assert [s.name for s in steps if s.kind == "activity"][SHARDS:] == ["bill_user"] * len(
        reports[1].bills
    )
    errors = [r.message for r in logs if r.level == "ERROR"]
    assert errors == [f"shard 5 of {hours[1]}: line 18 is not JSON"]


async def test_the_sample_backfills_three_hours_and_retries_the_one_a_late_shard_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'hourly.db'}"
    lake = tmp_path / "lake"
    reports = await hourly_pipeline.main(url, lake)

    hours = sorted(p.name for p in lake.iterdir())
    assert [r.hour for r in reports] == hours
    for report in reports[:2]:
        assert report == HourReport(report.hour, SHARDS, [], expected_bills(lake, report.hour))
    # Retried once shard 2 landed: read then, and billed with the corrupt shard set aside.
    assert reports[2] == HourReport(
        hours[2], SHARDS - 1, [5], expected_bills(lake, hours[2], skip=(5,))
    )
    async with durable.connect(url) as client:
        schedule = client.get_schedule("hourly-usage")
        runs = (await schedule.describe()).recent_runs
        assert [r.status for r in runs] == ["completed"] * 3
        handle = client.get_handle(runs[0].id)
        steps = await handle.steps()
        kinds = [e.kind for e in await handle.history()]
    # The late shard's step ran again (its attempts numbered on), nothing else was re-read.
    reads = {s.input[0]["index"]: s for s in steps if s.name == "read_shard"}
    assert sorted(reads) == list(range(SHARDS))
    assert [(a.number, a.error is None) for a in reads[2].attempts] == [
        (1, False),
        (2, False),
        (3, False),
        (4, True),
    ]
    assert reads[2].status == "completed"
    assert [(s.status, len(s.attempts)) for i, s in reads.items() if i != 2] == [
        ("failed" if i == 5 else "completed", 1) for i in reads if i != 2
    ]
    assert kinds.count("run_retried") == 1
    assert kinds.count("workflow_failed") == 0  # cut off by the retry; the note says so
    out = capsys.readouterr().out
    assert f"{runs[0].id} failed: durable.map over 'read_shard': 2 of 8 items failed" in out
    assert "shard 2 landed; handle.retry() reads it where the run stopped" in out
    assert f"{hours[2]}: 7/8 shards read (shards set aside: [5]); billed ada $" in out
