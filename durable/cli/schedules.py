"""``durable schedule ...``: create, list, show, pause, resume, trigger, backfill and
delete schedules (`durable.schedules`).

    durable schedule create hourly-etl etl --cron "0 * * * *" --timezone Europe/Berlin \\
        --input '["eu"]' --overlap skip --catchup-window 10m
    durable schedule list [--json]
    durable schedule show hourly-etl [--json]
    durable schedule pause hourly-etl | resume hourly-etl | delete hourly-etl
    durable schedule trigger hourly-etl
    durable schedule backfill hourly-etl 2026-12-01T00:00 2026-12-01T12:00 [--overlap allow_all]

Times without an offset are UTC. A refusal (bad cron, unknown zone, no such schedule) goes
to stderr with exit status 1, as for every command.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ..client import Client
from ..errors import ScheduleNotFound
from ..schedules import ScheduleDescription
from ..ticks import OVERLAPS
from . import render
from .commands import Refused

__all__ = ["add_commands"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 90, 90s, 10m, 2h or 1d, got {text!r}"
        )
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time like 2026-12-01T09:00 or 2026-12-01T09:00+01:00, "
            f"got {text!r}"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_commands(
    sub: Any, command: Callable[..., argparse.ArgumentParser], json_input: Callable[[str], Any]
) -> None:
    """Add ``durable schedule ...`` to the parser: ``command(name, help, json=)`` makes a
    subcommand with ``--db`` (and ``--json``) under ``sub``; ``json_input`` reads
    ``--input``."""
    top = sub.add_parser(
        "schedule",
        help="create, list, show, pause, resume, trigger, backfill or delete schedules",
        description="Schedules: start a workflow on a cron schedule, in a time zone.",
    )
    actions = top.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str, *, json: bool = False) -> argparse.ArgumentParser:
        p = command(name, help, json=json, under=actions)
        if name != "list":
            p.add_argument("id", help="the schedule's id")
        return p

    p = action("create", "create a schedule, or update the one with that id", json=True)
    p.add_argument("workflow", help="the workflow's name")
    p.add_argument("--cron", required=True, help='cron expression, e.g. "0 * * * *" (hourly)')
    p.add_argument("--timezone", default="UTC", help="IANA time zone of the cron (default UTC)")
    p.add_argument("--input", type=json_input, help="JSON: a list of arguments, or one argument")
    p.add_argument("--overlap", choices=OVERLAPS, default="skip", help="while a run is open")
    p.add_argument(
        "--catchup-window",
        type=_duration,
        default=timedelta(minutes=10),
        help="missed ticks younger than this still start (default 10m)",
    )
    p.add_argument("--jitter", type=_duration, help="start each tick up to this much later")
    p.add_argument("--paused", action="store_true", help="create it paused")
    p.add_argument("--queue", help="queue of its runs (default: 'default')")
    p.set_defaults(run=create)
    action("list", "list schedules", json=True).set_defaults(run=list_schedules)
    action("show", "a schedule: next fire times, recent runs", json=True).set_defaults(run=show)
    action("pause", "stop firing until resumed").set_defaults(run=pause)
    action("resume", "fire again from the next tick").set_defaults(run=resume)
    action("trigger", "start a run now (the overlap policy applies)", json=True).set_defaults(
        run=trigger
    )
    p = action("backfill", "start the runs of every tick from START to END (both in)", json=True)
    p.add_argument("start", type=_moment, help="ISO 8601; no offset means UTC")
    p.add_argument("end", type=_moment, help="ISO 8601; no offset means UTC")
    p.add_argument("--overlap", choices=OVERLAPS, help="instead of the schedule's policy")
    p.set_defaults(run=backfill)
    action("delete", "delete a schedule (its runs stay)").set_defaults(run=delete)


async def create(args: argparse.Namespace) -> int:
    """``durable schedule create ID WORKFLOW --cron ...``."""
    data = args.input
    call_args = data if isinstance(data, list) else ([] if data is None else [data])
    async with Client(args.db) as client:
        try:
            handle = await client.schedule(
                args.workflow,
                *call_args,
                id=args.id,
                cron=args.cron,
                timezone=args.timezone,
                overlap=args.overlap,
                catchup_window=args.catchup_window,
                jitter=args.jitter,
                paused=args.paused,
                queue=args.queue,
            )
        except (TypeError, ValueError) as exc:  # bad options; arguments a worker refuses
            raise Refused(str(exc)) from None
        d = await handle.describe()
    if args.json:
        render_json(d)
    else:
        nxt = render.when(d.next_fire_times[0]) if d.next_fire_times else "paused"
        print(f"schedule {d.id}: {d.workflow} at {d.cron!r} ({d.timezone}); next {nxt}")
    return 0


def render_json(value: Any) -> None:
    print(render.dumps(value, indent=2))


async def list_schedules(args: argparse.Namespace) -> int:
    """``durable schedule list``."""
    async with Client(args.db) as client:
        found = await client.list_schedules()
    if args.json:
        render_json(found)
    elif not found:
        print("no schedules")
    else:
        rows = [
            (
                d.id,
                d.workflow,
                d.cron,
                d.timezone,
                d.overlap,
                "paused" if d.paused else render.when(d.next_fire_times[0]),
                d.recent_runs[0].id if d.recent_runs else "-",
            )
            for d in found
        ]
        headers = ("ID", "WORKFLOW", "CRON", "ZONE", "OVERLAP", "NEXT", "LAST RUN")
        for line in render.table(headers, rows):
            print(line)
    return 0


async def _described(args: argparse.Namespace, client: Client) -> ScheduleDescription:
    try:
        return await client.get_schedule(args.id).describe()
    except (ScheduleNotFound, ValueError) as exc:
        raise Refused(str(exc)) from None


async def show(args: argparse.Namespace) -> int:
    """``durable schedule show ID``."""
    async with Client(args.db) as client:
        d = await _described(args, client)
    if args.json:
        render_json(d)
        return 0
    jitter = render.took(d.jitter.total_seconds()) if d.jitter else "none"
    lines = [
        f"schedule   {d.id}{'  (paused)' if d.paused else ''}",
        f"workflow   {d.workflow} on queue {d.queue}, arguments {render.dumps(d.args)}",
        f"cron       {d.cron} in {d.timezone}",
        f"overlap    {d.overlap}; catch-up window "
        f"{render.took(d.catchup_window.total_seconds())}; jitter {jitter}",
        "next       " + (", ".join(t.isoformat() for t in d.next_fire_times) or "-"),
    ]
    if d.buffered:
        lines.append("waiting    " + ", ".join(t.isoformat() for t in d.buffered))
    lines.append("recent runs:" if d.recent_runs else "recent runs: none yet")
    lines += (
        render.table(
            ("RUN", "STATUS"), [(r.id, r.status or "gone") for r in d.recent_runs], indent="  "
        )
        if d.recent_runs
        else []
    )
    for line in lines:
        print(line)
    return 0


async def _act(args: argparse.Namespace, what: str) -> int:
    async with Client(args.db) as client:
        handle = client.get_schedule(args.id)
        try:
            await getattr(handle, what)()
        except ScheduleNotFound as exc:
            raise Refused(str(exc)) from None
    print(f"schedule {args.id}: {what}{'d' if what.endswith('e') else 'ed'}")
    return 0


async def pause(args: argparse.Namespace) -> int:
    """``durable schedule pause ID``."""
    return await _act(args, "pause")


async def resume(args: argparse.Namespace) -> int:
    """``durable schedule resume ID``."""
    return await _act(args, "resume")


async def delete(args: argparse.Namespace) -> int:
    """``durable schedule delete ID``."""
    return await _act(args, "delete")


async def trigger(args: argparse.Namespace) -> int:
    """``durable schedule trigger ID``: start a run now."""
    async with Client(args.db) as client:
        try:
            started = await client.get_schedule(args.id).trigger()
        except ScheduleNotFound as exc:
            raise Refused(str(exc)) from None
    if args.json:
        render_json({"started": started.id if started else None})
    elif started is None:
        print(f"schedule {args.id}: nothing started (its overlap policy held the run back)")
    else:
        print(f"started {started.id}")
    return 0


async def backfill(args: argparse.Namespace) -> int:
    """``durable schedule backfill ID START END``."""
    async with Client(args.db) as client:
        try:
            started = await client.get_schedule(args.id).backfill(
                args.start, args.end, overlap=args.overlap
            )
        except (ScheduleNotFound, ValueError) as exc:
            raise Refused(str(exc)) from None
    if args.json:
        render_json({"started": [h.id for h in started]})
    else:
        for handle in started:
            print(f"started {handle.id}")
        print(f"schedule {args.id}: {len(started)} run(s) started")
    return 0
