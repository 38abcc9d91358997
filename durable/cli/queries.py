"""``durable query ID NAME [ARG ...]``: ask a run's query (`durable.queries`) and print the
answer as JSON.

Each ``ARG`` is one JSON value (a string needs its quotes: ``'"apple"'``), passed to the
query function in order. A query the run does not have, refuses or raises is reported on
stderr with exit status 1 (the message says which, and what to do); no worker answering
within ``--timeout`` exits with status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..asking import QUERY_TIMEOUT
from ..client import Client
from ..errors import QueryError
from . import render
from .commands import Refused

__all__ = ["add_command", "query"]


def add_command(
    command: Callable[..., argparse.ArgumentParser], json_argument: Callable[[str], Any]
) -> None:
    """Add ``query`` through the CLI's ``command(name, help)`` helper."""
    p = command(
        "query",
        "ask a run's query (registered with durable.on_query) and print the answer as JSON; "
        "nothing is written to the run",
        json=True,
    )
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument(
        "args", nargs="*", type=json_argument, metavar="ARG", help="a JSON value per argument"
    )
    p.add_argument(
        "--timeout",
        type=_timeout,
        default=QUERY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up after this long without an answer (default: {QUERY_TIMEOUT:g})",
    )
    p.set_defaults(run=query)


async def query(args: argparse.Namespace) -> int:
    """``durable query ID NAME [ARG ...] [--timeout SECONDS]``."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        try:
            value = await handle.query(args.name, *args.args, timeout=args.timeout)
        except QueryError as exc:
            raise Refused(str(exc), 2 if exc.reason == "no_answer" else 1) from None
    if args.json:
        value = {"id": args.id, "query": args.name, "args": args.args, "result": value}
    print(render.dumps(value, indent=2))
    return 0


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value
