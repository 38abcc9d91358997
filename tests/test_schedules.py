"""Schedules (`durable.schedules`) through the client: bad input, catch-up after downtime,
restarts, DST, pause/resume/trigger/backfill/delete — on both backends, with explicit
virtual times and `durable.schedules.fire_due` called as a worker's timer loop calls it —
and each overlap policy end to end in a `WorkflowEnvironment` (virtual time)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import durable
from durable.clock import VirtualClock
from durable.schedules import fire_due
from durable.testing import WorkflowEnvironment
from durable.ticks import Overlap

T0 = datetime(2026, 12, 2, 17, 0, 30, tzinfo=UTC).timestamp()  # half a minute past 17:00


@durable.workflow
async def stamp(label: str) -> str:
    """Says which tick it was started for."""
    at = durable.info().scheduled_at
    return f"{label} {at.isoformat() if at else None}"


@durable.workflow
async def slow(label: str) -> str:
    """Runs for 150 s: longer than a per-minute schedule's interval."""
    await durable.sleep(150)
    return label


def minute(workflow_id: str) -> int:
    """The minute of a run id ``s@2026-12-02T17:MM:00Z``."""
    return int(workflow_id.split("@")[1][14:16])


async def runs_of(client: durable.Client, schedule_id: str) -> Counter[str]:
    """How many runs (current or not) each workflow id of the schedule has."""
    store = await client._open()
    runs = await store.list_runs(limit=10_000, tags={"durable.schedule": schedule_id})
    return Counter(r.workflow_id for r in runs)


async def test_bad_input_is_refused_with_what_and_how_and_nothing_is_written(
    store_url: str,
) -> None:
    async with durable.connect(store_url) as client:
        bad: list[tuple[dict[str, Any], str]] = [
            ({"cron": "every hour"}, "does not parse"),
            ({"cron": "0 * * * *", "timezone": "Europe/Berlinn"}, "Unknown time zone"),
            ({"cron": "0 * * * *", "overlap": "queue"}, "overlap must be one of"),
            ({"cron": "0 * * * *", "catchup_window": -1}, "catchup_window must be zero or more"),
            ({"cron": "0 * * * *", "id": "a b"}, "schedule id must be"),
        ]
        for options, says in bad:
            kwargs = {"id": "s", **options}
            with pytest.raises(ValueError, match=says):
                await client.schedule(stamp, "x", **kwargs)
        assert await client.list_schedules() == []
        handle = await client.schedule(stamp, "x", id="s", cron="0 * * * *")
        start = datetime(2026, 12, 2, 12, tzinfo=UTC)
        with pytest.raises(ValueError, match="is after its end"):
            await handle.backfill(start, start - timedelta(hours=1))
        with pytest.raises(ValueError, match="more than 1000 ticks"):
            await handle.backfill(start, start + timedelta(days=60))
        with pytest.raises(durable.ScheduleNotFound, match="No schedule with id 'nope'"):
            await client.get_schedule("nope").describe()
        assert await runs_of(client, "s") == Counter()


async def test_catchup_window_after_downtime_and_nothing_fired_twice_after_a_restart(
    store_url: str,
) -> None:
    clock = VirtualClock(T0)
    async with durable.connect(store_url, clock=clock) as client:
        await client.schedule(
            stamp,
            "x",
            id="every-minute",
            cron="* * * * *",
            overlap="allow_all",
            catchup_window=timedelta(seconds=150),
        )
        store = await client._open()
        assert await fire_due(client, store, T0) == (T0 + 30, None)  # 17:01:00 is next
        # Workers down from 17:00:30 to 17:10:10: 17:01..17:07 are older than 150 s.
        clock.advance_to(T0 + 580)
        await fire_due(client, store, clock.now())
        assert sorted(map(minute, await runs_of(client, "every-minute"))) == [8, 9, 10]
    # A restart: new client, new store; the same instant and later fire nothing twice.
    async with durable.connect(store_url, clock=clock) as client:
        store = await client._open()
        await fire_due(client, store, clock.now())
        for later in (T0 + 600, T0 + 630, T0 + 660):
            clock.advance_to(later)
            await fire_due(client, store, later)
            await fire_due(client, store, later)
        runs = await runs_of(client, "every-minute")
        assert sorted(map(minute, runs)) == [8, 9, 10, 11]
        assert set(runs.values()) == {1}
        description = await client.get_schedule("every-minute").describe()
        assert [minute(r.id) for r in description.recent_runs] == [11, 10, 9, 8]
        assert {r.status for r in description.recent_runs} == {"pending"}


