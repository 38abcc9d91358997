"""``durable prune`` and the worker's ``--retention``: ages such as ``30d`` on the command
line, and deleting the runs closed longer ago than one (`durable.retention`); and the
times ``durable list --created-after/--created-before`` take."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from ..client import Client
from ..retention import parse_duration
from .commands import _print_json

__all__ = ["age", "moment", "prune"]


def moment(text: str) -> datetime:
    """An ``argparse`` type: an ISO 8601 date-time (``durable list --created-after``); one
    without an offset is taken as UTC."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date-time like 2026-12-01 or 2026-12-01T08:00:00+01:00, "
            f"got {text!r}"
        ) from None


def age(text: str) -> timedelta:
    """An ``argparse`` type: a positive duration such as ``30d``, ``12h`` or ``1d12h``."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"expected an age > 0, like 30d, got {text!r}")
    return value


async def prune(args: argparse.Namespace) -> int:
    """``durable prune --older-than AGE``: delete the runs closed longer ago than AGE."""
    async with Client(args.db) as client:
        deleted = await client.prune(older_than=args.older_than)
    if args.json:
        _print_json({"deleted": deleted, "older_than_seconds": args.older_than.total_seconds()})
    else:
        print(f"deleted {deleted} run(s) closed more than {args.older_than} ago")
    return 0
