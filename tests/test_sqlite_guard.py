"""The SQLite file under a store (`durable_sqlite.guard`): created private, refused plainly
when read-only, and noticed when deleted or replaced under a running worker.

Real files throughout. The tests run as root here, and root writes any file whatever its
mode: the read-only cases switch this process's effective user to ``nobody`` for the
open (see `another_user`), so the kernel refuses the writes as it would for a deploy user.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

import durable
from durable.errors import DatabaseUnusable, StoreError
from durable.store import NewRun
from durable_sqlite import SQLiteStore
from durable_sqlite.guard import IDENTITY_CHECK_SECONDS
from tests.test_worker import add_one, count_to

NOBODY = 65534  # the uid and gid of "nobody" on Linux


def new_run(workflow_id: str) -> NewRun:
    return NewRun(workflow_id, f"{workflow_id}-1", "wf", "default", b"in", 1.0)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---- permissions of a new file ------------------------------------------------------------


async def test_a_new_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store.create_run(new_run("w"), if_exists="error")
        # While the store is open the -wal and -shm files exist, with the file's mode.
        assert {name: _mode(tmp_path / name) for name in os.listdir(tmp_path)} == {
            "app.db": 0o600,
            "app.db-wal": 0o600,
            "app.db-shm": 0o600,
        }
    assert _mode(path) == 0o600


async def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE unrelated (x)")
    path.chmod(0o640)
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store.create_run(new_run("w"), if_exists="error")
        assert _mode(Path(f"{path}-wal")) == 0o640  # SQLite copies the file's mode
    assert _mode(path) == 0o640


# ---- read-only files -----------------------------------------------------------------------


@contextmanager
def another_user() -> Iterator[None]:
    """Run the block as a user who owns nothing here: ``nobody`` when this is root (who
    ignores file modes), else this user (whose own read-only files refuse it already)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory ``nobody`` can reach (pytest's tmp_path is root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="durable-ro-"))
    try:
        yield directory
    finally:
        directory.chmod(0o700)
        shutil.rmtree(directory)


async def _make_database(path: Path) -> None:
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store.create_run(new_run("w"), if_exists="error")


async def test_a_read_only_file_is_refused_at_open(open_dir: Path) -> None:
    os.chmod(open_dir, 0o777)  # only the file is out of bounds
    path = open_dir / "app.db"
    await _make_database(path)
    path.chmod(0o444)
    store = SQLiteStore(f"sqlite:///{path}")
    with another_user(), pytest.raises(StoreError) as info:
        await store.open()
    message = str(info.value)
    assert f"The SQLite database {str(path)!r} is read-only for this process" in message
    assert "Make it readable and writable by this user" in message


async def test_a_read_only_directory_is_refused_at_open(open_dir: Path) -> None:
    path = open_dir / "app.db"
    await _make_database(path)
    path.chmod(0o666)  # the file may be written, but no -wal file created beside it
    os.chmod(open_dir, 0o555)
    store = SQLiteStore(f"sqlite:///{path}")
    with another_user(), pytest.raises(StoreError) as info:
        await store.open()
    message = str(info.value)
    assert f"Cannot write in {str(open_dir)!r}, the directory of the SQLite database" in message
    assert "Make the directory writable by this user" in message


async def test_a_write_refused_as_read_only_says_so(tmp_path: Path) -> None:
    """SQLite's own "attempt to write a readonly database" (SQLITE_READONLY), should it come
    after a successful open. Provoked with ``PRAGMA query_only``, the one way to get that
    error code from SQLite on a connection already open for writing: a cheat on the cause,
    not on the path the error takes."""
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        await store._conn().execute("PRAGMA query_only = 1")
        with pytest.raises(DatabaseUnusable) as info:
            await store.create_run(new_run("w"), if_exists="error")
    assert f"The SQLite database {str(path)!r} cannot be written by this process" in str(info.value)
    assert "SQLITE_READONLY" in str(info.value)


# ---- the file deleted or replaced under a running worker ---------------------------------


@pytest.mark.parametrize("how", ["replaced", "deleted"])
async def test_a_worker_stops_when_its_file_is_replaced_or_deleted(
    tmp_path: Path, how: str
) -> None:
    path = tmp_path / "app.db"
    async with durable.connect(f"sqlite:///{path}") as client:
        worker = durable.Worker(client, workflows=[count_to], activities=[add_one])
        running = asyncio.ensure_future(worker.run())
        try:
            assert await client.execute(count_to, 2, timeout=10) == 2
            if how == "replaced":  # e.g. a backup restored with mv: a good database, another file
                other = tmp_path / "other.db"
                await _make_database(other)
                os.replace(other, path)
            else:
                path.unlink()
            with pytest.raises(DatabaseUnusable) as info:
                await asyncio.wait_for(running, 10)
        finally:
            if not running.done():
                worker.stop()
                await asyncio.wait_for(running, 10)
        expected = "deleted" if how == "deleted" else "replaced by another file"
        message = str(info.value)
        assert f"The database file {str(path)!r} was {expected} while this process" in message
        assert "Restart the worker" in message
        # The client's store sees it too, on its next operation after a check is due.
        await asyncio.sleep(IDENTITY_CHECK_SECONDS)
        with pytest.raises(DatabaseUnusable, match=f"was {expected}"):
            await client.start(count_to, 1, id="after")
        with pytest.raises(DatabaseUnusable, match=f"was {expected}"):
            await client.get_handle("after").describe()