async def test_pause_resume_trigger_backfill_delete(store_url: str) -> None:
    clock = VirtualClock(T0)
    async with durable.connect(store_url, clock=clock) as client:
        store = await client._open()
        handle = await client.schedule(
            "stamp", "by-name", id="etl", cron="*/5 * * * *", overlap="allow_all"
        )
        d = await handle.describe()
        assert (d.workflow, d.cron, d.timezone, d.overlap, d.paused) == (
            "stamp",
            "*/5 * * * *",
            "UTC",
            "allow_all",
            False,
        )
        assert [t.minute for t in d.next_fire_times] == [5, 10, 15, 20, 25]
        assert d.args == ["by-name"]
        await handle.pause()
        d = await handle.describe()
        assert d.paused
        assert d.next_fire_times == []
        clock.advance_to(T0 + 3600)  # an hour paused: those ticks never start
        await fire_due(client, store, clock.now())
        assert await runs_of(client, "etl") == Counter()
        triggered = await handle.trigger()  # works while paused
        assert triggered is not None
        assert triggered.id == "etl@2026-12-02T18:00:30Z"
        await handle.resume()
        d = await handle.describe()
        assert not d.paused
        assert d.next_fire_times[0] == datetime(2026, 12, 2, 18, 5, tzinfo=UTC)
        await fire_due(client, store, clock.now())
        assert set(await runs_of(client, "etl")) == {"etl@2026-12-02T18:00:30Z"}
        backfilled = await handle.backfill(
            datetime(2026, 12, 2, 17, 10), datetime(2026, 12, 2, 17, 20)
        )
        assert [h.id for h in backfilled] == [
            "etl@2026-12-02T17:10:00Z",
            "etl@2026-12-02T17:15:00Z",
            "etl@2026-12-02T17:20:00Z",
        ]
        # Backfilling again starts nothing twice.
        again = await handle.backfill(datetime(2026, 12, 2, 17, 10), datetime(2026, 12, 2, 17, 20))
        assert again == []  # they ran already
        runs = await runs_of(client, "etl")
        assert len(runs) == 4
        assert set(runs.values()) == {1}
        # Update: same id, new cron; the schedule's history stays.
        await client.schedule("stamp", "v2", id="etl", cron="0 * * * *", overlap="skip")
        d = await handle.describe()
        assert (d.cron, d.overlap, d.args) == ("0 * * * *", "skip", ["v2"])
        assert len(d.recent_runs) == 4
        assert [s.id for s in await client.list_schedules()] == ["etl"]
        await handle.delete()
        assert await client.list_schedules() == []
        with pytest.raises(durable.ScheduleNotFound):
            await handle.delete()
        assert len(await runs_of(client, "etl")) == 4  # its runs stay


async def test_dst_fall_back_and_spring_forward_in_berlin(store_url: str) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 10, 25, 1, 0, tzinfo=berlin).timestamp()
    clock = VirtualClock(start)
    async with durable.connect(store_url, clock=clock) as client:
        store = await client._open()
        # allow_all: no worker runs them here, and skip would drop ticks while one is open.
        for schedule_id, cron in (("hourly", "30 * * * *"), ("daily", "30 2 * * *")):
            await client.schedule(
                stamp, "t", id=schedule_id, cron=cron, timezone="Europe/Berlin", overlap="allow_all"
            )
        hourly = await client.get_schedule("hourly").describe()
        assert [t.isoformat() for t in hourly.next_fire_times[:3]] == [
            "2026-10-25T01:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-25T02:30:00+01:00",
        ]
        for step in range(1, 25):  # a worker's pass every 10 minutes until 05:00 local
            clock.advance_to(start + step * 600)
            await fire_due(client, store, clock.now())
        assert sorted(await runs_of(client, "hourly")) == [
            "hourly@2026-10-24T23:30:00Z",  # 01:30 CEST
            "hourly@2026-10-25T00:30:00Z",  # 02:30 CEST
            "hourly@2026-10-25T01:30:00Z",  # 02:30 CET: the repeated hour, a new tick
            "hourly@2026-10-25T02:30:00Z",  # 03:30 CET
        ]
        assert list(await runs_of(client, "daily")) == ["daily@2026-10-25T00:30:00Z"]  # once
        # Spring forward, 2026-03-29: 02:30 does not exist; the daily tick comes at 03:00.
        await client.get_schedule("daily").backfill(
            datetime(2026, 3, 28, 12, tzinfo=berlin), datetime(2026, 3, 30, 12, tzinfo=berlin)
        )
        assert {r for r in await runs_of(client, "daily") if "-03-" in r} == {
            "daily@2026-03-29T01:00:00Z",  # 03:00 CEST
            "daily@2026-03-30T00:30:00Z",  # 02:30 CEST
        }


async def test_scheduled_runs_know_their_tick_in_virtual_time() -> None:
    async with WorkflowEnvironment(workflows=[stamp]) as env:
        first = (env.now() + timedelta(minutes=1)).replace(second=0, microsecond=0)
        await env.client.schedule(stamp, "tick", id="s", cron="* * * * *")
        await env.sleep(first + timedelta(minutes=1, seconds=1) - env.now())
        d = await env.client.get_schedule("s").describe()
        assert [r.scheduled_at for r in d.recent_runs] == [first + timedelta(minutes=1), first]
        assert {r.status for r in d.recent_runs} == {"completed"}
        result = await env.client.get_handle(d.recent_runs[-1].id).result()
        assert result == f"tick {first.isoformat()}"
        # Outside schedules there is no tick.
        assert await env.client.execute(stamp, "plain") == "plain None"


