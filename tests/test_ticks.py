"""`durable.ticks`: a schedule's rules, offline — cron ticks in a time zone across DST
changes, the catch-up window, jitter, and what each overlap policy does with a tick."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from durable.store import ScheduleRecord
from durable.ticks import (
    OVERLAPS,
    Cron,
    check_id,
    check_overlap,
    check_window,
    due_ticks,
    jitter_offset,
    plan,
    scheduled_at,
    tick_id,
    tick_tags,
)

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int, fold: int = 0) -> float:
    return datetime(*args, tzinfo=BERLIN, fold=fold).timestamp()  # type: ignore[misc]


def local(ticks: list[float]) -> list[str]:
    return [datetime.fromtimestamp(t, BERLIN).isoformat() for t in ticks]


def test_spring_forward_gap_fires_at_the_first_time_after_it() -> None:
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    daily = Cron("30 2 * * *", "Europe/Berlin")
    assert local(daily.upcoming(berlin(2026, 3, 28, 12), 3)) == [
        "2026-03-29T03:00:00+02:00",  # the first moment after the gap, once
        "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00",
    ]
    hourly = Cron("30 * * * *", "Europe/Berlin")
    # Every hour that exists: one hour apart in real time across the gap.
    assert local(hourly.upcoming(berlin(2026, 3, 29, 0), 3)) == [
        "2026-03-29T00:30:00+01:00",
        "2026-03-29T01:30:00+01:00",
        "2026-03-29T03:30:00+02:00",
    ]


def test_fall_back_repeat_fires_a_daily_time_once_and_an_hourly_one_twice() -> None:
    # 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:00-03:00 happens twice.
    daily = Cron("30 2 * * *", "Europe/Berlin")
    assert local(daily.upcoming(berlin(2026, 10, 24, 12), 3)) == [
        "2026-10-25T02:30:00+02:00",  # the first pass only
        "2026-10-26T02:30:00+01:00",
        "2026-10-27T02:30:00+01:00",
    ]
    hourly = Cron("30 * * * *", "Europe/Berlin")
    ticks = hourly.upcoming(berlin(2026, 10, 25, 1), 4)
    assert local(ticks) == [
        "2026-10-25T01:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+01:00",  # the same wall time an hour later: a new tick
        "2026-10-25T03:30:00+01:00",
    ]
    assert [b - a for a, b in itertools.pairwise(ticks)] == [3600.0] * 3
    # Starting inside the repeated hour (second pass) does not go back to the first.
    second = berlin(2026, 10, 25, 2, 30, fold=1)
    assert local([hourly.next_after(second - 1) or 0]) == ["2026-10-25T02:30:00+01:00"]
    assert local([daily.next_after(second - 1) or 0]) == ["2026-10-26T02:30:00+01:00"]


def test_seconds_field_and_utc() -> None:
    every = Cron("* * * * * */10")
    assert every.upcoming(1000.0, 3) == [1010.0, 1020.0, 1030.0]
    assert Cron("0 * * * *").next_after(3600.0) == 7200.0


@pytest.mark.parametrize(
    ("cron", "zone", "says"),
    [
        ("every hour", "UTC", "does not parse"),
        ("61 * * * *", "UTC", "does not parse"),
        ("", "UTC", "cron must be a cron expression"),
        ("0 0 30 2 *", "UTC", "never fires"),
        ("0 * * * *", "Mars/Olympus", "Unknown time zone 'Mars/Olympus'"),
        ("0 * * * *", "", "timezone must be an IANA name"),
    ],
)
def test_bad_cron_or_zone_says_what_and_how(cron: str, zone: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        Cron(cron, zone)


def test_bad_options_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="overlap must be one of skip, buffer_one"):
        check_overlap("queue")
    assert [check_overlap(name) for name in OVERLAPS] == list(OVERLAPS)
    with pytest.raises(ValueError, match="schedule id must be"):
        check_id("a/b")
    with pytest.raises(ValueError, match="catchup_window must be zero or more"):
        check_window("catchup_window", timedelta(seconds=-1), allow_none=False)
    with pytest.raises(ValueError, match="jitter must be a timedelta"):
        check_window("jitter", "5m", allow_none=True)
    assert check_window("jitter", None, allow_none=True) == 0.0


def test_run_ids_and_tags_carry_the_tick() -> None:
    assert tick_id("hourly-etl", 1_796_230_800.0) == "hourly-etl@2026-12-02T17:00:00Z"
    assert tick_id("t", 1.25) == "t@1970-01-01T00:00:01.250Z"
    assert scheduled_at(tick_tags("t", 1.25)) == 1.25
    assert scheduled_at({}) is None


def schedule(overlap: str = "skip", **changes: object) -> ScheduleRecord:
    base = ScheduleRecord(
        schedule_id="s",
        workflow="wf",
        queue="default",
        input=b"",
        cron="* * * * *",
        timezone="UTC",
        overlap=overlap,
        catchup_window=600.0,
        jitter=0.0,
        paused=False,
        next_tick=60.0,
        due_at=60.0,
        buffered=(),
        latest=None,
        recent=(),
        version=1,
        created_at=0.0,
        updated_at=0.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_catchup_window_skips_ticks_older_than_it() -> None:
    cron = Cron("* * * * *")
    s = schedule(catchup_window=150.0, next_tick=60.0)
    # Down from t=60 to t=600: ticks 60..420 are older than 150 s; 480, 540, 600 start.
    ticks, next_tick = due_ticks(s, cron, 600.0)
    assert ticks == [480.0, 540.0, 600.0]
    assert next_tick == 660.0
    # A window of zero keeps only a tick due exactly now.
    assert due_ticks(replace(s, catchup_window=0.0), cron, 600.0)[0] == [600.0]
    assert due_ticks(replace(s, catchup_window=0.0), cron, 601.0)[0] == []
    # Nothing due yet.
    assert due_ticks(s, cron, 59.0) == ([], 60.0)


def test_jitter_delays_each_tick_the_same_for_every_worker() -> None:
    offsets = [jitter_offset("s", float(t), 30.0) for t in range(0, 6000, 60)]
    assert all(0 <= o < 30.0 for o in offsets)
    assert len(set(offsets)) > 50  # spread, not one fixed delay
    assert offsets == [jitter_offset("s", float(t), 30.0) for t in range(0, 6000, 60)]
    cron = Cron("* * * * *")
    s = schedule(jitter=30.0, next_tick=60.0)
    delay = jitter_offset("s", 60.0, 30.0)
    assert due_ticks(s, cron, 60.0 + delay - 0.01)[0] == []
    assert due_ticks(s, cron, 60.0 + delay)[0] == [60.0]


def starts(overlap: str, ticks: list[float], *, latest_open: bool, **changes: object) -> object:
    s = schedule(overlap, latest="s@prev", **changes)
    p = plan(s, ticks, 300.0, latest_open=latest_open, now=200.0)
    return (
        [tick_id("s", t).split("@")[1][14:19] for t in p.starts],
        [int(t) for t in p.schedule.buffered],
        p.cancel,
        p.terminate,
    )


def test_each_overlap_policy_with_the_previous_run_open() -> None:
    ticks = [60.0, 120.0, 180.0]
    assert starts("skip", ticks, latest_open=True) == ([], [], None, None)
    assert starts("buffer_one", ticks, latest_open=True) == ([], [60], None, None)
    assert starts("buffer_all", ticks, latest_open=True) == ([], [60, 120, 180], None, None)
    # Only the newest tick matters when the one before is stopped for it.
    assert starts("cancel_other", ticks, latest_open=True) == ([], [180], "s@prev", None)
    assert starts("terminate_other", ticks, latest_open=True) == (["03:00"], [], None, "s@prev")
    assert starts("allow_all", ticks, latest_open=True) == (
        ["01:00", "02:00", "03:00"],
        [],
        None,
        None,
    )


def test_each_overlap_policy_with_the_previous_run_closed() -> None:
    # The first tick starts; the ones after it find that run open.
    assert starts("skip", [60.0, 120.0], latest_open=False) == (["01:00"], [], None, None)
    assert starts("buffer_one", [60.0, 120.0], latest_open=False) == (["01:00"], [120], None, None)
    assert starts("terminate_other", [60.0], latest_open=False) == (["01:00"], [], None, None)
    # A buffered tick starts once the run before it has closed, before any new tick.
    assert starts("buffer_all", [], latest_open=False, buffered=(60.0, 120.0)) == (
        ["01:00"],
        [120],
        None,
        None,
    )
    assert starts("cancel_other", [], latest_open=False, buffered=(180.0,)) == (
        ["03:00"],
        [],
        None,
        None,
    )
    # Still open: the buffered tick waits.
    assert starts("buffer_all", [], latest_open=True, buffered=(60.0,)) == ([], [60], None, None)


def test_a_plan_moves_the_version_and_records_recent_runs() -> None:
    s = schedule("allow_all", recent=("s@old",))
    p = plan(s, [60.0, 120.0], 180.0, latest_open=False, now=130.0)
    assert p.changed
    assert p.schedule.version == s.version + 1
    assert p.schedule.next_tick == 180.0
    assert p.schedule.due_at == 180.0
    assert p.schedule.recent == (tick_id("s", 120.0), tick_id("s", 60.0), "s@old")
    assert p.schedule.latest == tick_id("s", 120.0)
    nothing = plan(s, [], s.next_tick, latest_open=False, now=130.0)
    assert not nothing.changed
