"""Version 2 of tests/replay_v1.py's checkout: charges *before* the approval — a change
that recorded runs cannot replay."""

from __future__ import annotations

from replay_v1 import charge, reserve

import durable

__all__ = ["charge", "checkout", "reserve"]


@durable.workflow
async def checkout(item: str) -> list[str]:
    """Reserve, charge, then wait for approval (the order changed)."""
    done = [await reserve(item)]
    done.append(await charge(item))  # THE CHANGED LINE
    if await durable.wait_signal("approved"):
        done.append("approved")
    return done
