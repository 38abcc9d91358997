"""Schedules: start a workflow on a cron schedule, in a time zone, exactly once per tick.

    handle = await client.schedule(
        etl, "eu", id="hourly-etl", cron="0 * * * *", timezone="Europe/Berlin",
        overlap="skip", catchup_window=timedelta(minutes=10),
    )
    print((await handle.describe()).next_fire_times)
    await handle.pause(); await handle.resume(); await handle.trigger()

A schedule is a row of the ``schedules`` table (`ScheduleRecord`). Workers fire it: every
worker's timer loop asks the store for due schedules (`fire_due`), works out what each
tick does (`durable.ticks`: cron, time zone, catch-up window, jitter, overlap policy) and
writes the outcome as a compare-and-set on the schedule's version in the transaction that
creates the tick's run, so exactly one worker's write lands whatever the number of workers;
the run's id, ``{schedule_id}@{tick in ISO 8601, UTC}``, guards a second time. The run is
tagged with its schedule and tick (`durable.ticks.SCHEDULE_TAG`), which is where
``durable.info().scheduled_at`` comes from.

`ScheduleMethods` is the part of `durable.Client` that creates, lists and finds schedules;
`ScheduleHandle` steers one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import payload, signature
from .clock import Clock
from .definition import workflow_definition
from .errors import ScheduleNotFound
from .store import CLOSED_STATUSES, NewRun, ScheduleRecord, Store
from .ticks import (
    Cron,
    Overlap,
    Plan,
    check_id,
    check_overlap,
    check_window,
    due_at,
    due_ticks,
    plan,
    scheduled_at,
    tick_id,
    tick_tags,
)

if TYPE_CHECKING:
    from .client import Client, WorkflowHandle

__all__ = [
    "DEFAULT_CATCHUP",
    "FIRE_BATCH",
    "MAX_BACKFILL",
    "NEXT_FIRE_TIMES",
    "ScheduleDescription",
    "ScheduleHandle",
    "ScheduleMethods",
    "ScheduledRun",
    "fire_due",
]

logger = logging.getLogger(__name__)

DEFAULT_CATCHUP = timedelta(minutes=10)  # missed ticks younger than this still start
NEXT_FIRE_TIMES = 5  # upcoming ticks describe() shows
MAX_BACKFILL = 1000  # ticks one backfill may cover: a larger range is refused, not cut
FIRE_BATCH = 50  # schedules one worker fires per pass of its timer loop
CAS_ATTEMPTS = 20  # a client's read-modify-write of a schedule, raced by workers, retries


@dataclass(frozen=True)
class ScheduledRun:
    """One of a schedule's recent runs: its workflow id, the tick it was started for, and
    its status (``None`` once the run is gone, pruned)."""

    id: str
    scheduled_at: datetime | None
    status: str | None
    run_id: str | None


@dataclass(frozen=True)
class ScheduleDescription:
    """What `ScheduleHandle.describe` and `Client.list_schedules` return.

    ``next_fire_times`` are aware datetimes in the schedule's time zone (none while
    paused); ``recent_runs`` its latest runs, newest first.
    """

    id: str
    workflow: str
    cron: str
    timezone: str
    overlap: str
    paused: bool
    next_fire_times: list[datetime]
    recent_runs: list[ScheduledRun]
    queue: str = "default"
    catchup_window: timedelta = DEFAULT_CATCHUP
    jitter: timedelta | None = None
    buffered: list[datetime] | None = None  # ticks waiting for the open run to close
    args: list[Any] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


async def _latest_open(store: Store, schedule: ScheduleRecord) -> bool:
    if schedule.latest is None:
        return False
    run = await store.get_run(schedule.latest)
    return run is not None and run.status not in CLOSED_STATUSES


async def _apply(
    client: Client, store: Store, before: ScheduleRecord, decided: Plan, now: float
) -> list[str] | None:
    """Carry out ``decided``: cancel or terminate the run it names (idempotent, and what
    any worker winning this tick would do too), then write the schedule's new state and
    its runs as one compare-and-set. The ids of the runs, or ``None`` if another write
    won (nothing written)."""
    reason = f"schedule {before.schedule_id!r} started a newer run (overlap {before.overlap})"
    if decided.terminate is not None:
        await client.get_handle(decided.terminate).terminate(reason)
    if decided.cancel is not None:
        await client.get_handle(decided.cancel).cancel(reason)
    runs = [
        NewRun(
            workflow_id=tick_id(before.schedule_id, tick),
            run_id=str(uuid.uuid4()),
            name=before.workflow,
            queue=before.queue,
            input=before.input,
            created_at=now,
            tags=tick_tags(before.schedule_id, tick),
        )
        for tick in decided.starts
    ]
    if not await store.save_schedule(decided.schedule, expected_version=before.version, runs=runs):
        return None
    return [run.workflow_id for run in runs]


async def fire_due(client: Client, store: Store, now: float) -> tuple[float | None, bool | None]:
    """Fire every schedule due at ``now`` (a worker's timer loop calls this). Returns the
    next time one is due (or ``None``), and whether a schedule it fired now waits for a
    run to close (ticks buffered by the overlap policy: it is due again as soon as any run
    closes, so the caller should wake on `TOPIC_STATUS`); ``None`` if none was due.

    Each tick's run is written with a compare-and-set, so workers calling this at once
    start it once between them; a schedule that cannot be fired (its workflow's
    arguments gone bad, say) is logged and left for the next pass.
    """
    due, next_due = await store.due_schedules(now, FIRE_BATCH)
    waiting = None if not due else False
    for schedule in due:
        try:
            cron = Cron(schedule.cron, schedule.timezone)
            ticks, next_tick = due_ticks(schedule, cron, now)
            skipped = schedule.next_tick is not None and ticks and ticks[0] > schedule.next_tick
            if skipped or (not ticks and next_tick != schedule.next_tick):
                logger.info(
                    "Schedule %r: ticks missed for longer than its catch-up window (%g s) "
                    "are skipped",
                    schedule.schedule_id,
                    schedule.catchup_window,
                )
            decided = plan(
                schedule, ticks, next_tick, latest_open=await _latest_open(store, schedule), now=now
            )
            if not decided.changed:
                continue
            started = await _apply(client, store, schedule, decided, now)
        except Exception:
            logger.exception("Schedule %r could not be fired", schedule.schedule_id)
            continue
        if started is None:
            continue  # another worker fired it: it notifies, and the next pass re-reads
        waiting = waiting or bool(decided.schedule.buffered)
        if started:
            logger.info("Schedule %r started %s", schedule.schedule_id, ", ".join(started))
        mine = decided.schedule.due_at
        if mine is not None and not decided.schedule.paused:
            next_due = mine if next_due is None else min(next_due, mine)
    if len(due) == FIRE_BATCH:
        next_due = now  # there may be more due than one pass takes: go again at once
    return next_due, waiting


class ScheduleHandle:
    """One schedule, by id: describe, pause, resume, trigger, backfill, delete.

    From `Client.schedule` (which creates or updates it) or `Client.get_schedule`.
    """

    def __init__(self, client: Client, schedule_id: str) -> None:
        self.client = client
        self.id = schedule_id

    def __repr__(self) -> str:
        return f"<ScheduleHandle {self.id!r}>"

    async def _read(self) -> tuple[Store, ScheduleRecord]:
        store = await self.client._open()
        schedule = await store.get_schedule(self.id)
        if schedule is None:
            raise ScheduleNotFound(
                f"No schedule with id {self.id!r} in {store.url}; create it with "
                "client.schedule(..., id=...)."
            )
        return store, schedule

    async def _change(self, change: Callable[[ScheduleRecord, float], ScheduleRecord]) -> None:
        for _ in range(CAS_ATTEMPTS):
            store, schedule = await self._read()
            now = self.client.clock.now()
            new = change(schedule, now)
            new = replace(new, version=schedule.version + 1, updated_at=now)
            if await store.save_schedule(new, expected_version=schedule.version):
                return
        raise RuntimeError(f"Schedule {self.id!r} kept changing under this write; try again")

    async def describe(self) -> ScheduleDescription:
        """The schedule: what it starts, when next (`NEXT_FIRE_TIMES` ticks), its latest
        runs with their status. Raises `ScheduleNotFound`."""
        store, schedule = await self._read()
        return await _describe(store, schedule)

    async def pause(self) -> None:
        """Stop firing until `resume`; ticks meanwhile are not made up for. Runs already
        started go on. Raises `ScheduleNotFound`."""
        await self._change(lambda s, now: replace(s, paused=True))

    async def resume(self) -> None:
        """Fire again, from the next tick after now (ticks missed while paused do not
        start). Raises `ScheduleNotFound`."""

        def resumed(s: ScheduleRecord, now: float) -> ScheduleRecord:
            if not s.paused:
                return s
            next_tick = Cron(s.cron, s.timezone).next_after(now)
            return replace(s, paused=False, next_tick=next_tick, due_at=due_at(s, next_tick))

        await self._change(resumed)

    async def trigger(self) -> WorkflowHandle[Any] | None:
        """Start a run now, as a tick at the current time would (the overlap policy
        applies: with ``skip`` and a run still open nothing starts). Works while paused.
        Returns the new run's handle, or ``None`` if the policy held it back (buffered or
        skipped). Raises `ScheduleNotFound`."""
        started = await self._manual(lambda s, now: [round(now, 3)], None)
        return self.client.get_handle(started[0]) if started else None

    async def backfill(
        self, start: datetime, end: datetime, *, overlap: Overlap | None = None
    ) -> list[WorkflowHandle[Any]]:
        """Start the runs of every tick from ``start`` to ``end`` (both included; naive
        datetimes are UTC), oldest first, as if they had fired then: each run's
        ``scheduled_at`` is its tick. A tick whose run exists already is not run again.

        The schedule's overlap policy applies unless ``overlap`` is given: with ``skip``
        only the first starts while it runs; ``"allow_all"`` starts them all at once,
        ``"buffer_all"`` one after another. Returns the handles of the runs started now.

        Raises `ValueError` when ``start`` is after ``end`` or the range holds more than
        `MAX_BACKFILL` ticks; `ScheduleNotFound`.
        """
        first, last = _timestamp(start, "start"), _timestamp(end, "end")
        if first > last:
            raise ValueError(
                f"backfill start {start.isoformat()} is after its end {end.isoformat()}: "
                "give the earlier time first"
            )
        policy = None if overlap is None else check_overlap(overlap)

        def ticks(s: ScheduleRecord, now: float) -> list[float]:
            cron = Cron(s.cron, s.timezone)
            found: list[float] = []
            t = cron.next_after(first - 0.001)
            while t is not None and t <= last:
                if len(found) == MAX_BACKFILL:
                    raise ValueError(
                        f"The range {start.isoformat()} to {end.isoformat()} holds more than "
                        f"{MAX_BACKFILL} ticks of {s.cron!r}; backfill it in smaller parts"
                    )
                found.append(t)
                t = cron.next_after(t)
            return found

        started = await self._manual(ticks, policy)
        return [self.client.get_handle(workflow_id) for workflow_id in started]

    async def _manual(
        self, ticks: Callable[[ScheduleRecord, float], Sequence[float]], overlap: Overlap | None
    ) -> list[str]:
        for _ in range(CAS_ATTEMPTS):
            store, schedule = await self._read()
            now = self.client.clock.now()
            chosen = [
                tick
                for tick in ticks(schedule, now)
                if await store.get_run(tick_id(self.id, tick)) is None  # ran already
            ]
            if not chosen:
                return []
            open_ = await _latest_open(store, schedule)
            decided = plan(
                schedule, chosen, schedule.next_tick, latest_open=open_, now=now, overlap=overlap
            )
            if not decided.changed:
                return []
            started = await _apply(self.client, store, schedule, decided, now)
            if started is not None:
                return started
        raise RuntimeError(f"Schedule {self.id!r} kept changing under this write; try again")

    async def delete(self) -> None:
        """Delete the schedule; its runs stay. Raises `ScheduleNotFound`."""
        store = await self.client._open()
        if not await store.delete_schedule(self.id):
            raise ScheduleNotFound(f"No schedule with id {self.id!r} in {store.url}")


def _timestamp(when: datetime, what: str) -> float:
    if not isinstance(when, datetime):
        raise ValueError(f"backfill {what} must be a datetime, not {when!r:.80}")
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


async def _describe(store: Store, schedule: ScheduleRecord) -> ScheduleDescription:
    cron = Cron(schedule.cron, schedule.timezone)
    upcoming: list[float] = []
    if not schedule.paused and schedule.next_tick is not None:
        upcoming = [schedule.next_tick, *cron.upcoming(schedule.next_tick, NEXT_FIRE_TIMES - 1)]
    recent = []
    for workflow_id in schedule.recent:
        run = await store.get_run(workflow_id)
        tick = scheduled_at(run.tags) if run is not None else None
        recent.append(
            ScheduledRun(
                id=workflow_id,
                scheduled_at=_dt(tick) if tick is not None else None,
                status=run.status if run is not None else None,
                run_id=run.run_id if run is not None else None,
            )
        )
    try:
        decoded = payload.decode(schedule.input)
        args = decoded.get("args") if isinstance(decoded, dict) else decoded
    except Exception:
        args = None
    return ScheduleDescription(
        id=schedule.schedule_id,
        workflow=schedule.workflow,
        cron=schedule.cron,
        timezone=schedule.timezone,
        overlap=schedule.overlap,
        paused=schedule.paused,
        next_fire_times=[_dt(t).astimezone(cron.zone) for t in upcoming],
        recent_runs=recent,
        queue=schedule.queue,
        catchup_window=timedelta(seconds=schedule.catchup_window),
        jitter=timedelta(seconds=schedule.jitter) if schedule.jitter else None,
        buffered=[_dt(t).astimezone(cron.zone) for t in schedule.buffered],
        args=list(args) if isinstance(args, list | tuple) else None,
        created_at=_dt(schedule.created_at),
        updated_at=_dt(schedule.updated_at),
    )


class ScheduleMethods:
    """The schedule methods of `durable.Client` (which provides `_open` and `clock`)."""

    clock: Clock

    async def _open(self) -> Store:
        raise NotImplementedError  # Client's

    async def schedule(
        self,
        fn_or_name: Callable[..., Awaitable[Any]] | str,
        *args: Any,
        id: str,
        cron: str,
        timezone: str = "UTC",
        overlap: Overlap = "skip",
        catchup_window: timedelta = DEFAULT_CATCHUP,
        jitter: timedelta | None = None,
        paused: bool = False,
        queue: str | None = None,
    ) -> ScheduleHandle:
        """Create the schedule ``id``, or update it, and return its handle.

            await client.schedule(etl, "eu", id="hourly-etl", cron="0 * * * *",
                                  timezone="Europe/Berlin", overlap="skip")

        Each tick of ``cron`` (five fields, or six with seconds last) in ``timezone`` (an
        IANA name) starts the workflow with ``args``, as run ``{id}@{tick, ISO UTC}``.
        ``overlap`` says what a tick does while the previous run is open (`OVERLAPS`:
        ``skip``, ``buffer_one``, ``buffer_all``, ``cancel_other``, ``terminate_other``,
        ``allow_all``). Ticks missed while no worker ran start late if younger than
        ``catchup_window``, else never. ``jitter`` delays each tick's start by up to that
        much (the same for every worker). Updating keeps the schedule's state; a changed
        cron or time zone, or an unpause, fires from the next tick after now.

        Raises `ValueError` (nothing written) for a cron that does not parse, an unknown
        time zone, an unknown overlap, a bad id or window; `SerializationError` for
        arguments that cannot be stored; `TypeError` for arguments that do not fit the
        workflow as a live worker serves it (scheduled by name).
        """
        check_id(id)
        ticks = Cron(cron, timezone)
        policy = check_overlap(overlap)
        window = check_window("catchup_window", catchup_window, allow_none=False)
        spread = check_window("jitter", jitter, allow_none=True)
        if not isinstance(paused, bool):
            raise ValueError(f"paused must be True or False, not {paused!r:.80}")
        store = await self._open()
        if isinstance(fn_or_name, str):
            name, default_queue = fn_or_name, "default"
            encoded = payload.encode(
                {"args": list(args), "kwargs": {}}, what=f"arguments of workflow {name!r}"
            )
            await signature.check_live(store, name, payload.decode(encoded)["args"], "schedule")
        else:
            defn = workflow_definition(fn_or_name)
            name, default_queue = defn.name, defn.queue
            encoded = payload.encode_args(defn.fn, args, {}, what=f"arguments of workflow {name!r}")
        for _ in range(CAS_ATTEMPTS):
            now = self.clock.now()
            existing = await store.get_schedule(id)
            fields: dict[str, Any] = {
                "workflow": name,
                "queue": queue or default_queue,
                "input": encoded,
                "cron": ticks.expression,
                "timezone": timezone,
                "overlap": policy,
                "catchup_window": window,
                "jitter": spread,
                "paused": paused,
                "updated_at": now,
            }
            if existing is None:
                new = ScheduleRecord(
                    schedule_id=id,
                    next_tick=None,
                    due_at=None,
                    buffered=(),
                    latest=None,
                    recent=(),
                    version=1,
                    created_at=now,
                    **fields,
                )
            else:
                new = replace(existing, version=existing.version + 1, **fields)
            same_times = (
                existing is not None
                and (existing.cron, existing.timezone) == (new.cron, new.timezone)
                and not (existing.paused and not paused)
            )
            next_tick = existing.next_tick if existing and same_times else ticks.next_after(now)
            new = replace(new, next_tick=next_tick, due_at=due_at(new, next_tick))
            expected = None if existing is None else existing.version
            if await store.save_schedule(new, expected_version=expected):
                return ScheduleHandle(self, id)  # type: ignore[arg-type]
        raise RuntimeError(f"Schedule {id!r} kept changing under this write; try again")

    def get_schedule(self, schedule_id: str) -> ScheduleHandle:
        """A handle for the schedule ``schedule_id`` (its methods raise `ScheduleNotFound`
        if there is none; `ValueError` here for an id no schedule can have)."""
        return ScheduleHandle(self, check_id(schedule_id))  # type: ignore[arg-type]

    async def list_schedules(self) -> list[ScheduleDescription]:
        """Every schedule, by id, described as `ScheduleHandle.describe` does."""
        store = await self._open()
        return [await _describe(store, s) for s in await store.list_schedules()]
