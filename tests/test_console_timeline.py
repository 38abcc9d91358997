"""durable.console.timeline: a real run's attempts as bars (queue wait apart from run time,
retries with their errors, timers and waits as spans), zoom, paging and the overview, up to
100,000 steps, drawn with every name escaped."""

from __future__ import annotations

import asyncio
import dataclasses
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from durable.console import timeline
from durable.steps import Step
from tests.console_runs import HOSTILE, T0, synthetic, tour_steps

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def tour() -> list[Step]:
    return asyncio.run(tour_steps())


def _row(t: timeline.Timeline, name: str) -> timeline.Row:
    return next(r for r in t.rows if r.name == name)


def test_each_attempt_is_a_bar_with_queue_wait_and_backoff_apart(tour: list[Step]) -> None:
    t = timeline.build(tour)
    assert [r.seq for r in t.rows] == [s.seq for s in tour]
    assert (t.total, t.matching, t.outside, t.pages, t.hidden) == (len(tour), len(tour), 0, 1, {})
    flaky = _row(t, "flaky")
    runs = [b for b in flaky.bars if b.kind == "run"]
    assert [(b.attempt, b.status) for b in runs] == [(1, "failed"), (2, "failed"), (3, "completed")]
    assert all("lost the connection" in (b.error or "") for b in runs[:2])
    assert runs[2].error is None
    # Between attempts: the backoff (2 s, then 4 s) waiting in the queue, drawn apart.
    waits = [b for b in flaky.bars if b.kind == "queue" and b.attempt in (2, 3)]
    assert [round((b.end - b.start).total_seconds()) for b in waits] == [2, 4]
    assert all(a.end <= b.start for a, b in zip(flaky.bars, flaky.bars[1:], strict=False))
    timer = _row(t, "timer")
    [span] = timer.bars
    assert (span.kind, span.status, span.end - span.start) == (
        "wait",
        "completed",
        timedelta(minutes=5),
    )
    assert timer.label == "sleep 5 min"
    assert [b.kind for b in _row(t, "approve").bars] == ["wait"]
    assert [b.kind for b in _row(t, "invoice").bars] == ["wait"]
    failed = [r for r in t.rows if r.status == "failed"]
    assert len(failed) == 5
    assert all(r.error and r.error.startswith("ValueError: item") for r in failed)
    assert t.start == min(s.scheduled_at for s in tour if s.scheduled_at)
    assert not [b for r in t.rows for b in r.bars if b.open]  # the run is over
    assert "still going" not in timeline.render_svg(t)


def test_zoom_keeps_only_what_overlaps_and_clips_it(tour: list[Step]) -> None:
    flaky = next(s for s in tour if s.name == "flaky")
    assert flaky.scheduled_at is not None
    assert flaky.closed_at is not None
    start, end = flaky.scheduled_at + timedelta(seconds=1), flaky.closed_at
    t = timeline.build(tour, start=start, end=end)
    assert (t.start, t.end) == (start, end)
    names = [r.name for r in t.rows]
    assert "flaky" in names
    assert "process" not in names  # long over before the timer
    assert t.outside == len(tour) - len(t.rows)
    for row in t.rows:
        assert all(start <= b.start <= b.end <= end for b in row.bars)
    first = _row(t, "flaky").bars[0]
    assert first.start == start  # clipped at the window's edge
    # The overview still covers the whole run, and its buckets link to zoom.
    assert sum(sum(b.counts.values()) for b in t.overview) == len(tour)
    assert t.overview[0].start == t.first
    query = timeline.zoom_query(start, end, page=2)
    assert query.startswith("?start=2026-")
    assert query.endswith("&page=2")
    assert "Z&end=" in query


def test_pages_of_rows_and_a_summary_of_the_rest() -> None:
    steps = synthetic(1000, failed_every=10)
    t = timeline.build(steps, page=3, per_page=100)
    assert [r.seq for r in t.rows] == list(range(201, 301))
    assert (t.page, t.pages, t.matching) == (3, 10, 1000)
    assert t.hidden == {"completed": 810, "failed": 90}
    assert timeline.build(steps, page=99, per_page=100).page == 10
    assert timeline.build(steps, page=0, per_page=100).page == 1
    with pytest.raises(ValueError, match="per_page must be at least 1"):
        timeline.build(steps, per_page=0)
    # Without a zoom, the window fits the page's rows so their bars can be read.
    assert t.start == steps[200].scheduled_at
    assert t.end == steps[299].closed_at
    svg_text = timeline.render_svg(t)
    assert "steps 201\u2013300 of 1,000" in svg_text
    assert "page 3 of 10" in svg_text
    assert "on other pages: 810 completed, 90 failed" in svg_text


def test_a_status_filter_finds_what_went_wrong() -> None:
    steps = synthetic(1000, failed_every=10)
    t = timeline.build(steps, statuses={"failed"}, per_page=30)
    assert [r.seq for r in t.rows] == list(range(10, 301, 10))
    assert (t.matching, t.outside, t.pages) == (100, 900, 4)
    assert t.hidden == {"failed": 70}
    assert "900 not in this view" in timeline.render_svg(t)


