"""What an SQLite operation costs in trips to the database thread: one each.

Every call the store makes into aiosqlite's thread goes through
``aiosqlite.Connection._execute``; counting those calls counts the thread hops. A
transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, with its reads) is one hop, a read is one
hop, and a waiter woken by a commit in this process costs none (issue 7 section 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from durable.store import TOPIC_RUNS, StepCommit, run_topic
from durable.testing.store_contract.kit import claim, claim_tasks, entries, new_run, new_task
from durable_sqlite import SQLiteStore


class Hops:
    """Counts calls into aiosqlite's thread while installed."""

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def counting(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hops]:
        original = aiosqlite.Connection._execute

        async def counted(db: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
            self.count += 1
            return await original(db, fn, *args, **kw)

        with monkeypatch.context() as patch:
            patch.setattr(aiosqlite.Connection, "_execute", counted)
            yield self

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


async def test_each_operation_of_a_step_costs_one_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}") as store:
        with Hops().counting(monkeypatch) as hops:
            run, created = await store.create_run(new_run("w"), if_exists="error")
            assert created
            assert hops.take() == 1
            [claimed] = await claim(store, "w1", now=2.0)
            assert claimed.run.run_id == run.run_id
            assert hops.take() == 1
            assert await claim(store, "w1", now=2.0) == []  # nothing to claim: a read
            assert hops.take() == 1
            step = StepCommit(
                run.run_id,
                "w1",
                0,
                entries(1, "workflow_started", "activity_scheduled"),
                status="running",
                new_tasks=[new_task(run.run_id, "w", 2)],
            )
            assert await store.commit_steps([step], 3.0) == [True]
            assert hops.take() == 1
            [task] = await claim_tasks(store, "w1", now=4.0)
            assert task.task_id == f"{run.run_id}:2"
            assert hops.take() == 1
            assert await store.get_run("w") is not None
            assert hops.take() == 1
            assert await store.fire_timers(5.0, 10) is None
            assert hops.take() == 1
            assert await store.send("w", "signal_received", b"x", 6.0) == run.run_id
            assert hops.take() == 1


async def test_a_waiter_woken_from_this_process_costs_no_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the worker's wait for work nor a client's wait for a result queries the
    database when a commit in this process wakes it."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    async with SQLiteStore(url) as worker, SQLiteStore(url) as client:
        assert await claim(worker, "w1") == []  # the query feeding TOPIC_RUNS
        await client.create_run(new_run("seed"), if_exists="error")
        await client.get_run("w")
        with Hops().counting(monkeypatch) as hops:
            mark = worker.watermark()
            waiting = asyncio.create_task(worker.wait([TOPIC_RUNS], 5.0, since=mark))
            waiting_for_result = asyncio.create_task(client.wait([run_topic("w")], 5.0))
            await asyncio.sleep(0)
            started = time.monotonic()
            worker.hub.notify([TOPIC_RUNS, run_topic("w")])  # what a commit does after it
            await asyncio.gather(waiting, waiting_for_result)
            assert time.monotonic() - started < 0.5
            assert hops.count == 0


async def test_another_process_commit_ends_a_wait_for_work(tmp_path: Path) -> None:
    """Polling for other processes stays: a commit by another connection, made after the
    claim that found nothing, ends the wait without any notification in this process."""
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        assert await claim(store, "w1") == []
        with closing(sqlite3.connect(path)) as other:
            other.execute(
                "INSERT INTO workers (worker_id, queues, workflows, activities, host, pid, "
                "started_at, heartbeat_at) VALUES ('x', '[]', '[]', '[]', 'h', 1, 0, 0)"
            )
            other.commit()
        started = time.monotonic()
        await store.wait([TOPIC_RUNS], 5.0, since=store.watermark())
        assert time.monotonic() - started < 2.0


