"""The run in time: `build(steps) -> Timeline` (rows of bars, zoom, paging, an overview),
then `render_svg(timeline) -> str`.

Each step is a row. An activity's row has, per attempt, a *queue* bar (from when it was
scheduled, or from the previous attempt's failure: backoff and queue wait, until a worker
started it) and a *run* bar (started to closed, coloured by how that attempt ended, its
error on hover); a timer, a signal or external wait and a child workflow are one *wait*
span; a published value or patch marker is a *mark*. Open bars end at ``now``.

Zoom is a time window (``start``, ``end``): only steps that overlap it are rows, their bars
clipped to it. Runs of any size stay cheap: rows are paged on the server (``page``,
``per_page``), the bars are built for the page only, and `Timeline.hidden` counts by status
what the page leaves out; the overview (steps started per time bucket, by status) covers
the whole run so an operator sees where to zoom. Linear in the number of steps.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import quote

from ..steps import ACTIVITY_KINDS, Step
from . import svg
from .labels import step_label

__all__ = [
    "PER_PAGE",
    "Bar",
    "Bucket",
    "Row",
    "Timeline",
    "build",
    "render_svg",
    "ticks",
    "zoom_query",
]

PER_PAGE = 200  # rows on one page of the timeline
OVERVIEW_BUCKETS = 120  # columns of the whole-run histogram above the rows
_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True, slots=True)
class Bar:
    """One span of a row: ``kind`` is ``queue`` (waiting for a worker, backoff included),
    ``run`` (an attempt running), ``wait`` (a timer, a signal or external wait, a child
    run) or ``mark`` (an instant). ``status`` is how it ended (for a run bar: that
    attempt); ``open`` says it has not ended (``end`` is then the timeline's ``now``)."""

    kind: str
    start: datetime
    end: datetime
    status: str
    attempt: int | None = None
    error: str | None = None
    open: bool = False


@dataclass(frozen=True, slots=True)
class Row:
    """A step and its bars, clipped to the timeline's window."""

    seq: int
    kind: str
    name: str
    label: str
    branch: str
    status: str
    attempts: int
    bars: tuple[Bar, ...]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Bucket:
    """Steps of the whole run that began in ``[start, end)``, by status."""

    start: datetime
    end: datetime
    counts: dict[str, int]


@dataclass(frozen=True)
class Timeline:
    """A page of rows over a window of time, and what it does not show.

    ``matching`` steps overlap the window and have a wanted status (``outside`` do not);
    this page has ``rows``
    (page ``page`` of ``pages``); ``hidden`` counts by status the matching steps on other
    pages. ``first``/``last`` bound the whole run; ``overview`` buckets it."""

    start: datetime
    end: datetime
    now: datetime
    first: datetime
    last: datetime
    rows: list[Row]
    total: int
    matching: int
    outside: int
    page: int
    per_page: int
    pages: int
    hidden: dict[str, int] = field(default_factory=dict)
    overview: list[Bucket] = field(default_factory=list)


def zoom_query(start: datetime, end: datetime, page: int = 1) -> str:
    """A query string for a window (ISO 8601, UTC) and page: ``?start=...&end=...``."""
    query = f"?start={quote(_iso(start))}&end={quote(_iso(end))}"
    return query + (f"&page={page}" if page != 1 else "")


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _span(step: Step, now: datetime) -> tuple[datetime, datetime]:
    """When a step began and ended (``now`` if it has not)."""
    began = step.scheduled_at or step.started_at
    if began is None:
        began = next((a.started_at for a in step.attempts if a.started_at), None) or now
    return began, step.closed_at or now


def _error(step_error: object) -> str | None:
    if step_error is None:
        return None
    kind = getattr(step_error, "type", type(step_error).__name__)
    return f"{kind}: {getattr(step_error, 'message', step_error)}"


def _bars(step: Step, now: datetime) -> list[Bar]:
    """A step's bars, unclipped."""
    began, ended = _span(step, now)
    still = step.closed_at is None
    if step.kind not in ACTIVITY_KINDS:
        if step.kind in ("publish", "marker", "tags", "damaged"):
            return [Bar("mark", began, began, step.status)]
        return [Bar("wait", began, ended, step.status, None, _error(step.error), still)]
    bars = []
    ready = began  # when the next attempt was ready to run
    for attempt in step.attempts:
        if attempt.started_at is None:  # in flight; the store does not say since when
            bars.append(Bar("run", ready, now, "running", attempt.number, None, True))
            ready = now
            continue
        if attempt.started_at > ready:
            bars.append(Bar("queue", ready, attempt.started_at, "scheduled", attempt.number))
        end = attempt.closed_at or now
        if attempt.closed_at is None:
            status = "running"
        elif attempt.error is None:
            status = "completed"
        else:
            status = "cancelled" if attempt.error.type == "CancelledError" else "failed"
        error = _error(attempt.error)
        open_ = attempt.closed_at is None
        bars.append(Bar("run", attempt.started_at, end, status, attempt.number, error, open_))
        ready = end
    if step.status in ("scheduled", "retrying") or (still and ready < now and not bars):
        bars.append(Bar("queue", ready, now, step.status, len(step.attempts) + 1, None, True))
    return bars


def _clip(bars: list[Bar], start: datetime, end: datetime) -> tuple[Bar, ...]:
    out = []
    for bar in bars:
        if bar.end < start or bar.start > end:
            continue
        lo, hi = max(bar.start, start), min(bar.end, end)
        if (lo, hi) != (bar.start, bar.end):
            bar = Bar(bar.kind, lo, hi, bar.status, bar.attempt, bar.error, bar.open)
        out.append(bar)
    return tuple(out)


def build(
    steps: Sequence[Step],
    *,
    now: datetime | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
    buckets: int = OVERVIEW_BUCKETS,
    statuses: Collection[str] | None = None,
) -> Timeline:
    """The timeline of a run's steps (as `durable.WorkflowHandle.steps` returns them).

    ``now`` ends open bars: pass the server's clock for a live run (default: the latest
    time the steps record). ``start``/``end`` zoom to a window; an end not given is fitted
    to the page's rows. ``statuses`` keeps only steps in those (``{"failed",
    "retrying"}``: what went wrong). ``page`` (from 1, clamped to the last) and
    ``per_page`` page the rows in journal order.
    """
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    began, closed, latest, status_of = _bounds(steps)
    now = now or datetime.fromtimestamp(latest, UTC)
    now_ts = now.timestamp()
    ended = (
        cast(list[float], closed)
        if None not in closed
        else [now_ts if c is None else c for c in closed]
    )
    first_ts = min(began, default=now_ts)
    last_ts = max(ended, default=now_ts)
    lo = start.timestamp() if start else first_ts
    hi = end.timestamp() if end else last_ts
    if hi < lo:
        lo, hi = hi, lo
    matching: Sequence[int] = range(len(steps))
    if start is not None or end is not None:
        pairs = zip(began, ended, strict=True)
        matching = [i for i, (b, e) in enumerate(pairs) if e >= lo and b <= hi]
    if statuses is not None:
        wanted = set(statuses)
        matching = [i for i in matching if steps[i].status in wanted]
    pages = max(1, -(-len(matching) // per_page))
    page = min(max(page, 1), pages)
    shown = matching[(page - 1) * per_page : page * per_page]
    if shown:  # fit the sides not given to this page's rows, so their bars are legible
        lo = lo if start is not None else min(began[i] for i in shown)
        hi = hi if end is not None else max(ended[i] for i in shown)
    every = (
        Counter(status_of)  # the common case
        if len(matching) == len(steps)
        else Counter(status_of[i] for i in matching)
    )
    hidden = every - Counter(steps[i].status for i in shown)
    window = datetime.fromtimestamp(lo, UTC), datetime.fromtimestamp(hi, UTC)
    rows = []
    for i in shown:
        step = steps[i]
        bars = _clip(_bars(step, now), *window)
        rows.append(
            Row(
                step.seq, step.kind, step.name, step_label(step), step.branch, step.status,
                len(step.attempts), bars, _error(step.error),
            )
        )  # fmt: skip
    return Timeline(
        window[0], window[1], now, datetime.fromtimestamp(first_ts, UTC),
        datetime.fromtimestamp(last_ts, UTC), rows, len(steps), len(matching),
        len(steps) - len(matching), page, per_page, pages, dict(hidden),
        _overview(status_of, began, first_ts, last_ts, buckets),
    )  # fmt: skip


def _bounds(steps: Sequence[Step]) -> tuple[list[float], list[float | None], float, list[str]]:
    """Each step's start and end as POSIX times (``None``: not ended), the latest time any
    of them records, and each step's status: one pass, as a 100,000-step run needs. The
    steps of one commit share its time, one datetime (`durable.steps.StepBuilder`): turned
    once."""
    began: list[float] = []
    closed: list[float | None] = []
    statuses: list[str] = []
    still: list[int] = []  # steps not ended
    at_b = at_c = None  # the last times turned, and into what
    b = c = 0.0
    for step in steps:
        statuses.append(step.status)
        at = step.scheduled_at
        if at is None:
            at = _began(step)
        if at is not at_b:
            at_b, b = at, at.timestamp()
        began.append(b)
        end = step.closed_at
        if end is None:
            still.append(len(closed))
            closed.append(None)
            continue
        if end is not at_c:
            at_c, c = end, end.timestamp()
        closed.append(c)
    ended = [c for c in closed if c is not None] if still else cast(list[float], closed)
    latest = max(0.0, max(ended, default=0.0))
    for i in still:  # its start, and its attempts' times
        latest = max(latest, began[i])
        for attempt in steps[i].attempts:
            for when in (attempt.started_at, attempt.closed_at):
                if when is not None:
                    latest = max(latest, when.timestamp())
    return began, closed, latest, statuses


def _began(step: Step) -> datetime:
    """When a step without a scheduled time began (the epoch when nothing says)."""
    return step.started_at or _span(step, _EPOCH)[0]


def _overview(
    statuses: list[str], began: list[float], first: float, last: float, buckets: int
) -> list[Bucket]:
    if not statuses or buckets < 1:
        return []
    width = max((last - first) / buckets, 0.001)
    top = buckets - 1

    def bucket(b: float) -> int:
        return min(int((b - first) / width), top)

    per: list[dict[str, int]] = [{} for _ in range(buckets)]
    if began == sorted(began):  # in C: a sorted list is one run to timsort
        # In time order (a run's steps mostly are): each bucket is a slice, found by
        # bisection on the bucket itself, and counted in C.
        lo = 0
        while lo < len(began):
            k = bucket(began[lo])
            hi = bisect.bisect_right(began, k, lo, key=bucket)
            per[k] = dict(Counter(statuses[lo:hi]))
            lo = hi
    else:
        index = [bucket(b) for b in began]
        for (k, status), n in Counter(zip(index, statuses, strict=True)).items():
            per[k][status] = n
    start = datetime.fromtimestamp(first, UTC)
    step = timedelta(seconds=width)
    return [Bucket(start + k * step, start + (k + 1) * step, c) for k, c in enumerate(per)]


_STEPS = (
    [timedelta(milliseconds=n) for n in (1, 2, 5, 10, 20, 50, 100, 200, 500)]
    + [timedelta(seconds=n) for n in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800)]
    + [timedelta(hours=n) for n in (1, 2, 3, 6, 12, 24, 48, 168)]
)


def ticks(start: datetime, end: datetime, most: int = 8) -> list[tuple[datetime, str]]:
    """Round times between ``start`` and ``end`` (at most ``most``), labelled as people read
    them at that scale: ``03:00:01.250``, ``03:00:05``, ``03:05``, ``Dec 02``; all UTC."""
    span = end - start
    most = max(most, 2)
    step = next((s for s in _STEPS if span / s <= most - 1), _STEPS[-1])
    while span / step > most - 1:
        step *= 2
    base = start.astimezone(UTC)
    midnight = base.replace(hour=0, minute=0, second=0, microsecond=0)
    k = -(-(base - midnight) // step)
    at = midnight + k * step
    out = []
    while at <= end:
        if step < timedelta(seconds=1):
            label = at.strftime("%H:%M:%S.") + f"{at.microsecond // 1000:03d}"
        elif step < timedelta(minutes=1):
            label = at.strftime("%H:%M:%S")
        elif step < timedelta(days=1):
            label = at.strftime("%H:%M")
        else:
            label = at.strftime("%b %d")
        out.append((at, label))
        at += step
    return out


# -- drawing --

LABEL_W = 300.0  # the left column: seq, name, status
ROW_H = 22.0
_WINDOW = ' fill="none" stroke="#d4a000" stroke-width="2" pointer-events="none"'
_GRID = 'stroke="#000" stroke-opacity="0.08" pointer-events="none"'
TOP = 132.0  # rows start under the legend, overview and axis
_BAR_LEGEND = (
    ("queue", "queue wait / backoff"),
    ("run", "attempt running"),
    ("wait", "timer, signal, child"),
)


def _bar(bar: Bar, x: float, w: float, y: float) -> str:
    pal = svg.palette(bar.status)
    took = svg.duration(bar.end - bar.start)
    if bar.kind == "queue":
        title = f"queue wait before attempt {bar.attempt} \u00b7 {took}"
        shape = svg.rect(x, y + 8, w, 6, ' fill="#cfd8dc" stroke="#90a4ae" stroke-width="0.6"')
    elif bar.kind == "run":
        title = f"attempt {bar.attempt} \u00b7 {bar.status} \u00b7 {took}"
        shape = svg.rect(x, y + 4, w, 14, f' rx="2" fill="{pal.stroke}"')
        if bar.status != "completed":  # how it ended, in a glyph too: not colour alone
            halo = 'paint-order="stroke" stroke="#fff" stroke-width="3"'
            shape += svg.text(
                x + w + 1, y + 15, pal.glyph, f' font-size="12" fill="{pal.text}" {halo}'
            )
    elif bar.kind == "wait":
        title = f"{bar.status} \u00b7 {took}"
        dash = ' stroke-dasharray="4 2"' if bar.open or pal.dashed else ""
        paint = f' rx="7" fill="{pal.fill}" stroke="{pal.stroke}" stroke-width="1.4"{dash}'
        shape = svg.rect(x, y + 4, w, 14, paint)
    else:
        title = f"{bar.status} at {_iso(bar.start)}"
        cy = y + 11
        points = (
            f"{x:.1f},{cy - 6:.1f} {x + 6:.1f},{cy:.1f} {x:.1f},{cy + 6:.1f} {x - 6:.1f},{cy:.1f}"
        )
        shape = f'<polygon points="{points}" fill="{pal.stroke}"/>'
    if bar.open:
        title += " (still going)"
    if bar.error:
        title += "\n" + bar.error
    return f"<g><title>{svg.esc(title)}</title>{shape}</g>"


def _mark(bar: Bar, x: float, w: float, y: float) -> str:
    """How an attempt that did not complete ended, as its glyph above the bars: the
    colour alone would not say it."""
    if bar.kind != "run" or bar.status == "completed":
        return ""
    pal = svg.palette(bar.status)
    return svg.text(
        x + w / 2,
        y + 9,
        pal.glyph,
        f' font-size="11" text-anchor="middle" fill="{pal.text}" font-weight="700"',
    )


def _summary(t: Timeline) -> str:
    window = f"{_iso(t.start)} \u2013 {_iso(t.end)} ({svg.duration(t.end - t.start)})"
    if not t.rows:
        return f"{t.total:,} steps; none in {window}"
    first = (t.page - 1) * t.per_page + 1
    text = f"steps {first:,}\u2013{first + len(t.rows) - 1:,} of {t.matching:,} in {window}"
    if t.pages > 1:
        text += f", page {t.page:,} of {t.pages:,}"
    if t.outside:
        text += f"; {t.outside:,} not in this view"
    return text


def _hidden(t: Timeline) -> str:
    if not t.hidden:
        return ""
    parts = ", ".join(f"{n:,} {status}" for status, n in sorted(t.hidden.items()))
    return f"on other pages: {parts}"


def render_svg(t: Timeline, width: float = 1100.0) -> str:
    """The timeline as one ``<svg>``: a summary, the legend, the whole run's overview (its
    buckets link to zoom in), a time axis, then a row per step wrapped in a link
    (``?step=SEQ``, with ``data-seq``, ``data-kind``, ``data-status``). Escaped throughout."""
    x0, x1 = LABEL_W + 10, width - 16
    span = max((t.end - t.start).total_seconds(), 0.001)

    def x(when: datetime) -> float:
        return x0 + (when - t.start).total_seconds() / span * (x1 - x0)

    height = TOP + ROW_H * len(t.rows) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="run-timeline" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" {svg.FONT} '
        'font-size="11.5" aria-label="timeline of the run">',
        svg.rect(0, 0, width, height, ' fill="#ffffff"'),
        svg.text(16, 14, _summary(t), ' font-weight="600" fill="#333"'),
        svg.legend(16, 22)[0],
    ]
    lx = 16.0
    for kind, words in _BAR_LEGEND:
        status = "completed" if kind != "queue" else "scheduled"
        out.append(_bar(Bar(kind, t.start, t.start, status), lx, 22, 38).split("</title>")[1][:-4])
        out.append(svg.text(lx + 28, 55, words, ' fill="#333"'))
        lx += 40 + len(words) * svg.CHAR_WIDTH
    out.append(_overview_svg(t, x0, x1))
    out.append('<g class="axis" fill="#555">')
    grid = []
    for at, label in ticks(t.start, t.end, most=max(2, int((x1 - x0) / 110))):
        tx = x(at)
        grid.append(f'<path d="M{tx:.1f} 116V{height - 24:.1f}"/>')
        out.append(svg.text(tx, 126, label, ' text-anchor="middle"'))
    out.append(svg.text(16, 126, "UTC " + t.start.astimezone(UTC).strftime("%Y-%m-%d"), ""))
    out.append("</g>")
    for i, row in enumerate(t.rows):
        y = TOP + i * ROW_H
        pal = svg.palette(row.status)
        data = "".join(
            svg.attr(k, v)
            for k, v in (
                ("data-seq", row.seq),
                ("data-kind", row.kind),
                ("data-status", row.status),
            )
        )
        label = row.label
        tries = f" \u00b7 {row.attempts} attempts" if row.attempts > 1 else ""
        title = f"#{row.seq} {label} ({row.status}{tries}), branch {row.branch}"
        if row.error:
            title += "\n" + row.error
        shade = ' fill="#f7f9fa"' if i % 2 else ' fill="#ffffff"'
        out.append(
            f'<a class="row"{svg.attr("href", f"?step={row.seq}")}{data}>'
            f"<title>{svg.esc(title)}</title>"
            + svg.rect(0, y, width, ROW_H, shade)
            + svg.text(16, y + 15, f"#{row.seq}", ' fill="#888"')
            + svg.text(70, y + 15, svg.fit(label, LABEL_W - 150), ' fill="#1d1d1d"')
            + svg.text(LABEL_W - 70, y + 15, f"{pal.glyph} {row.status}", f' fill="{pal.text}"')
            + "".join(_bar(b, x(b.start), max(2.0, x(b.end) - x(b.start)), y) for b in row.bars)
            + "".join(_mark(b, x(b.start), max(2.0, x(b.end) - x(b.start)), y) for b in row.bars)
            + "</a>"
        )
    out.append(f'<g class="grid" {_GRID}>{"".join(grid)}</g>')
    out.append(svg.text(16, height - 10, _hidden(t), ' fill="#555"'))
    out.append("</svg>")
    return "".join(out)


def _overview_svg(t: Timeline, x0: float, x1: float) -> str:
    """The whole run as a histogram of steps begun per bucket, the window shaded; each
    bucket links to zoom into it."""
    if not t.overview:
        return ""
    top, h = 66.0, 38.0
    whole = max((t.last - t.first).total_seconds(), 0.001)

    def x(when: datetime) -> float:
        return x0 + (when - t.first).total_seconds() / whole * (x1 - x0)

    most = max(sum(b.counts.values()) for b in t.overview) or 1
    out = [
        svg.text(16, top + 14, "whole run: steps begun", ' fill="#555"'),
        svg.text(
            16, top + 28, f"{_iso(t.first)[11:19]} \u2013 {_iso(t.last)[11:19]}", ' fill="#888"'
        ),
        svg.rect(x0, top, x1 - x0, h, ' fill="#fafafa" stroke="#ddd"'),
    ]
    window = (x(t.start), top, max(3.0, x(t.end) - x(t.start)), h)
    out.append(svg.rect(*window, ' fill="#fff6c4"'))
    for bucket in t.overview:
        total = sum(bucket.counts.values())
        if not total:
            continue
        bx, bw = x(bucket.start), max(1.0, x(bucket.end) - x(bucket.start) - 0.5)
        y = top + h
        parts = []
        for status, n in sorted(bucket.counts.items(), key=_legend_order):
            bh = h * n / most
            y -= bh
            parts.append(svg.rect(bx, y, bw, bh, f' fill="{svg.palette(status).stroke}"'))
        counts = ", ".join(f"{n:,} {s}" for s, n in bucket.counts.items())
        out.append(
            f'<a class="bucket"{svg.attr("href", zoom_query(bucket.start, bucket.end))}>'
            f"<title>{svg.esc(f'{_iso(bucket.start)}: {counts} (click to zoom)')}</title>"
            + "".join(parts)
            + "</a>"
        )
    out.append(svg.rect(*window, _WINDOW))  # on top: the view may be a sliver of the run
    return "".join(out)


_ORDER = {status: k for k, status in enumerate(svg.STATUSES)}


def _legend_order(item: tuple[str, int]) -> int:
    return _ORDER.get(item[0], len(_ORDER))
