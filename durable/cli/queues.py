"""``durable queue``: queues, what waits on them, and their limits (`durable.limits`).

    durable queue list [--json]
    durable queue limits media                      # show them
    durable queue limits media --concurrency 10 --key-concurrency 2 --rate 100/1m
    durable queue limits media --rate none          # remove one limit, keep the others
    durable queue limits media --clear              # remove them all

Setting changes only the limits given (``none`` removes one); ``--clear`` removes them all.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from ..client import DEFAULT_URL, Client
from ..limits import QueueLimits, parse_rate
from . import render
from .commands import Refused

__all__ = ["add_commands"]

_UNSET: Any = object()  # an option not given: that limit stays as it is


def _count(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number >= 1 (or 'none' to remove the limit), got {text!r}"
        )
    return value


def _rate(text: str) -> tuple[int, timedelta] | None:
    if text.lower() == "none":
        return None
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _lines(limits: QueueLimits) -> list[str]:
    rate = limits.rate_text or "-"
    return [
        f"queue {limits.queue}",
        f"  concurrency      {limits.concurrency if limits.concurrency is not None else '-'}",
        "  key concurrency  "
        + (str(limits.key_concurrency) if limits.key_concurrency is not None else "-"),
        f"  rate             {rate}",
    ]


async def limits(args: argparse.Namespace) -> int:
    """``durable queue limits QUEUE [...]``: show, change or clear a queue's limits."""
    given = any(v is not _UNSET for v in (args.concurrency, args.key_concurrency, args.rate))
    if args.clear and given:
        raise Refused("--clear removes every limit: give it alone, without limits to set")
    async with Client(args.db) as client:
        current = await client.queue_limits(args.queue)
        if args.clear or given:
            fields: dict[str, Any] = {}
            if not args.clear:
                fields = {
                    "concurrency": current.concurrency,
                    "key_concurrency": current.key_concurrency,
                    "rate": current.rate,
                    "per": current.per,
                }
                if args.concurrency is not _UNSET:
                    fields["concurrency"] = args.concurrency
                if args.key_concurrency is not _UNSET:
                    fields["key_concurrency"] = args.key_concurrency
                if args.rate is not _UNSET:
                    fields["rate"], fields["per"] = args.rate or (None, None)
            current = await client.set_queue_limits(args.queue, **fields)
    if args.json:
        print(render.dumps(current.to_json(), indent=2))
    else:
        for line in _lines(current):
            print(line)
    return 0


async def list_queues(args: argparse.Namespace) -> int:
    """``durable queue list``: queues with work waiting or limits, and those limits."""
    async with Client(args.db) as client:
        views = await client.list_queues()
    if args.json:
        print(render.dumps([v.to_json() for v in views], indent=2))
    elif not views:
        print("no queue has work waiting or limits set")
    else:
        rows = [
            (v.queue, str(v.tasks_waiting), str(v.tasks_delayed), str(v.runs_waiting),
             v.limits.describe())
            for v in views
        ]  # fmt: skip
        for line in render.table(("QUEUE", "TASKS DUE", "DELAYED", "RUNS", "LIMITS"), rows):
            print(line)
    return 0


def add_commands(sub: Any) -> None:
    """Add ``durable queue list|limits`` to the CLI's subparsers ``sub``."""
    queue = sub.add_parser("queue", help="queues: what waits on them, and their limits")
    actions = queue.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        p.add_argument(
            "--db", default=None, help=f"database URL (default: $DURABLE_DB or {DEFAULT_URL})"
        )
        p.add_argument("--json", action="store_true", help="print one JSON document")
        return p

    p = action("list", "queues with work waiting or limits set, and their limits")
    p.set_defaults(run=list_queues)

    p = action(
        "limits",
        "show a queue's limits, or change them: enforced by the database for every worker "
        "and remote poller (options not given stay as they are; 'none' removes one)",
    )
    p.add_argument("queue")
    p.add_argument(
        "--concurrency",
        type=_count,
        default=_UNSET,
        metavar="N",
        help="at most N activity tasks of the queue running at once, on all workers",
    )
    p.add_argument(
        "--key-concurrency",
        type=_count,
        default=_UNSET,
        metavar="N",
        help="at most N running at once with the same key (durable.call(..., key=))",
    )
    p.add_argument(
        "--rate",
        type=_rate,
        default=_UNSET,
        metavar="N/WINDOW",
        help="at most N task starts in any window, e.g. 100/1m, 5/10s, 1000/1h",
    )
    p.add_argument("--clear", action="store_true", help="remove every limit of the queue")
    p.set_defaults(run=limits)
