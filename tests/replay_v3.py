"""Version 3 of tests/replay_v1.py's checkout: a new step guarded by `durable.patched`,
which recorded runs replay (they keep the old path)."""

from __future__ import annotations

from replay_v1 import charge, reserve

import durable

__all__ = ["charge", "checkout", "reserve"]


@durable.activity
async def audit(item: str) -> None:
    """Record the checkout."""


@durable.workflow
async def checkout(item: str) -> list[str]:
    """Reserve, wait for approval, charge, and (new runs only) audit."""
    done = [await reserve(item)]
    if await durable.wait_signal("approved"):
        done.append(await charge(item))
    if durable.patched("audit-checkouts"):
        await audit(item)
    return done
