"""Update round trip: ``handle.update`` from send to result, on SQLite (or PostgreSQL).

    .venv/bin/python benchmarks/bench_updates.py
    .venv/bin/python benchmarks/bench_updates.py --db postgresql://postgres@127.0.0.1:5432/test

One worker and the client in this process, one workflow holding the run (cached in the
worker), then ``--count`` updates one after another after a warm-up; each is a round trip
through the inbox, the worker's step (screen, journal, handler, commit of its outcome) and
the client's wake-up. Three handlers: a plain one, one with a validator, and one that
awaits an activity (one more step). Median and p95 are reported, never asserted. Beside
them, the rejection round trip (a validator that raises: nothing journaled) and a signal's
send for comparison. A fresh SQLite file in a temp dir, or a fresh PostgreSQL schema.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import durable


@durable.activity
async def noop(x: int) -> int:
    return x


@durable.workflow
async def counter() -> int:
    total = [0]

    def positive(n: int) -> None:
        if n < 0:
            raise ValueError("negative")

    def add(n: int) -> int:
        total[0] += n
        return total[0]

    async def add_via_activity(n: int) -> int:
        total[0] += await noop(n)
        return total[0]

    durable.on_update("add", add)
    durable.on_update("checked", add, validator=positive)
    durable.on_update("activity", add_via_activity)
    await durable.wait_signal("stop")
    return total[0]


async def _time(count: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(5):  # warm-up
        await call()
    out = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def _rejected(handle: durable.WorkflowHandle[Any]) -> None:
    try:
        await handle.update("checked", -1)
    except durable.UpdateRejected:
        return
    raise AssertionError("the validator did not reject")


async def main(url: str, count: int) -> None:
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[counter], activities=[noop]):
            handle = await client.start(counter)
            rows = [
                ("update, plain handler", lambda: handle.update("add", 1)),
                ("update, with a validator", lambda: handle.update("checked", 1)),
                ("update, awaiting an activity", lambda: handle.update("activity", 1)),
                ("update rejected by its validator", lambda: _rejected(handle)),
                ("signal sent (no answer awaited)", lambda: handle.signal("ignored", 1)),
            ]
            print(f"{count} round trips each, one worker, client in process ({url.split(':')[0]})")
            print(f"{'':36} {'median ms':>10} {'p95 ms':>8}")
            for label, call in rows:
                times = await _time(count, call)
                p95 = statistics.quantiles(times, n=20)[-1]
                print(f"{label:36} {statistics.median(times):10.2f} {p95:8.2f}")
            await handle.signal("stop")
            await handle.result(timeout=60)


def _url(given: str | None, tmp: Path) -> tuple[str, str | None]:
    """The database to use, and the PostgreSQL schema to drop after (or None)."""
    if given is None:
        return f"sqlite:///{tmp / 'bench_updates.db'}", None
    if given.startswith("postgres"):
        schema = f"bench_updates_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in given else "?"
        return f"{given}{sep}schema={schema}", schema
    return given, None


async def _drop(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn.split("?")[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--count", type=int, default=200, help="timed round trips per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = _url(args.db, Path(tmp))
        try:
            asyncio.run(main(url, args.count))
        finally:
            if schema is not None:
                asyncio.run(_drop(args.db, schema))
