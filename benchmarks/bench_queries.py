"""Query latency: ``handle.query`` on a run held in memory, and on one nobody holds.

    .venv/bin/python benchmarks/bench_queries.py                  # SQLite, 200 queries each
    .venv/bin/python benchmarks/bench_queries.py --queries 500 --steps 100 \\
        --db postgresql://postgres@127.0.0.1/bench

One ``counter`` workflow takes ``--steps`` signals (each a step of its journal) and then
waits. A worker in this process with the client serves it; the client asks its query
``--queries`` times:

- **held**: the worker has the run in memory (its cache), so it answers from there;
- **evicted**: the worker started after the run's last step (a restart), so nobody holds
  it: each query is answered by replaying the run's journal (``--steps`` signals long),
  in a worker serving the workflow (`durable.answering`).

Printed per case: the median, 90th percentile and slowest latency in milliseconds, and
queries per second one caller gets (one at a time). Nothing is written to the run by any
of it; the journal length is checked before and after. The database file (a fresh one in
a temporary folder unless ``--db``) is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import durable


@durable.workflow
async def counter(steps: int) -> int:
    """Counts the signals ``tick`` it receives; answers the query ``count``."""
    count = 0
    durable.on_query("count", lambda: count)
    durable.on_query("plus", lambda n: count + n)
    for _ in range(steps):
        count += await durable.wait_signal("tick")
    await durable.wait_signal("stop")
    return count


async def _latencies(handle: durable.WorkflowHandle[int], n: int, expected: int) -> list[float]:
    out = []
    for i in range(n):
        began = time.perf_counter()
        value = await handle.query("plus", i)
        out.append(time.perf_counter() - began)
        assert value == expected + i, value
    return out


def _summary(name: str, latencies: list[float]) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in latencies)
    return {
        "case": name,
        "queries": len(ms),
        "median_ms": statistics.median(ms),
        "p90_ms": ms[int(len(ms) * 0.9) - 1],
        "max_ms": ms[-1],
        "per_second": len(ms) / (sum(ms) / 1000),
    }


async def run(url: str, queries: int, steps: int) -> list[dict[str, Any]]:
    """Both cases; one summary each."""
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[counter]):
            handle = await client.start(counter, steps, id="counter")
            for _ in range(steps):
                await handle.signal("tick", 1)
            while await handle.query("count") != steps:
                await asyncio.sleep(0.01)
            length = len(await handle.history())
            held = await _latencies(handle, queries, steps)
        async with durable.Worker(client, workflows=[counter]):  # holds nothing of it
            evicted = await _latencies(handle, queries, steps)
            assert len(await handle.history()) == length  # nothing written
            await handle.signal("stop")
            assert await handle.result(timeout=60) == steps
    return [_summary("held (from memory)", held), _summary("evicted (by replay)", evicted)]


def main() -> None:
    """Parse the options, run, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=200, help="queries per case")
    parser.add_argument("--steps", type=int, default=20, help="signals in the run's journal")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    folder = None
    url = args.db
    if url is None:
        folder = Path(tempfile.mkdtemp(prefix="bench-queries-"))
        url = f"sqlite:///{folder / 'queries.db'}"
    try:
        results = asyncio.run(run(url, args.queries, args.steps))
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"query latency, one caller, {args.steps}-signal run, on {url.split(':')[0]}:")
    print(f"{'case':<22}{'queries':>8}{'median ms':>11}{'p90 ms':>9}{'max ms':>9}{'q/s':>8}")
    for r in results:
        print(
            f"{r['case']:<22}{r['queries']:>8}{r['median_ms']:>11.2f}{r['p90_ms']:>9.2f}"
            f"{r['max_ms']:>9.2f}{r['per_second']:>8.0f}"
        )


if __name__ == "__main__":
    main()
