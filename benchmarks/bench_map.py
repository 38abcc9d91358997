"""A `durable.map` over a million items in batches: items/s and the worker's peak memory.

    .venv/bin/python benchmarks/bench_map.py                      # 1,000,000 items, SQLite
    .venv/bin/python benchmarks/bench_map.py --items 100000 --batch-size 1000 \\
        --max-concurrency 4000 --db sqlite:///map.db

One workflow maps a no-op activity (``double``) over ``--items`` integers with
``batch_size`` (each batch a ``durable.map.batch`` child workflow) and returns only a count
and a checksum (a million results would not fit in one payload). One worker serves it, in
this process with the client, on a fresh SQLite file (or ``--db``). Printed: wall time,
items/s, the process's peak RSS (``resource.getrusage``: the worker's, with the client's
small share), the parent's journal length and the longest batch journal (no journal
holds the million items), and the database file's size (removed at the end unless
``--keep``; a ``--db`` is left as it is). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import durable

BATCHES_SAMPLED = 3  # batch journals whose length is read (first, middle, last)


@durable.activity
async def double(x: int) -> int:
    """The item's work: none, so every cost measured is durable's."""
    return 2 * x


@durable.workflow
async def big_map(n: int, batch_size: int, max_concurrency: int) -> dict[str, int]:
    """Map ``double`` over ``range(n)`` in batches; a count and a checksum come back."""
    results = await durable.map(
        double, range(n), max_concurrency=max_concurrency, batch_size=batch_size
    )
    return {"items": len(results), "checksum": sum(r for r in results if isinstance(r, int))}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(url: str, n: int, batch_size: int, max_concurrency: int) -> dict[str, Any]:
    """Run the map once; what `main` prints."""
    rss_before = _peak_rss_mb()
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[big_map], activities=[double]):
            began = time.perf_counter()
            handle = await client.start(big_map, n, batch_size, max_concurrency, id="big-map")
            waiter = asyncio.ensure_future(handle.result())
            while not waiter.done():
                await asyncio.wait([waiter], timeout=10)
                if not waiter.done():
                    length = (await handle.describe()).history_length
                    batches = (length - 1) // 2
                    print(
                        f"  {time.perf_counter() - began:6.0f} s: parent journal {length} "
                        f"entries (~{batches} batches started), peak RSS {_peak_rss_mb():.0f} MB",
                        file=sys.stderr,
                    )
            result = waiter.result()
            wall = time.perf_counter() - began
        events = await handle.history()
        children = [e.data["id"] for e in events if e.kind == "child_started"]
        sampled = sorted({0, len(children) // 2, len(children) - 1})[:BATCHES_SAMPLED]
        longest = max(
            [(await client.get_handle(children[i]).describe()).history_length for i in sampled],
            default=0,
        )
    assert result == {"items": n, "checksum": n * (n - 1)}, result
    return {
        "wall": wall,
        "batches": len(children),
        "parent_journal": len(events),
        "batch_journal": longest,
        "rss_before": rss_before,
        "rss_peak": _peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--max-concurrency", type=int, default=4000, help="items in flight")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--keep", action="store_true", help="keep the fresh SQLite file")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-map-"))
    url = args.db or f"sqlite:///{folder / 'map.db'}"
    print(
        f"map of {args.items:,} items, batch_size {args.batch_size:,}, max_concurrency "
        f"{args.max_concurrency:,} on {url}",
        file=sys.stderr,
    )
    out = asyncio.run(run(url, args.items, args.batch_size, args.max_concurrency))
    print(f"{'items':<34} {args.items:>14,}")
    print(f"{'batches (child workflows)':<34} {out['batches']:>14,}")
    print(f"{'wall s':<34} {out['wall']:>14.1f}")
    print(f"{'items/s':<34} {args.items / out['wall']:>14,.0f}")
    print(f"{'peak RSS MB (idle before)':<34} {out['rss_peak']:>9.0f} ({out['rss_before']:.0f})")
    print(f"{'parent journal entries':<34} {out['parent_journal']:>14,}")
    print(f"{'longest batch journal sampled':<34} {out['batch_journal']:>14,}")
    if not args.db:
        size = sum(p.stat().st_size for p in folder.glob("map.db*") if p.is_file())
        print(f"{'SQLite file MB':<34} {size / 1e6:>14.0f}")
    if args.keep:
        print(f"kept {folder}", file=sys.stderr)
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
