"""What only the SQLite backend promises: URL forms, file settings, and its own extras.

The storage contract itself is tests/test_store.py, run against every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sqlite3
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from durable.errors import StoreError
from durable.store import (
    TOPIC_RUNS,
    JournalEntry,
    NewRun,
    NewTask,
    StepCommit,
    TaskOutcome,
    open_store,
)
from durable_sqlite import SQLiteStore
from durable_sqlite import store as durable_sqlite_store
from durable_sqlite.schema import SCHEMA_VERSION


def new_run(workflow_id: str) -> NewRun:
    return NewRun(workflow_id, f"{workflow_id}-1", "wf", "default", b"in", 1.0)


def _wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_url_forms(tmp_path: Path) -> None:
    assert SQLiteStore("sqlite:///relative/app.db").path == "relative/app.db"
    assert SQLiteStore("sqlite:////abs/app.db").path == "/abs/app.db"
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SQLiteStore)
    for bad, says in [
        ("sqlite:///:memory:", "needs a file on disk"),
        ("sqlite://", "names no database file"),
        ("sqlite://host/app.db", "Not an SQLite URL"),
        ("sqlite:///app.db?synchronous=off", "synchronous=normal"),
        ("sqlite:///app.db?timeout=3", "Unsupported option timeout"),
    ]:
        with pytest.raises(StoreError, match=says):
            SQLiteStore(bad)


def test_secrets_in_an_sqlite_url_are_not_repeated(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        SQLiteStore(f"sqlite:///{tmp_path}/app.db?password=s3cret")
    assert "Unsupported option password=*** in " in str(info.value)
    assert "s3cret" not in str(info.value)
    with pytest.raises(StoreError) as info:
        SQLiteStore("sqlite://user:s3cret@host/app.db")
    assert "Not an SQLite URL: 'sqlite://user:***@host/app.db'" in str(info.value)


async def test_relative_and_absolute_urls_of_one_file_share_a_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = SQLiteStore("sqlite:///app.db")
    absolute = SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}")
    assert relative.hub is absolute.hub
    assert SQLiteStore(f"sqlite:///{tmp_path / 'other.db'}").hub is not relative.hub


@pytest.mark.parametrize(("option", "expected"), [("", 2), ("?synchronous=normal", 1)])
async def test_file_settings(tmp_path: Path, option: str, expected: int) -> None:
    async with SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}{option}") as store:
        db = store._conn()
        assert list(await db.execute_fetchall("PRAGMA synchronous")) == [(expected,)]
        assert list(await db.execute_fetchall("PRAGMA journal_mode")) == [("wal",)]
        assert list(await db.execute_fetchall("PRAGMA busy_timeout")) == [(10_000,)]
    with closing(sqlite3.connect(tmp_path / "app.db")) as db:
        assert db.execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]


@pytest.mark.parametrize(("option", "setting"), [("", "FULL"), ("?synchronous=normal", "NORMAL")])
async def test_claims_commit_without_waiting_for_the_disk(
    tmp_path: Path, option: str, setting: str
) -> None:
    # A claim lost with the machine is only work handed out again, so claims commit with
    # synchronous = NORMAL; every other write keeps the URL's setting, restored after.
    async with SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}{option}") as store:
        await store.create_run(new_run("w"), if_exists="error")
        said: list[str] = []
        await store._call(lambda db: db.set_trace_callback(said.append))
        kw = {"queues": ["default"], "names": ["wf"], "now": 3.0, "lease_until": 100.0}
        [_] = await store.claim_runs("a", limit=10, **kw)  # type: ignore[arg-type]
        assert await store.claim_tasks("a", limit=10, **kw) == []  # type: ignore[arg-type]
        step = StepCommit("w-1", "a", 0, [JournalEntry(1, "workflow_started", 3.0, b"")])
        assert await store.commit_steps([step], 4.0) == [True]
        await store._call(lambda db: db.set_trace_callback(None))
        begins = [i for i, sql in enumerate(said) if sql == "BEGIN IMMEDIATE"]
        settings = [sql for sql in said if sql.startswith("PRAGMA synchronous =")]
        assert len(begins) == 2  # the claim of the run, the step (no task to claim)
        assert said[begins[0] - 1] == "PRAGMA synchronous = NORMAL"
        assert settings == ["PRAGMA synchronous = NORMAL", f"PRAGMA synchronous = {setting}"]
        assert said.index(settings[1]) < begins[1]  # the step commits with the URL's setting
        expected = {"FULL": 2, "NORMAL": 1}[setting]
        db = store._conn()
        assert list(await db.execute_fetchall("PRAGMA synchronous")) == [(expected,)]


async def test_unusable_files_are_refused_plainly(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not a database, just some text" * 100)
    with pytest.raises(StoreError, match=r"Cannot use .*junk\.db"):
        await SQLiteStore(f"sqlite:///{tmp_path / 'junk.db'}").open()
    with pytest.raises(StoreError, match="missing' does not exist"):
        await SQLiteStore(f"sqlite:///{tmp_path / 'missing' / 'app.db'}").open()


async def test_a_store_opens_once(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}")
    async with store:
        with pytest.raises(StoreError, match="twice"):
            await store.open()
    with pytest.raises(StoreError, match="twice"):
        await store.open()


async def test_newer_schema_leaves_the_file_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store.create_run(new_run("w"), if_exists="error")
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = '7'")
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError) as info:
        await SQLiteStore(f"sqlite:///{path}").open()
    assert str(info.value) == (
        f"Database {path} has schema version 7, newer than this durable-flow (supports up to "
        f"{SCHEMA_VERSION}). Upgrade durable-flow (pip install -U durable-flow) on every worker "
        "and client."
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert _wal_size(path) == 0  # nothing written to the log either


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("UPDATE meta SET value = 'two'", "its schema_version is 'two', not a whole number"),
        ("DELETE FROM meta", "its meta table has no schema_version row"),
        ("DROP TABLE meta", "it has durable's table(s) inbox, journal, published, runs, tasks"),
    ],
)
async def test_an_unreadable_schema_version_is_explained(
    tmp_path: Path, damage: str, says: str
) -> None:
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}"):
        pass
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(damage)
    with pytest.raises(StoreError) as info:
        await SQLiteStore(f"sqlite:///{path}").open()
    message = str(info.value)
    assert f"Cannot tell which schema version the database {str(path)!r} has: {says}" in message
    assert "Restore it from a backup" in message


async def test_released_lease_with_unconsumed_items_leaves_the_run_ready(tmp_path: Path) -> None:
    # An item the worker saw at claim time but did not consume must not be stranded when
    # it hands the lease back: the run stays claimable.
    async with SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}") as store:
        await store.create_run(new_run("w"), if_exists="error")
        await store.send("w", "signal", b"x", 2.0)
        kw = {"queues": ["default"], "names": ["wf"], "now": 3.0, "lease_until": 100.0}
        [claimed] = await store.claim_runs("a", limit=10, **kw)  # type: ignore[arg-type]
        assert [i.data for i in claimed.inbox] == [b"x"]  # and not consumed below
        step = StepCommit("w-1", "a", 0, [JournalEntry(1, "workflow_started", 3.0, b"")])
        step.release_lease = True
        assert await store.commit_steps([step], 4.0) == [True]
        [again] = await store.claim_runs("b", limit=10, **kw)  # type: ignore[arg-type]
        assert [i.data for i in again.inbox] == [b"x"]


async def test_entries_must_continue_the_journal(tmp_path: Path) -> None:
    async with SQLiteStore(f"sqlite:///{tmp_path / 'app.db'}") as store:
        step = StepCommit("r", "a", 3, [JournalEntry(5, "marker", 1.0, b"")])
        with pytest.raises(ValueError, match="seq 5, expected 4"):
            await store.commit_steps([step], 1.0)


async def test_cancelled_writes_never_leave_a_transaction_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    async with SQLiteStore(url) as store, SQLiteStore(url) as other:
        await store.create_run(new_run("w"), if_exists="error")
        for spins in range(16):  # cancel at every await point of a write, in turn
            write = asyncio.create_task(store.send("w", "signal", b"x", 1.0))
            for _ in range(spins):
                await asyncio.sleep(0)
            write.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await write
            # The next operation on the database thread finds the transaction ended.
            assert not await store._call(lambda db: db.in_transaction)
            # Another connection can take the write lock at once (no 10 s busy wait).
            async with asyncio.timeout(2.0):
                assert await other.send("w", "signal", b"y", 2.0) == "w-1"
            assert await store.send("w", "signal", b"z", 3.0) == "w-1"


_OPEN_AND_CREATE = """
import asyncio, sys, time
from durable.store import NewRun, open_store