async def overlap_run(overlap: Overlap) -> list[tuple[int, int | None, str]]:
    """A per-minute schedule of a 150 s workflow for 6 minutes of virtual time: each run's
    tick minute, start minute (from the first tick), and status."""
    async with WorkflowEnvironment(workflows=[slow]) as env:
        origin = (env.now() + timedelta(minutes=1)).replace(second=0, microsecond=0)
        await env.client.schedule(slow, "x", id="o", cron="* * * * *", overlap=overlap)
        await env.sleep(origin - env.now() + timedelta(minutes=5, seconds=1))
        store = await env.client._open()
        runs = await store.list_runs(limit=100, tags={"durable.schedule": "o"})
        base = origin.timestamp()
        return sorted(
            (
                round(
                    (datetime.fromisoformat(r.tags["durable.scheduled_at"]).timestamp() - base) / 60
                ),
                round((r.created_at - base) / 60),
                r.status,
            )
            for r in runs
        )


async def test_overlap_skip_and_allow_all() -> None:
    # Runs of 150 s, ticks at minutes 0..5: skip drops ticks 1 and 2 while run 0 runs.
    assert await overlap_run("skip") == [(0, 0, "completed"), (3, 3, "running")]
    assert await overlap_run("allow_all") == [
        *[(m, m, "completed") for m in range(3)],
        *[(m, m, "running") for m in range(3, 6)],
    ]


async def test_overlap_buffer_one_and_buffer_all() -> None:
    # buffer_one: tick 1 waits for run 0 (closes at 2.5, shown as 2), tick 2 is dropped
    # (one is waiting already); tick 3 waits for run 1 (closes at 5.0), tick 4 dropped.
    assert await overlap_run("buffer_one") == [
        (0, 0, "completed"),
        (1, 2, "completed"),
        (3, 5, "running"),
    ]
    # buffer_all: each tick, in order, once the one before has closed (2, 3, 4, 5 wait).
    assert await overlap_run("buffer_all") == [
        (0, 0, "completed"),
        (1, 2, "completed"),
        (2, 5, "running"),
    ]


async def test_overlap_cancel_other_and_terminate_other() -> None:
    # Each tick stops the run before it: cancelled (it closes, then the tick starts)...
    assert await overlap_run("cancel_other") == [
        *[(m, m, "cancelled") for m in range(5)],
        (5, 5, "running"),
    ]
    # ...or terminated.
    terminated = await overlap_run("terminate_other")
    assert [(tick, started, status) for tick, started, status in terminated] == [
        *[(m, m, "terminated") for m in range(5)],
        (5, 5, "running"),
    ]


async def test_a_pass_takes_a_batch_and_says_to_come_back_for_the_rest(store_url: str) -> None:
    from durable.schedules import FIRE_BATCH

    clock = VirtualClock(T0)
    async with durable.connect(store_url, clock=clock) as client:
        store = await client._open()
        for i in range(FIRE_BATCH + 3):
            await client.schedule(stamp, "x", id=f"s{i:03}", cron="* * * * *")
        clock.advance_to(T0 + 30)  # 17:01:00: every one is due
        assert await fire_due(client, store, clock.now()) == (clock.now(), False)
        assert await fire_due(client, store, clock.now()) == (T0 + 90, False)
        runs = await store.list_runs(limit=1000)
        assert len(runs) == FIRE_BATCH + 3


async def test_arguments_a_live_worker_refuses_are_not_scheduled() -> None:
    async with WorkflowEnvironment(workflows=[stamp]) as env:
        with pytest.raises(TypeError, match="Cannot schedule workflow 'stamp'"):
            await env.client.schedule("stamp", 1, 2, id="s", cron="* * * * *")
        assert await env.client.list_schedules() == []


async def test_jitter_delays_each_run_by_its_own_offset_in_virtual_time() -> None:
    from durable.ticks import jitter_offset

    async with WorkflowEnvironment(workflows=[stamp]) as env:
        first = (env.now() + timedelta(minutes=1)).replace(second=0, microsecond=0)
        await env.client.schedule(
            stamp, "j", id="j", cron="* * * * *", jitter=timedelta(seconds=40), overlap="allow_all"
        )
        await env.sleep(first + timedelta(minutes=2, seconds=41) - env.now())
        store = await env.client._open()
        runs = await store.list_runs(limit=10, tags={"durable.schedule": "j"})
        assert len(runs) == 3
        for run in runs:
            tick = datetime.fromisoformat(run.tags["durable.scheduled_at"]).timestamp()
            delay = run.created_at - tick
            assert delay == pytest.approx(jitter_offset("j", tick, 40.0), abs=0.01)
            assert 0 <= delay < 40
        assert len({round(r.created_at - float(r.created_at // 60 * 60)) for r in runs}) > 1
