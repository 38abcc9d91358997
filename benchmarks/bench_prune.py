"""Retention's cost: how fast `client.prune` deletes closed runs, how long one batch holds
its transaction, and what workflows running meanwhile notice.

    .venv/bin/python benchmarks/bench_prune.py                 # SQLite, a fresh temp file
    .venv/bin/python benchmarks/bench_prune.py --db postgresql://postgres@127.0.0.1:5432/test

Seeds `RUNS` runs closed a week ago, each with `ENTRIES` journal entries and two tags
(written straight through SQL), then runs `WORKFLOWS` workflows of `STEPS` activities with
one worker twice: alone, and while ``client.prune(older_than=1 day)`` deletes the seeded
runs beside it. Reports the prune's runs/s, its longest batch (the longest a worker's
commit may wait for it on SQLite, where a writer holds the one write lock), and the
workflows' wall time both ways. Numbers are reported, never asserted. A PostgreSQL schema
it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import durable
from durable.store import NewRun

RUNS = 20_000
ENTRIES = 20
WORKFLOWS = 200
STEPS = 5
WEEK = 7 * 86400.0


@durable.activity
async def step(i: int) -> int:
    """A no-op activity."""
    return i


@durable.workflow
async def job(n: int) -> int:
    """`STEPS` activities one after another."""
    return sum([await step(i) for i in range(n)])


def database(db: str | None, tmp: Path) -> str:
    if db is None:
        return f"sqlite:///{tmp / 'prune.db'}"
    parts = urlsplit(db)
    query = dict(parse_qsl(parts.query))
    query.setdefault("schema", f"bench_prune_{uuid.uuid4().hex[:8]}")
    return urlunsplit(parts._replace(query=urlencode(query)))


async def seed(client: durable.Client, url: str) -> None:
    store = await client._open()
    base = time.time() - WEEK - RUNS
    for start in range(0, RUNS, 5000):
        runs = [
            (
                NewRun(
                    f"old-{i}", f"old-{i}-run", "job", "default", b"\x00", base + i,
                    tags={"customer": f"c{i % 50}", "env": "prod"},
                ),
                "error",
            )
            for i in range(start, min(RUNS, start + 5000))
        ]  # fmt: skip
        await store.create_runs(runs)  # type: ignore[arg-type]
    close = "UPDATE runs SET status = 'completed', closed_at = created_at, ready = {f}"
    fill = (
        "INSERT INTO journal (run_id, seq, kind, time, data) "
        "SELECT r.run_id, s.seq, 'x', r.created_at, {blob} FROM runs r, {series}"
    )
    if url.startswith("sqlite"):
        path = urlsplit(url).path[1:]
        with sqlite3.connect(path) as db:
            db.execute(close.format(f="0"))
            series = f"(WITH RECURSIVE q(seq) AS (SELECT 1 UNION ALL SELECT seq + 1 FROM q WHERE seq < {ENTRIES}) SELECT seq FROM q) AS s"  # noqa: E501
            db.execute(fill.format(blob="x'00'", series=series))
        return
    import asyncpg

    schema = dict(parse_qsl(urlsplit(url).query))["schema"]
    dsn = urlunsplit(urlsplit(url)._replace(query=""))
    conn = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    try:
        await conn.execute(close.format(f="false"))
        series = f"generate_series(1, {ENTRIES}) AS s(seq)"
        await conn.execute(fill.format(blob="'\\x00'::bytea", series=series))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def workflows(client: durable.Client) -> float:
    t = time.perf_counter()
    handles = [await client.start(job, STEPS) for _ in range(WORKFLOWS)]
    for handle in handles:
        await handle.result()
    return time.perf_counter() - t


async def main(db: str | None) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-prune-"))
    url = database(db, tmp)
    async with durable.connect(url) as client:
        await seed(client, url)
        store = await client._open()
        batches: list[float] = []
        prune_runs = store.prune_runs

        async def timed(closed_before: float, limit: int) -> int:
            t = time.perf_counter()
            try:
                return await prune_runs(closed_before, limit)
            finally:
                batches.append(time.perf_counter() - t)

        store.prune_runs = timed  # type: ignore[method-assign]
        async with durable.Worker(client, workflows=[job], activities=[step]):
            await workflows(client)  # warm-up
            alone = await workflows(client)
            t = time.perf_counter()
            pruning = asyncio.ensure_future(client.prune(older_than=86400))
            beside = await workflows(client)
            deleted = await pruning
            took = time.perf_counter() - t
    rows: list[tuple[str, Any]] = [
        ("runs deleted", f"{deleted:,} ({ENTRIES} journal entries and 2 tags each)"),
        ("prune wall time", f"{took:.1f} s ({deleted / took:,.0f} runs/s)"),
        ("batches", f"{len(batches)} of up to 500 runs"),
        ("batch median / longest", f"{statistics.median(batches) * 1000:.0f} ms / "
                                   f"{max(batches) * 1000:.0f} ms"),
        (f"{WORKFLOWS} workflows x {STEPS} steps, alone", f"{alone:.2f} s"),
        ("the same while pruning", f"{beside:.2f} s"),
    ]  # fmt: skip
    print(f"prune on {url.split('?')[0]}")
    for label, value in rows:
        print(f"  {label:<36} {value}")
    if not url.startswith("sqlite"):
        await drop_schema(url)


async def drop_schema(url: str) -> None:
    """Drop the PostgreSQL schema this run created."""
    import asyncpg

    schema = dict(parse_qsl(urlsplit(url).query))["schema"]
    conn = await asyncpg.connect(urlunsplit(urlsplit(url)._replace(query="")))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a database URL (default: a fresh SQLite file)")
    asyncio.run(main(parser.parse_args().db))
