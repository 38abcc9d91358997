"""Group-commit throughput of the PostgreSQL store: steps/s through `commit_steps`.

Each step appends 2 journal entries and queues 1 activity task, in batches of 100 steps
(one transaction per batch), one writer, as a worker's group commit does. Also prints
asyncpg's raw limit on the same machine for comparison (single-row transactions and
100-row batches, 10 concurrent writers).

    python benchmarks/postgres_commit.py [URL] [--batches N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import asyncpg

from durable.store import JournalEntry, NewRun, NewTask, StepCommit
from durable_postgres import PostgresStore

BATCH = 100  # steps per commit_steps call


async def bench_store(url: str, batches: int) -> float:
    schema = "bench_" + uuid.uuid4().hex[:8]
    sep = "&" if "?" in url else "?"
    store = PostgresStore(f"{url}{sep}schema={schema}")
    try:
        async with store:
            now = time.time()
            for i in range(BATCH):
                run = NewRun(f"wf-{i}", f"run-{i}", "bench", "default", b"x", now + i * 1e-6)
                await store.create_run(run, if_exists="error")
            claimed = await store.claim_runs(
                "w",
                queues=["default"],
                names=["bench"],
                now=now,
                lease_until=now + 3600,
                limit=BATCH,
            )
            assert len(claimed) == BATCH
            lengths = {c.run.run_id: 0 for c in claimed}
            payload = b"p" * 200

            def batch() -> list[StepCommit]:
                steps = []
                for run_id, n in lengths.items():
                    steps.append(
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
                return steps

            await store.commit_steps(batch(), now)  # warm up prepared statements
            started = time.perf_counter()
            for _ in range(batches):
                accepted = await store.commit_steps(batch(), now)
                assert all(accepted)
            elapsed = time.perf_counter() - started
    finally:
        conn = await asyncpg.connect(url)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
    return batches * BATCH / elapsed


async def bench_raw(url: str, seconds: float = 3.0) -> tuple[float, float]:
    conn = await asyncpg.connect(url)
    table = "bench_raw_" + uuid.uuid4().hex[:8]
    await conn.execute(f"CREATE TABLE {table} (id bigserial, data bytea)")
    pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
    payload = b"p" * 200

    async def writer(rows: int, deadline: float) -> int:
        done = 0
        async with pool.acquire() as c:
            while time.perf_counter() < deadline:
                async with c.transaction():
                    await c.execute(
                        f"INSERT INTO {table} (data) SELECT * FROM unnest($1::bytea[])",
                        [payload] * rows,
                    )
                done += rows
        return done

    results = []
    try:
        for rows in (1, 100):
            deadline = time.perf_counter() + seconds
            counts = await asyncio.gather(*(writer(rows, deadline) for _ in range(10)))
            results.append(sum(counts) / seconds)
    finally:
        await pool.close()
        await conn.execute(f"DROP TABLE {table}")
        await conn.close()
    return results[0], results[1]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "url",
        nargs="?",
        default=os.environ.get(
            "DURABLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    steps = await bench_store(args.url, args.batches)
    print(f"commit_steps: {steps:,.0f} steps/s ({BATCH}-step batches, 2 entries + 1 task each)")
    single, batched = await bench_raw(args.url)
    print(
        f"raw asyncpg, 10 writers: {single:,.0f} single-row tx/s, "
        f"{batched:,.0f} rows/s in 100-row transactions"
    )


if __name__ == "__main__":
    asyncio.run(main())