def test_a_hundred_thousand_steps_page_and_bucket_on_the_server() -> None:
    steps = synthetic(100_000, fan_out=50_000, failed_every=97)
    t = timeline.build(steps)
    assert len(t.rows) == timeline.PER_PAGE
    assert sum(t.hidden.values()) == 100_000 - timeline.PER_PAGE
    assert len(t.overview) == timeline.OVERVIEW_BUCKETS
    assert sum(sum(b.counts.values()) for b in t.overview) == 100_000
    assert sum(b.counts.get("failed", 0) for b in t.overview) == 100_000 // 97
    assert len(timeline.render_svg(t)) < 500_000
    # Zoom to ten seconds in the middle: the steps that overlap it, nothing else.
    mid = T0 + timedelta(seconds=50_000)
    zoomed = timeline.build(steps, start=mid, end=mid + timedelta(seconds=10))
    assert [r.seq for r in zoomed.rows] == list(range(49_999, 50_011))
    assert zoomed.outside == 100_000 - 12


def test_open_bars_end_now_and_say_so() -> None:
    [step] = synthetic(1)
    running = dataclasses.replace(step, status="running", closed_at=None, attempts=[])
    now = T0 + timedelta(seconds=30)
    t = timeline.build([running], now=now)
    [bar] = t.rows[0].bars
    assert (bar.kind, bar.end, bar.open) == ("queue", now, True)
    assert "(still going)" in timeline.render_svg(t)


def test_a_retrying_step_waits_for_its_next_attempt_until_now() -> None:
    [step] = synthetic(1, failed_every=1)
    [first] = step.attempts
    assert first.closed_at is not None
    second = dataclasses.replace(
        first, number=2, started_at=first.closed_at + timedelta(seconds=2),
        closed_at=first.closed_at + timedelta(seconds=3),
    )  # fmt: skip
    retrying = dataclasses.replace(
        step, status="retrying", closed_at=None, attempts=[first, second]
    )
    now = second.closed_at + timedelta(seconds=5)  # type: ignore[operator]
    [row] = timeline.build([retrying], now=now).rows
    assert [(b.kind, b.attempt, b.status, b.open) for b in row.bars] == [
        ("queue", 1, "scheduled", False),
        ("run", 1, "failed", False),
        ("queue", 2, "scheduled", False),
        ("run", 2, "failed", False),
        ("queue", 3, "retrying", True),
    ]
    assert (row.bars[-1].start, row.bars[-1].end) == (second.closed_at, now)
    assert row.bars[1].error == "ValueError: step 1 failed"


def test_the_drawing_escapes_names_and_marks_every_row(tour: list[Step]) -> None:
    t = timeline.build(tour)
    text = timeline.render_svg(t)
    assert "<script" not in text
    root = ET.fromstring(text)
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    titles = ["".join(e.itertext()) for e in root.iter(f"{SVG}title")]
    assert any(HOSTILE in title for title in titles)  # whole in the tooltip, as text
    rows = [a for a in root.iter(f"{SVG}a") if a.get("class") == "row"]
    assert [int(a.get("data-seq", "0")) for a in rows] == [r.seq for r in t.rows]
    assert [a.get("href") for a in rows[:1]] == [f"?step={t.rows[0].seq}"]
    assert {a.get("data-status") for a in rows} == {"completed", "failed"}
    buckets = [a for a in root.iter(f"{SVG}a") if a.get("class") == "bucket"]
    assert buckets
    assert all((a.get("href") or "").startswith("?start=") for a in buckets)


def test_axis_ticks_read_at_every_scale() -> None:
    def labels(seconds: float) -> list[str]:
        return [label for _, label in timeline.ticks(T0, T0 + timedelta(seconds=seconds))]

    assert labels(300) == ["03:00", "03:01", "03:02", "03:03", "03:04", "03:05"]
    assert labels(2)[:3] == ["03:00:00.000", "03:00:00.500", "03:00:01.000"]
    assert labels(40)[:2] == ["03:00:00", "03:00:10"]
    assert labels(6 * 86_400)[:2] == ["Dec 03", "Dec 04"]  # midnights, UTC
    for seconds in (0.01, 2, 40, 300, 7200, 6 * 86_400):
        assert 1 <= len(labels(seconds)) <= 8


def test_steps_without_a_scheduled_time_or_out_of_time_order_are_placed_by_their_own() -> None:
    steps = synthetic(300, failed_every=7)
    first = steps[0]  # began when its attempt started (no scheduled time kept)
    steps[0] = dataclasses.replace(first, scheduled_at=None)
    t = timeline.build(steps)
    assert t.first == first.attempts[0].started_at
    # Journal order need not be time order (clocks differ): the overview counts the same.
    shuffled = steps[150:] + steps[:150]
    again = timeline.build(shuffled)
    assert (again.first, again.last) == (t.first, t.last)
    assert [b.counts for b in again.overview] == [b.counts for b in t.overview]
    assert sum(b.counts.get("failed", 0) for b in t.overview) == 300 // 7
