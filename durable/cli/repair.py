"""``durable retry ID`` and ``durable fork ID --at-seq N [--id NEW]`` (`durable.repair`).

Each says what it did; a run in a state that has nothing to retry, or a seq that does
not cut the journal where it can replay, is a `durable.RepairError`, which ``main``
reports on stderr with exit status 1 (the message says what to do instead).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .. import journal, repair
from ..client import Client

__all__ = ["add_commands", "fork", "retry"]


def add_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``retry`` and ``fork`` through the CLI's ``command(name, help)`` helper."""
    p = command(
        "retry",
        "re-open a failed or terminated run where it stopped: its failed step runs again "
        "(completed steps do not); a parked run is tried again now",
    )
    p.add_argument("id")
    p.add_argument("--reason", help="why (kept in the history's run_retried entry)")
    p.set_defaults(run=retry)
    p = command(
        "fork",
        "start a new workflow from the first N journal entries of a run: those steps are "
        "reused, and from there the code deployed now runs (see the seqs in: durable show ID)",
    )
    p.add_argument("id")
    p.add_argument(
        "--at-seq", dest="at_seq", type=int, required=True, metavar="N", help="entries to keep"
    )
    p.add_argument("--id", dest="new_id", help="the new workflow id (default: ID-fork-XXXXXXXX)")
    p.set_defaults(run=fork)


async def retry(args: argparse.Namespace) -> int:
    """``durable retry ID [--reason TEXT]``."""
    async with Client(args.db) as client:
        store = await client._open()
        reason = args.reason or "retried from the command line"
        plan = await repair.retry(store, args.id, client.clock.now(), reason=reason)
    note = journal.decode(journal.Kind.RUN_RETRIED, plan.note)
    assert isinstance(note, journal.RunRetried)
    if plan.parked:
        print(f"{args.id} unparked ({note.cause}); workers try it again now, with their code.")
    else:
        step = f"; step {note.step} runs again" if note.step is not None else ""
        print(
            f"{args.id} re-opened (it was {note.status}: {note.cause}); its journal keeps "
            f"{plan.keep} of {plan.expected_length} entries{step}, and workers go on from there."
        )
    print(f"Follow it: durable show {args.id} --follow")
    return 0


async def fork(args: argparse.Namespace) -> int:
    """``durable fork ID --at-seq N [--id NEW]``."""
    async with Client(args.db) as client:
        handle = await client.fork(args.id, at_seq=args.at_seq, new_id=args.new_id)
    print(
        f"{handle.id} forked from {args.id} at seq {args.at_seq}: those entries are reused, "
        "and from there its code runs live."
    )
    print(f"Follow it: durable show {handle.id} --follow")
    return 0
