"""Exactly one run per tick with three real worker processes on one database (each
backend), a SIGKILL of the worker that was firing, then a fourth worker started: a
per-second schedule keeps firing, no tick is started twice (by the logs of every worker
and by the runs stored) and none is lost (ticks in a row, within the catch-up window).

The workers are ``python -m durable --verbose worker tests.crash_app`` (`Workers` of
tests/test_crash.py); the schedule starts crash_app's ``relay(0, 0)``, which returns at
once. Each worker logs ``Schedule 'every-second' started <run id>`` only after its
compare-and-set won, so two workers logging one run id would be a double fire.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import durable
from tests.test_crash import Proc, Workers

STARTED = re.compile(r"Schedule 'every-second' started (.+)$")


def fired(proc: Proc) -> list[str]:
    """The run ids this worker's firings started, in order."""
    text = proc.stderr.read_text(errors="replace") if proc.stderr.exists() else ""
    found: list[str] = []
    for line in text.splitlines():
        match = STARTED.search(line)
        if match:
            found.extend(match.group(1).split(", "))
    return found


async def wait_for_more(pool: Workers, procs: list[Proc], count: int, limit: float) -> None:
    """Until the given workers have started ``count`` more runs between them."""
    before = sum(len(fired(p)) for p in procs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while sum(len(fired(p)) for p in procs) < before + count:
        assert loop.time() < deadline, f"fewer than {count} ticks fired in {limit}s"
        await asyncio.sleep(0.1)


async def test_three_workers_fire_each_tick_once_through_a_sigkill_and_a_restart(
    store_url: str, tmp_path: Path
) -> None:
    pool = Workers(store_url, tmp_path)
    try:
        with pool.dump_on_failure():
            procs = [await pool.spawn() for _ in range(3)]
            for proc in procs:
                await pool.ready(proc)
            async with durable.connect(store_url) as client:
                handle = await client.schedule(
                    "relay",
                    0,
                    0,
                    id="every-second",
                    cron="* * * * * *",
                    overlap="allow_all",
                    catchup_window=timedelta(minutes=1),
                )
                await wait_for_more(pool, procs, 3, 20.0)
                # The worker that fired last is the one to kill, mid-stream (ISO times
                # in UTC sort as they happened).
                latest = max(run_id for p in procs for run_id in fired(p))
                firing = next(p for p in procs if latest in fired(p))
                await pool.kill(firing)
                survivors = [p for p in procs if p is not firing]
                await wait_for_more(pool, survivors, 3, 20.0)
                # A restart: a new worker joins the two; still nothing fires twice.
                restarted = await pool.spawn()
                await pool.ready(restarted)
                procs.append(restarted)
                survivors.append(restarted)
                await wait_for_more(pool, survivors, 3, 20.0)
                await handle.pause()
                await asyncio.sleep(0.3)  # a firing under way when it paused lands first
                store = await client._open()
                runs = await store.list_runs(
                    limit=10_000, tags={"durable.schedule": "every-second"}
                )
            by_id = Counter(r.workflow_id for r in runs)
            logged = Counter(run_id for p in procs for run_id in fired(p))
            # Started once each: one run row per tick, one winning write per tick.
            assert set(by_id.values()) == {1}, by_id
            assert set(logged.values()) == {1}, logged
            assert set(logged) <= set(by_id)
            # Ticks in a row: none lost when the firing worker died.
            ticks = sorted(int(datetime.fromisoformat(i.split("@")[1]).timestamp()) for i in by_id)
            assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), ticks
            # The others took over after the kill.
            assert any(fired(p) for p in survivors)
    finally:
        await pool.close()
