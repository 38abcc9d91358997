"""Version 1 of a checkout workflow, as deployed when its runs were recorded
(tests/test_replay.py replays them against tests/replay_v2.py and tests/replay_v3.py)."""

from __future__ import annotations

import durable


@durable.activity
async def reserve(item: str) -> str:
    """Reserve the item."""
    return f"reserved {item}"


@durable.activity
async def charge(item: str) -> str:
    """Charge for the item."""
    return f"charged {item}"


@durable.workflow
async def checkout(item: str) -> list[str]:
    """Reserve, wait for approval, charge."""
    done = [await reserve(item)]
    if await durable.wait_signal("approved"):
        done.append(await charge(item))
    return done
