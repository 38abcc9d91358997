"""`durable logs ID`: what a run's activities and workflow code logged (`durable.steplogs`).

durable logs order-7                 # every record, oldest first
durable logs order-7 --step 4        # the records of one step (all its attempts)
durable logs order-7 --follow        # then new ones as they come, until the run closes
"""

from __future__ import annotations

import argparse
import asyncio
import json

from ..client import Client
from ..errors import WorkflowNotFound
from ..store import CLOSED_STATUSES
from .commands import Refused

__all__ = ["FOLLOW_POLL", "logs"]

FOLLOW_POLL = 0.5  # seconds between looks for new records with --follow
PAGE = 1000


async def logs(args: argparse.Namespace) -> int:
    """Print the run's log records (``--json``: one JSON document; ``--follow``: go on)."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        try:
            await handle.describe()
        except WorkflowNotFound:
            raise Refused(f"No workflow {args.id!r} in {client.url}.") from None
        after = 0
        every = []
        while True:
            page = await handle.logs(seq=args.step, after=after, limit=PAGE)
            if args.json:
                every.extend(page)
            else:
                for record in page:
                    print(record.line(local=True), flush=True)
            if page:
                after = page[-1].id
            if len(page) == PAGE:
                continue
            if not args.follow or (await handle.describe()).status in CLOSED_STATUSES:
                if args.follow:  # what came between the last read and the close
                    for record in await handle.logs(seq=args.step, after=after):
                        print(record.line(local=True), flush=True)
                break
            await asyncio.sleep(FOLLOW_POLL)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "seq": r.seq,
                        "attempt": r.attempt,
                        "at": r.at.isoformat(),
                        "level": r.level,
                        "logger": r.logger,
                        "message": r.message,
                    }
                    for r in every
                ],
                indent=1,
            )
        )
    return 0
