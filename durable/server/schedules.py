"""The schedule endpoints (`durable.schedules`): list, create or update, describe,
pause, resume, trigger, backfill, delete — under ``/v1/schedules``.

Decisions, as documented in ``/openapi.json``:

- ``PUT /v1/schedules/{id}`` creates (201) or updates (200) the schedule and answers its
  description; a cron that does not parse, an unknown time zone or overlap policy, or
  arguments that cannot be stored are a 400 problem saying what to fix, and nothing is
  written.
- Durations (``catchup_window``, ``jitter``) are seconds; times are ISO 8601 (UTC when
  they carry no offset). ``next_fire_times`` are in the schedule's time zone.
- trigger answers ``{"started": id}`` or ``{"started": null}`` when the overlap policy
  held the run back; backfill ``{"started": [ids]}`` (ticks that ran already are not run
  again). An unknown id is a 404 problem.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import available_timezones

from starlette.responses import Response

from ..errors import ScheduleNotFound, SerializationError
from ..schedules import ScheduleDescription
from ..ticks import MAX_WINDOW, OVERLAPS, check_id
from . import schemas as s
from .problems import Problem
from .routing import Call, Endpoint, Param, json_response

__all__ = ["ENDPOINTS", "description"]


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def description(d: ScheduleDescription) -> dict[str, Any]:
    """A schedule as the API shows it."""
    return {
        "id": d.id,
        "workflow": d.workflow,
        "cron": d.cron,
        "timezone": d.timezone,
        "overlap": d.overlap,
        "paused": d.paused,
        "next_fire_times": [_time(t) for t in d.next_fire_times],
        "recent_runs": [
            {
                "id": r.id,
                "run_id": r.run_id,
                "scheduled_at": _time(r.scheduled_at),
                "status": r.status,
            }
            for r in d.recent_runs
        ],
        "queue": d.queue,
        "args": s.plain(d.args),
        "catchup_window": d.catchup_window.total_seconds(),
        "jitter": d.jitter.total_seconds() if d.jitter else None,
        "buffered": [_time(t) for t in d.buffered or ()],
        "created_at": _time(d.created_at),
        "updated_at": _time(d.updated_at),
    }


def _id(call: Call) -> str:
    try:
        return check_id(call.path["id"])
    except ValueError as exc:
        raise Problem(400, f"{exc}.") from None


def _missing(schedule_id: str) -> Problem:
    return Problem(
        404,
        f"No schedule with id {schedule_id!r}. Create it with PUT /v1/schedules/{{id}}, or "
        "list them with GET /v1/schedules.",
    )


async def _describe(call: Call) -> dict[str, Any]:
    schedule_id = _id(call)
    try:
        return description(await call.service.client.get_schedule(schedule_id).describe())
    except ScheduleNotFound:
        raise _missing(schedule_id) from None


async def list_schedules(call: Call) -> Response:
    found = await call.service.client.list_schedules()
    return json_response({"schedules": [description(d) for d in found]})


async def put(call: Call) -> Response:
    schedule_id = _id(call)
    body = call.body
    client = call.service.client
    existed = await (await call.service.store()).get_schedule(schedule_id) is not None
    jitter = body.get("jitter")
    try:
        await client.schedule(
            body["workflow"],
            *body.get("args", []),
            id=schedule_id,
            cron=body["cron"],
            timezone=body.get("timezone", "UTC"),
            overlap=body.get("overlap", "skip"),
            catchup_window=timedelta(seconds=body.get("catchup_window", 600)),
            jitter=None if jitter is None else timedelta(seconds=jitter),
            paused=body.get("paused", False),
            queue=body.get("queue"),
        )
    except SerializationError as exc:
        status = 413 if "payload limit" in str(exc) else 400
        raise Problem(status, f"Cannot accept the arguments: {exc}") from None
    except TypeError as exc:  # the arguments do not fit what a live worker serves
        raise Problem(400, str(exc)) from None
    except ValueError as exc:
        raise Problem(400, f"{exc}. Nothing was written.") from None
    return json_response(await _describe(call), 200 if existed else 201)


async def describe(call: Call) -> Response:
    return json_response(await _describe(call))


async def _steer(call: Call, what: str) -> Response:
    schedule_id = _id(call)
    try:
        await getattr(call.service.client.get_schedule(schedule_id), what)()
    except ScheduleNotFound:
        raise _missing(schedule_id) from None
    return json_response(await _describe(call))


async def pause(call: Call) -> Response:
    return await _steer(call, "pause")


async def resume(call: Call) -> Response:
    return await _steer(call, "resume")


async def trigger(call: Call) -> Response:
    schedule_id = _id(call)
    try:
        started = await call.service.client.get_schedule(schedule_id).trigger()
    except ScheduleNotFound:
        raise _missing(schedule_id) from None
    return json_response({"started": started.id if started else None})


def _moment(body: dict[str, Any], key: str) -> datetime:
    try:
        value = datetime.fromisoformat(body[key])
    except ValueError:
        raise Problem(
            400, f"{key} must be an ISO 8601 time like 2026-12-01T09:00:00Z, not {body[key]!r}."
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def backfill(call: Call) -> Response:
    schedule_id = _id(call)
    start, end = _moment(call.body, "start"), _moment(call.body, "end")
    try:
        started = await call.service.client.get_schedule(schedule_id).backfill(
            start, end, overlap=call.body.get("overlap")
        )
    except ScheduleNotFound:
        raise _missing(schedule_id) from None
    except (ValueError, OverflowError) as exc:
        raise Problem(400, f"{exc}. Nothing was started.") from None
    return json_response({"started": [h.id for h in started]})


async def delete(call: Call) -> Response:
    schedule_id = _id(call)
    try:
        await call.service.client.get_schedule(schedule_id).delete()
    except ScheduleNotFound:
        raise _missing(schedule_id) from None
    return json_response({"id": schedule_id, "deleted": True})


# ---- the definitions -------------------------------------------------------------------

_ID = Param(
    "id",
    "path",
    {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"},
    "schedule id: letters, digits, '.', '_', '-'",
    required=True,
)
# Cron expressions the pattern matches all parse (fields in range, day of month at most 28
# so that every month has it); the server reads any croniter takes.
CRON_PATTERN = (
    r"^(\*/[1-9]|\*|[1-5]?[0-9]) (\*/[1-9]|\*|1?[0-9]|2[0-3]) (\*/[1-9]|\*|[1-9]|1[0-9]|2[0-8]) "
    r"(\*/[1-9]|\*|[1-9]|1[0-2]) (\*/[1-9]|\*|[0-6])( (\*/[1-9]|\*|[1-5]?[0-9]))?$"
)
_SECONDS = {"type": "number", "minimum": 0, "maximum": MAX_WINDOW}
_DESCRIPTION = s.obj(
    {
        "id": {"type": "string"},
        "workflow": {"type": "string"},
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "overlap": {"type": "string", "enum": list(OVERLAPS)},
        "paused": {"type": "boolean"},
        "next_fire_times": s.array(s.TIME),
        "recent_runs": s.array(
            s.obj(
                {
                    "id": {"type": "string"},
                    "run_id": {"type": ["string", "null"]},
                    "scheduled_at": s.NULL_TIME,
                    "status": {"type": ["string", "null"], "description": "null: gone"},
                },
                ("id", "run_id", "scheduled_at", "status"),
            )
        ),
        "queue": {"type": "string"},
        "args": {**s.VALUE, "description": "the workflow's arguments"},
        "catchup_window": {"type": "number", "description": "seconds"},
        "jitter": {"type": ["number", "null"], "description": "seconds"},
        "buffered": s.array(s.TIME),
        "created_at": s.NULL_TIME,
        "updated_at": s.NULL_TIME,
    },
    ("id", "workflow", "cron", "timezone", "overlap", "paused", "next_fire_times", "recent_runs"),
    description="A schedule: what it starts, when next, its latest runs (newest first).",
)
_PUT_BODY = s.obj(
    {
        "workflow": {**s.ID, "description": "the workflow's registered name"},
        "args": {**s.array(s.VALUE), "description": "the workflow's positional arguments"},
        "cron": {
            **s.ID,
            "pattern": CRON_PATTERN,
            "description": "five fields (minute hour day month weekday), or six with "
            "seconds last: '0 * * * *' is hourly. The pattern shows the plain forms; "
            "ranges, lists and names ('0 9 * * MON-FRI') are taken too",
        },
        "timezone": {
            "type": "string",
            # anyOf, not enum: the server's own check names the zone it does not know
            # rather than listing the ~600 it does.
            "anyOf": [{"enum": sorted(available_timezones())}],
            "description": "IANA time zone of the cron (default 'UTC')",
        },
        "overlap": {
            "type": "string",
            "enum": list(OVERLAPS),
            "description": "what a tick does while the previous run is open (default 'skip')",
        },
        "catchup_window": {
            **_SECONDS,
            "description": "seconds: missed ticks younger than this still start (default 600)",
        },
        "jitter": {
            **_SECONDS,
            "type": ["number", "null"],
            "description": "seconds: start each tick up to this much later (default none)",
        },
        "paused": {"type": "boolean", "description": "create it paused (default false)"},
        "queue": {**s.ID, "description": "queue (default: 'default')"},
    },
    ("workflow", "cron"),
    closed=True,
)
_BACKFILL_BODY = s.obj(
    {
        "start": {**s.TIME, "description": "ISO 8601; without an offset, UTC"},
        "end": {**s.TIME, "description": "ISO 8601, included; without an offset, UTC"},
        "overlap": {
            "type": "string",
            "enum": list(OVERLAPS),
            "description": "instead of the schedule's policy, e.g. 'allow_all' to start all",
        },
    },
    ("start", "end"),
    closed=True,
)
_TAG = ["schedules"]


def _steering(path: str, operation: str, summary: str, handler: Any) -> Endpoint:
    return Endpoint(
        "POST",
        f"/v1/schedules/{{id}}/{path}",
        operation,
        summary,
        handler,
        {200: ("The schedule", _DESCRIPTION)},
        params=[_ID],
        problems=(400, 404),
        tags=_TAG,
    )


ENDPOINTS = (
    Endpoint(
        "GET",
        "/v1/schedules",
        "listSchedules",
        "List schedules, by id",
        list_schedules,
        {200: ("Every schedule", s.obj({"schedules": s.array(_DESCRIPTION)}, ("schedules",)))},
        tags=_TAG,
    ),
    Endpoint(
        "PUT",
        "/v1/schedules/{id}",
        "putSchedule",
        "Create a schedule, or update the one with this id",
        put,
        {201: ("Created", _DESCRIPTION), 200: ("Updated", _DESCRIPTION)},
        params=[_ID],
        body=_PUT_BODY,
        body_required=True,
        problems=(400, 404, 413),
        tags=_TAG,
    ),
    Endpoint(
        "GET",
        "/v1/schedules/{id}",
        "describeSchedule",
        "Describe a schedule: next fire times, recent runs",
        describe,
        {200: ("The schedule", _DESCRIPTION)},
        params=[_ID],
        problems=(400, 404),
        tags=_TAG,
    ),
    _steering("pause", "pauseSchedule", "Pause: no ticks fire until resumed", pause),
    _steering("resume", "resumeSchedule", "Resume from the next tick after now", resume),
    Endpoint(
        "POST",
        "/v1/schedules/{id}/trigger",
        "triggerSchedule",
        "Start a run now (the overlap policy applies)",
        trigger,
        {
            200: (
                "The run started, or null if the overlap policy held it back",
                s.obj({"started": {"type": ["string", "null"]}}, ("started",)),
            )
        },
        params=[_ID],
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "POST",
        "/v1/schedules/{id}/backfill",
        "backfillSchedule",
        "Start the runs of every tick from start to end",
        backfill,
        {
            200: (
                "The runs started now",
                s.obj({"started": s.array({"type": "string"})}, ("started",)),
            )
        },
        params=[_ID],
        body=_BACKFILL_BODY,
        body_required=True,
        problems=(400, 404),
        tags=_TAG,
    ),
    Endpoint(
        "DELETE",
        "/v1/schedules/{id}",
        "deleteSchedule",
        "Delete a schedule (its runs stay)",
        delete,
        {
            200: (
                "Deleted",
                s.obj(
                    {"id": {"type": "string"}, "deleted": {"type": "boolean"}}, ("id", "deleted")
                ),
            )
        },
        params=[_ID],
        problems=(400, 404),
        tags=_TAG,
    ),
)