async def test_a_cancelled_write_waiting_for_the_lock_ends_its_transaction(
    tmp_path: Path,
) -> None:
    """Cancelled while its transaction waits on another process's write lock, a write
    still ends (here: commits once the lock is free) before the store's next operation,
    and leaves no transaction open behind it."""
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        run, _ = await store.create_run(new_run("w"), if_exists="error")
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            write = asyncio.create_task(store.send("w", "signal_received", b"x", 1.0))
            await asyncio.sleep(0.2)  # the transaction waits for the lock on the thread
            write.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await write
            other.execute("ROLLBACK")
        assert not await store._call(lambda db: db.in_transaction)
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("PRAGMA busy_timeout = 2000")
            other.execute("BEGIN IMMEDIATE")  # the lock is free: nothing left it held
            other.execute("ROLLBACK")
            (items,) = other.execute(
                "SELECT COUNT(*) FROM inbox WHERE run_id = ?", (run.run_id,)
            ).fetchone()
        assert items == 1  # whole: the insert and the ready flag, or neither
        assert (await store.get_run("w")) is not None


async def test_a_step_of_this_process_is_not_announced_again_by_the_watcher(
    tmp_path: Path,
) -> None:
    """The worker's store commits a step that only lengthens the journal; the client's
    store (another connection, so its data_version moves) must not wake a ``result()``
    waiter for it: the commit announced what such waiters wait for. A step committed by
    another process, though, is announced."""
    path = tmp_path / "app.db"
    url = f"sqlite:///{path}"
    async with SQLiteStore(url) as worker, SQLiteStore(url) as client:
        run, _ = await worker.create_run(new_run("w"), if_exists="error")
        await claim(worker, "w1", now=2.0)
        first = StepCommit(run.run_id, "w1", 0, entries(1, "workflow_started"), status="running")
        assert await worker.commit_steps([first], 3.0) == [True]
        await client.get_run("w")

        async def woken_by(commit: Any) -> bool:
            mark = client.watermark()
            waiting = asyncio.create_task(client.wait([run_topic("w")], 1.5, since=mark))
            await asyncio.sleep(0.05)  # the watcher runs, and has looked once
            started = time.monotonic()
            await commit()
            await waiting
            return time.monotonic() - started < 1.0

        async def step_here() -> None:
            step = StepCommit(run.run_id, "w1", 1, entries(2, "marker"))
            assert await worker.commit_steps([step], 4.0) == [True]

        async def step_elsewhere() -> None:
            with closing(sqlite3.connect(path)) as other:
                other.execute("UPDATE runs SET history_length = 3 WHERE run_id = ?", (run.run_id,))
                other.commit()

        assert not await woken_by(step_here)
        assert await woken_by(step_elsewhere)


async def test_a_heartbeat_reports_on_the_tasks_it_was_given_not_later_ones(
    tmp_path: Path,
) -> None:
    """The transaction runs later on the database thread; the worker's collections change
    meanwhile. The store works on what it was given when called."""
    import threading

    async with SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}") as store:
        run, _ = await store.create_run(new_run("w"), if_exists="error")
        await claim(store, "w1", now=2.0)
        task = new_task(run.run_id, "w", 2, lease_owner="w1")
        step = StepCommit(
            run.run_id, "w1", 0, entries(1, "workflow_started"), status="running", new_tasks=[task]
        )
        assert await store.commit_steps([step], 3.0) == [True]
        gate = threading.Event()
        blocker = asyncio.create_task(store._call(lambda db: gate.wait(5.0)))
        await asyncio.sleep(0.05)  # the database thread is busy: what follows waits in line
        tasks = {task.task_id: (1, None)}
        runs = [run.run_id]
        beat = asyncio.create_task(
            store.heartbeat("w1", runs=runs, tasks=tasks, now=4.0, lease_until=50.0)
        )
        await asyncio.sleep(0.05)
        tasks["started-since"] = (1, None)  # the worker goes on meanwhile
        runs.append("claimed-since")
        gate.set()
        await blocker
        lost, cancelled = await beat
        assert lost == {"w1"}
        assert cancelled == set()
