"""A schedule's rules as pure functions: when it ticks, and what each tick does.

No store and no clock here (`durable.schedules` reads and writes; this decides), so the
rules are tested offline and written once for every backend:

- `Cron`: a cron expression in a time zone (parsed by croniter, zones from `zoneinfo`)
  and its ticks, as POSIX seconds, across daylight-saving changes: a tick whose local
  time falls in the spring-forward gap fires at the first time after the gap (as cron
  does); in the fall-back hour, which happens twice, an expression that names its hours
  fires in the first pass only, while one that runs every hour (hour field ``*``) fires in
  both, since they are an hour apart.
- `due_ticks`: the ticks due now, with the catch-up window applied (ticks older than it,
  missed while no worker ran, are skipped) and each tick's jitter.
- `plan`: the overlap policy applied to those ticks: which runs to start, which tick to
  keep for later, which earlier run to cancel or terminate. The caller writes the
  result with a compare-and-set on the schedule's version in the transaction that
  creates the runs, so each tick starts one run whatever the number of workers.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from .rows import ScheduleRecord

__all__ = [
    "MAX_TICKS",
    "MAX_WINDOW",
    "OVERLAPS",
    "RECENT_RUNS",
    "SCHEDULED_AT_TAG",
    "SCHEDULE_TAG",
    "Cron",
    "Overlap",
    "Plan",
    "check_id",
    "check_overlap",
    "check_window",
    "due_ticks",
    "jitter_offset",
    "plan",
    "scheduled_at",
    "tick_id",
    "tick_tags",
]

Overlap = Literal[
    "skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"
]
#: What a tick does while the schedule's previous run is still open.
OVERLAPS: tuple[Overlap, ...] = (
    "skip",  # nothing: the tick is dropped
    "buffer_one",  # start it once the open run closes; more ticks meanwhile are dropped
    "buffer_all",  # start each, in order, one after another as the previous closes
    "cancel_other",  # request the open run's cancellation; start once it has closed
    "terminate_other",  # terminate the open run and start at once
    "allow_all",  # start at once, runs overlap
)
RECENT_RUNS = 10  # workflow ids of its latest runs a schedule keeps for describe()
MAX_WINDOW = 10 * 365 * 86400.0  # seconds: the longest catch-up window or jitter
MAX_TICKS = 100  # most ticks one firing handles (after a long outage the rest come next)
SCHEDULE_TAG = "durable.schedule"  # tag on each run a schedule starts: the schedule's id
SCHEDULED_AT_TAG = "durable.scheduled_at"  # and its tick (ISO 8601, UTC): info().scheduled_at
_SEARCH_LIMIT = 1000  # ticks skipped in a row (fall-back repeats) before giving up
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_id(schedule_id: object) -> str:
    """``schedule_id`` if it is a usable schedule id; `ValueError` saying why not."""
    if not isinstance(schedule_id, str) or not _ID.fullmatch(schedule_id):
        raise ValueError(
            f"A schedule id must be 1-200 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (it is part of each run's id and of URLs), not {schedule_id!r:.80}"
        )
    return schedule_id


def check_overlap(overlap: object) -> Overlap:
    """``overlap`` if it names a policy of `OVERLAPS`; `ValueError` listing them if not."""
    for known in OVERLAPS:
        if overlap == known:
            return known
    raise ValueError(f"overlap must be one of {', '.join(OVERLAPS)}; got {overlap!r:.80}")


def check_window(what: str, value: object, *, allow_none: bool) -> float:
    """A ``timedelta`` (or seconds) option as seconds >= 0; ``None`` is 0 if allowed."""
    if value is None and allow_none:
        return 0.0
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"{what} must be a timedelta (or seconds), not {value!r:.80}")
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"{what} must be zero or more, not {value!r:.80}")
    if seconds > MAX_WINDOW:
        raise ValueError(f"{what} must be at most {MAX_WINDOW:g} s (ten years), not {value!r:.80}")
    return seconds


class Cron:
    """A cron expression in a time zone, and its ticks as POSIX seconds.

    Five fields (minute hour day month weekday), or six with seconds last, as croniter
    reads them: ``"0 * * * *"`` hourly, ``"* * * * * */10"`` every ten seconds.

    Raises `ValueError` for an expression that does not parse or never fires, and for a
    time zone `zoneinfo` does not know, saying which and how to write it.
    """

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError(f"cron must be a cron expression like '0 * * * *', not {expression!r}")
        if not isinstance(timezone, str) or not timezone:
            raise ValueError(
                f"timezone must be an IANA name like 'Europe/Berlin', not {timezone!r}"
            )
        try:
            self.zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"Unknown time zone {timezone!r}: use an IANA name like 'Europe/Berlin' or "
                "'UTC' (on systems without a time zone database, pip install tzdata)"
            ) from exc
        self.expression = " ".join(expression.split())
        self.timezone = timezone
        try:
            fields = croniter(self.expression).expanded
        except Exception as exc:  # croniter's errors are ValueErrors and KeyErrors
            raise ValueError(
                f"The cron expression {expression!r} does not parse ({exc}). Write five "
                "fields, minute hour day month weekday, like '0 * * * *' (hourly) or "
                "'30 2 * * 1-5' (02:30 on weekdays); a sixth, last field gives seconds."
            ) from exc
        hours = fields[1]
        # Vixie cron's rule for the fall-back hour: a job that runs every hour runs in both
        # passes; one that names its hours runs once.
        self._every_hour = hours == ["*"] or len(set(hours)) == 24
        if self.next_after(0.0) is None:
            raise ValueError(f"The cron expression {expression!r} never fires")

    def next_after(self, t: float) -> float | None:
        """The first tick strictly after ``t``, or ``None`` if there is none."""
        start = datetime.fromtimestamp(t, UTC).astimezone(self.zone)
        try:
            it = croniter(self.expression, start)
            for _ in range(_SEARCH_LIMIT):
                local: datetime = it.get_next(datetime)
                tick = local.timestamp()
                if tick <= t:
                    continue  # a gap folded two ticks onto one instant
                if not self._every_hour and _second_pass(local, self.zone):
                    continue
                return float(round(tick, 3))
        except Exception:  # croniter gives up on dates that never come (30 February)
            return None
        return None

    def upcoming(self, after: float, count: int) -> list[float]:
        """The next ``count`` ticks after ``after``."""
        ticks: list[float] = []
        t: float | None = after
        while len(ticks) < count and t is not None:
            t = self.next_after(t)
            if t is not None:
                ticks.append(t)
        return ticks


def _second_pass(local: datetime, zone: ZoneInfo) -> bool:
    """Whether ``local`` is the second occurrence of a wall-clock time (fall-back hour)."""
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=zone, fold=0).utcoffset()
    second = naive.replace(tzinfo=zone, fold=1).utcoffset()
    return first is not None and second is not None and first > second == local.utcoffset()


def tick_id(schedule_id: str, tick: float) -> str:
    """The workflow id of a schedule's run for ``tick``: ``{schedule_id}@{ISO time, UTC}``
    (``hourly-etl@2026-12-02T17:00:00Z``; milliseconds only when the tick has them)."""
    return f"{schedule_id}@{_iso(tick)}"


def _iso(tick: float) -> str:
    moment = datetime.fromtimestamp(tick, UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_at(tags: Mapping[str, str]) -> float | None:
    """The tick a run was started for, from its `SCHEDULED_AT_TAG`; ``None`` if none."""
    value = tags.get(SCHEDULED_AT_TAG)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def tick_tags(schedule_id: str, tick: float) -> dict[str, str]:
    """The tags of a run a schedule starts for ``tick``."""
    return {SCHEDULE_TAG: schedule_id, SCHEDULED_AT_TAG: _iso(tick)}


def jitter_offset(schedule_id: str, tick: float, jitter: float) -> float:
    """How long after ``tick`` its run starts: a fraction of ``jitter`` seconds drawn from
    the schedule id and the tick, so every worker computes the same one."""
    if jitter <= 0:
        return 0.0
    digest = hashlib.sha256(f"{schedule_id}@{tick!r}".encode()).digest()
    return jitter * int.from_bytes(digest[:8], "big") / 2**64


def due_at(schedule: ScheduleRecord, next_tick: float | None) -> float | None:
    """When a worker acts on ``next_tick``: the tick plus its jitter."""
    if next_tick is None:
        return None
    return next_tick + jitter_offset(schedule.schedule_id, next_tick, schedule.jitter)


def due_ticks(schedule: ScheduleRecord, cron: Cron, now: float) -> tuple[list[float], float | None]:
    """The schedule's ticks due by ``now`` (at most `MAX_TICKS`), oldest first, and the
    next tick after them. Ticks older than the catch-up window are skipped."""
    t = schedule.next_tick
    if t is None:
        return [], None
    horizon = now - schedule.catchup_window
    if t < horizon:
        # Missed while no worker ran, and too old now: the first tick at or after horizon.
        t = cron.next_after(math.ceil(horizon) - 1.0)
    ticks: list[float] = []
    while t is not None and len(ticks) < MAX_TICKS:
        if t + jitter_offset(schedule.schedule_id, t, schedule.jitter) > now:
            break
        ticks.append(t)
        t = cron.next_after(t)
    return ticks, t


@dataclass(frozen=True)
class Plan:
    """What one firing does: the schedule's new state (its version one up), the ticks to
    start runs for (oldest first), and the earlier run to cancel or terminate first."""

    schedule: ScheduleRecord
    starts: tuple[float, ...]
    cancel: str | None = None
    terminate: str | None = None
    changed: bool = True  # False: nothing to write


def plan(
    schedule: ScheduleRecord,
    ticks: Sequence[float],
    next_tick: float | None,
    *,
    latest_open: bool,
    now: float,
    overlap: Overlap | None = None,
) -> Plan:
    """Apply the overlap policy to ``ticks`` (due now, oldest first) given whether the
    schedule's latest run is still open; ``next_tick`` becomes its next tick.

    ``overlap`` overrides the schedule's policy (a backfill may). A `Plan` whose
    ``changed`` is false has nothing to write.
    """
    policy = overlap or check_overlap(schedule.overlap)
    buffered = list(schedule.buffered)
    starts: list[float] = []
    cancel = terminate = None
    open_ = latest_open
    latest = schedule.latest

    def start(tick: float) -> None:
        nonlocal open_, latest
        starts.append(tick)
        latest, open_ = tick_id(schedule.schedule_id, tick), True

    if policy in ("cancel_other", "terminate_other"):
        if ticks:
            buffered = []  # the newest tick supersedes every earlier one
            tick = ticks[-1]
            if not open_:
                start(tick)
            elif policy == "terminate_other":
                terminate = latest
                start(tick)
            else:
                cancel, buffered = latest, [tick]
        elif buffered and not open_:
            start(buffered.pop(0))
    else:
        if buffered and not open_:
            start(buffered.pop(0))
        for tick in ticks:
            if policy == "allow_all" or not open_:
                start(tick)
            elif policy == "buffer_all" or (policy == "buffer_one" and not buffered):
                buffered.append(tick)
    new_ids = [tick_id(schedule.schedule_id, t) for t in reversed(starts)]
    state = replace(
        schedule,
        next_tick=next_tick,
        due_at=due_at(schedule, next_tick),
        buffered=tuple(buffered),
        latest=latest,
        recent=tuple(dict.fromkeys([*new_ids, *schedule.recent]))[:RECENT_RUNS],
    )
    if state == schedule:
        return Plan(schedule, (), changed=False)
    return Plan(
        replace(state, version=schedule.version + 1, updated_at=now),
        tuple(starts),
        cancel,
        terminate,
    )