async def main() -> None:
    url, name, go = sys.argv[1], sys.argv[2], float(sys.argv[3])
    while time.time() < go:
        await asyncio.sleep(0.001)
    async with open_store(url) as store:
        await store.create_run(NewRun(name, name, "wf", "default", b"", 1.0), if_exists="error")

asyncio.run(main())
"""


async def test_processes_opening_a_new_file_together(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    go = time.time() + 1.5  # all open at once, after their imports
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _OPEN_AND_CREATE, url, f"w{i}", str(go)
        )
        for i in range(6)
    ]
    assert [await p.wait() for p in procs] == [0] * 6
    async with SQLiteStore(url) as store:
        assert len(await store.list_runs()) == 6
        assert list(await store._conn().execute_fetchall("PRAGMA journal_mode")) == [("wal",)]


async def test_a_worker_outlasts_the_file_locked_past_its_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock longer than `BUSY_TIMEOUT` makes every write
    of the worker fail (claims, timers, commits, heartbeats); the worker logs, backs off and
    goes on once the lock is released, and the workflow completes."""
    import durable
    from durable_sqlite import store as sqlite_store
    from tests.test_worker import add_one, count_to, naps_and_counts

    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT", 0.2)
    path = tmp_path / "locked.db"
    async with durable.connect(f"sqlite:///{path}") as client:
        worker = durable.Worker(client, workflows=[naps_and_counts, count_to], activities=[add_one])
        async with worker:
            assert await client.execute(count_to, 1, timeout=10) == 1
            with closing(sqlite3.connect(path, isolation_level=None)) as other:
                handle = await client.start(naps_and_counts, 3)  # its timer and steps...
                other.execute("BEGIN IMMEDIATE")  # ...meet another process's long write
                await asyncio.sleep(1.5)
                other.execute("ROLLBACK")
            assert await handle.result(timeout=20) == 3
            assert worker._background is not None
            assert not worker._background.done()


