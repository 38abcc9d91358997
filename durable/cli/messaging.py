"""``durable update``: send an update to a workflow and print its handler's result.

    durable update cart-7 add '"apple"'
    durable update cart-7 add '"apple"' --update-id add-apple-1 --wait 30 --json

Arguments are JSON values, one per handler parameter. The result prints as JSON; a
rejection (no such handler, the validator raised, the run has closed) or a failure (the
handler raised, the run closed first) exits 1 with the reason; still waiting when
``--wait`` ends exits 2 (the update goes on: run the command again with the same
``--update-id`` to get its outcome).
"""

from __future__ import annotations

import argparse

from ..client import Client
from ..errors import UpdateFailed, UpdateRejected
from ..updates import send_update
from . import render
from .commands import Refused, _print_json

__all__ = ["update"]


async def update(args: argparse.Namespace) -> int:
    """``durable update ID NAME [ARGS...] [--update-id ID] [--wait SECONDS]``."""
    async with Client(args.db) as client:
        handle = client.get_handle(args.id)
        try:
            value = await send_update(
                handle, args.name, tuple(args.args), args.update_id, timeout=args.wait
            )
        except UpdateRejected as exc:
            raise Refused(f"{exc} (nothing was journaled)") from None
        except UpdateFailed as exc:
            # The error's lines under the message, as `durable result` shows a failed run's.
            raise Refused(str(exc), 1, render.error_lines(exc.cause, "  ")[1:]) from None
        except TimeoutError as exc:
            raise Refused(str(exc), 2) from None
    _print_json({"id": args.id, "name": args.name, "result": value} if args.json else value)
    return 0
