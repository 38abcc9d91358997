"""Group-commit throughput of the SQLite store: steps/s through `commit_steps`.

Each step appends 2 journal entries and queues 1 activity task (200-byte payloads), as a
worker's group commit does, one writer, for batch sizes 1, 10 and 100 steps per
transaction, with ``synchronous=full`` (the default) and ``normal``. Also prints the raw
limit of sqlite3 on the same disk (empty ``BEGIN IMMEDIATE; INSERT; COMMIT`` transactions).

    python benchmarks/sqlite_commit.py [DIRECTORY] [--steps N]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from durable.store import JournalEntry, NewRun, NewTask, StepCommit
from durable_sqlite import SQLiteStore

RUNS = 100  # workflows stepping in turn


async def bench_store(directory: Path, batch: int, synchronous: str, steps: int) -> float:
    path = directory / f"bench-{batch}-{synchronous}.db"
    async with SQLiteStore(f"sqlite:///{path}?synchronous={synchronous}") as store:
        now = time.time()
        for i in range(RUNS):
            run = NewRun(f"wf-{i}", f"run-{i}", "bench", "default", b"x", now + i * 1e-6)
            await store.create_run(run, if_exists="error")
        claimed = await store.claim_runs(
            "w", queues=["default"], names=["bench"], now=now, lease_until=now + 3600, limit=RUNS
        )
        assert len(claimed) == RUNS
        lengths = {c.run.run_id: 0 for c in claimed}
        order = list(lengths)
        payload = b"p" * 200
        cursor = 0

        def next_batch() -> list[StepCommit]:
            nonlocal cursor
            out = []
            for _ in range(batch):
                run_id = order[cursor % RUNS]
                cursor += 1
                n = lengths[run_id]
                out.append(
                    StepCommit(
                        run_id=run_id,
                        owner="w",
                        expected_length=n,
                        entries=[
                            JournalEntry(n + 1, "activity_completed", now, payload),
                            JournalEntry(n + 2, "activity_scheduled", now, payload),
                        ],
                        status="running",
                        new_tasks=[
                            NewTask(
                                f"{run_id}:{n + 2}",
                                run_id,
                                "wf",
                                n + 2,
                                "act",
                                "default",
                                payload,
                                now,
                            )
                        ],
                    )
                )
                lengths[run_id] = n + 2
            return out

        await store.commit_steps(next_batch(), now)  # warm up the statement cache
        batches = max(1, steps // batch)
        started = time.perf_counter()
        for _ in range(batches):
            accepted = await store.commit_steps(next_batch(), now)
            assert all(accepted)
        elapsed = time.perf_counter() - started
    return batches * batch / elapsed


def bench_raw(directory: Path, synchronous: str, seconds: float = 2.0) -> float:
    db = sqlite3.connect(directory / f"raw-{synchronous}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data BLOB)")
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t (data) VALUES (?)", (b"p" * 200,))
        db.execute("COMMIT")
        done += 1
    db.close()
    return done / seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("directory", nargs="?", help="where to put the files (default: a temp dir)")
    parser.add_argument("--steps", type=int, default=10_000, help="steps per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.directory) as tmp:
        directory = Path(tmp)
        for synchronous in ("full", "normal"):
            print(
                f"synchronous={synchronous}: raw sqlite3 "
                f"{bench_raw(directory, synchronous):,.0f} tx/s"
            )
            for batch in (1, 10, 100):
                steps = args.steps if batch > 1 else min(args.steps, 2_000)
                rate = await bench_store(directory, batch, synchronous, steps)
                print(
                    f"  commit_steps, {batch:3d}-step batches: {rate:9,.0f} steps/s "
                    "(2 entries + 1 task each)"
                )


if __name__ == "__main__":
    asyncio.run(main())