async def test_watching_one_more_workflow_catches_a_change_already_seen(tmp_path: Path) -> None:
    """The watcher is already running for workflow A when B's waiter reads B; another
    process commits to B and the watcher, looking at A only, takes in that data_version.
    B's wait must still return at once (it used to sleep out its timeout)."""
    from durable.store import run_topic
    from durable.testing.store_contract.kit import start

    path = tmp_path / "watch.db"
    async with open_store(f"sqlite:///{path}") as store:
        await start(store, "A")
        await start(store, "B")
        await store.get_run("A")
        waiting_on_a = asyncio.create_task(store.wait([run_topic("A")], 10.0))
        await asyncio.sleep(0.1)  # the watcher runs, watching A
        mark = store.watermark()
        await store.get_run("B")
        with closing(sqlite3.connect(path)) as other:
            other.execute(
                "UPDATE runs SET history_length = history_length + 1 WHERE workflow_id = 'B'"
            )
            other.commit()
        await asyncio.sleep(0.2)  # the watcher has seen the new data_version by now
        started = time.monotonic()
        await store.wait([run_topic("B")], 5.0, since=mark)
        assert time.monotonic() - started < 2.5
        waiting_on_a.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting_on_a


async def _one_claimed_task(store: SQLiteStore, now: float) -> int:
    """Run wf-0 with one task ``t`` leased to worker "x"; its attempt number."""
    await store.create_run(new_run("wf-0"), if_exists="error")
    [claimed_run] = await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=1
    )
    run_id = claimed_run.run.run_id
    task = NewTask("t", run_id, "wf-0", 2, "a", "default", b"", now)
    step = StepCommit(run_id, "w", 0, [JournalEntry(1, "workflow_started", now, b"")])
    step.new_tasks.append(task)
    assert await store.commit_steps([step], now) == [True]
    [claimed] = await store.claim_tasks(
        "x", queues=["default"], names=["a"], now=now, lease_until=now + 60, limit=1
    )
    return claimed.attempt


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_an_attempts_end_is_announced_before_the_log_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synchronous: str
) -> None:
    """With ``synchronous=full`` the end commits without waiting for the disk, this
    process's waiters (and the other processes' doorbells) are told at once, and
    `finish_task` returns once the write-ahead log is synced; ``normal`` syncs nothing."""
    path = tmp_path / "app.db"
    synced: list[tuple[bool, bool]] = []
    async with SQLiteStore(f"sqlite:///{path}?synchronous={synchronous}") as store:
        now = time.time()
        attempt = await _one_claimed_task(store, now)
        mark = store.watermark()
        sync = durable_sqlite_store._sync_file

        def recording_sync(fd: int) -> None:
            wal = os.stat(f"{path}-wal")
            same_file = (os.fstat(fd).st_ino, os.fstat(fd).st_dev) == (wal.st_ino, wal.st_dev)
            synced.append((same_file, TOPIC_RUNS in (store.hub.topics_since(mark) or ())))
            sync(fd)

        monkeypatch.setattr(durable_sqlite_store, "_sync_file", recording_sync)
        done = TaskOutcome("done", "activity_completed", b"result")
        assert await store.finish_task("t", "x", attempt, done, now)
        assert [i.data for i in await store.read_inbox("wf-0-1")] == [b"result"]
    assert synced == ([(True, True)] if synchronous == "full" else [])
