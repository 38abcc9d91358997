"""Wake-ups between processes on one SQLite file (`durable_sqlite.doorbell`): a commit in
one process rings the doorbells of the others, which wake their waiters at once rather
than at their next ``data_version`` poll. The poll is made too slow to matter here (30 s),
so only a doorbell can end these waits early."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from durable.notify import Hub
from durable.store import TOPIC_RUNS, run_topic
from durable.testing.store_contract.kit import claim
from durable_sqlite import SQLiteStore, doorbell, wakeups

REPO = Path(__file__).resolve().parent.parent
WAIT = 20.0  # seconds a wait may take at most here: far less than the slowed poll


@pytest.fixture
def slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wakeups, "POLL_FIRST", 30.0)
    monkeypatch.setattr(wakeups, "POLL_INTERVAL", 30.0)


def _in_another_process(path: Path, body: str) -> subprocess.Popen[str]:
    """Run ``body`` (async code with ``durable`` imported and ``URL`` set) in a new process."""
    code = textwrap.dedent(
        """
        import asyncio, durable
        URL = {url!r}
        async def main():
        {body}
        asyncio.run(main())
        """
    ).format(url=f"sqlite:///{path}", body=textwrap.indent(textwrap.dedent(body), "    "))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'backends'}"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, text=True)


async def _finish(proc: subprocess.Popen[str]) -> None:
    while proc.poll() is None:
        await asyncio.sleep(0.02)
    assert proc.returncode == 0


async def test_another_process_start_wakes_a_worker_waiting_for_runs(
    tmp_path: Path, slow_poll: None
) -> None:
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        assert await claim(store, "w1") == []
        mark = store.watermark()
        proc = _in_another_process(
            path,
            """
            async with durable.connect(URL) as client:
                await client.start("somewhere", id="rung")
            """,
        )
        started = time.monotonic()
        await store.wait([TOPIC_RUNS], WAIT, since=mark)
        assert time.monotonic() - started < WAIT - 1  # woken, not timed out
        await _finish(proc)
        claimed = await claim(store, "w1", names=["somewhere"])
        assert [c.run.workflow_id for c in claimed] == ["rung"]


async def test_another_process_signal_wakes_a_result_waiter(
    tmp_path: Path, slow_poll: None
) -> None:
    """A workflow's own topic travels too: a waiter on one workflow is woken by another
    process's commit to it (through the topic, with no poll of the watched runs)."""
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        proc = _in_another_process(
            path,
            """
            async with durable.connect(URL) as client:
                await client.start("somewhere", id="watched")
            """,
        )
        await _finish(proc)
        mark = store.watermark()
        proc = _in_another_process(
            path,
            """
            async with durable.connect(URL) as client:
                await client.get_handle("watched").terminate("enough")
            """,
        )
        started = time.monotonic()
        await store.hub.wait([run_topic("watched")], WAIT, since=mark)
        assert time.monotonic() - started < WAIT - 1
        await _finish(proc)
        run = await store.get_run("watched")
        assert run is not None
        assert run.status == "terminated"


def _doorbell_directories() -> list[str]:
    parent = os.path.dirname(doorbell._directory("x"))
    return [os.path.join(parent, name) for name in os.listdir(parent)]


async def test_doorbells_are_private_and_leave_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    directory = doorbell._directory(str(path))
    async with SQLiteStore(f"sqlite:///{path}") as one, SQLiteStore(f"sqlite:///{path}") as two:
        assert one.hub is two.hub
        [name] = os.listdir(directory)  # one doorbell per file per process
        assert name.startswith(f"{os.getpid()}-")
        for d in (directory, os.path.dirname(directory)):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
            assert os.stat(d).st_uid == os.getuid()
        assert stat.S_ISSOCK(os.stat(os.path.join(directory, name)).st_mode)
    assert doorbell._directory(str(path)) not in _doorbell_directories()  # last out removes it


async def test_a_dead_process_doorbell_is_removed_by_the_next_ring(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        directory = doorbell._directory(str(path))
        proc = _in_another_process(
            path,
            """
            import os, signal
            store = durable.store.open_store(URL)
            await store.open()
            os.kill(os.getpid(), signal.SIGKILL)  # no goodbye: its socket file stays
            """,
        )
        proc.wait(30)
        assert proc.returncode == -9
        assert len(os.listdir(directory)) == 2
        store.hub.notify([TOPIC_RUNS])  # a commit here rings it: nobody answers
        assert len(os.listdir(directory)) == 1


async def test_a_directory_others_may_write_is_not_used(tmp_path: Path) -> None:
    """Another user's (or a world-writable) directory could collect the topics rung,
    which name workflows: no doorbell then, and the poll serves as it always did."""
    path = tmp_path / "app.db"
    directory = doorbell._directory(str(path))
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o777)
    try:
        async with SQLiteStore(f"sqlite:///{path}") as store:
            assert store.hub.forward is None
            assert os.listdir(directory) == []
            mark = store.watermark()
            store.hub.notify([TOPIC_RUNS])
            await store.hub.wait([TOPIC_RUNS], 1.0, since=mark)  # still wakes in-process
    finally:
        os.rmdir(directory)


async def test_too_many_topics_to_name_wake_everyone(tmp_path: Path) -> None:
    """Past `MAX_DATAGRAM` bytes (counted encoded: ids may be any Unicode) a ring names no
    topic but ``*``, which wakes every waiter of the other process."""
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        other_hub = Hub()  # another process's, as far as doorbells can tell
        other = doorbell.Doorbell.open(other_hub, str(path))
        assert other is not None
        other.listen(asyncio.get_running_loop())
        try:
            many = [run_topic("ü" * 40 + str(i)) for i in range(800)]  # 80 bytes each
            assert len(",".join(many)) < doorbell.MAX_DATAGRAM < len(",".join(many).encode())
            mark = other_hub.generation
            store.hub.notify(many)
            await other_hub.wait([run_topic("unrelated")], WAIT, since=mark)
            assert other_hub.topics_since(mark) is None  # "*": anything may have changed
        finally:
            other.close()


def _commit_without_doorbell(path: Path) -> None:
    """A commit by a connection that rings nobody (another user's process, or one with
    another ``TMPDIR``), concerning no waiter: it moves only ``data_version``."""
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
        raw.execute("INSERT INTO scratch VALUES (1)")
    raw.close()


async def test_with_a_ringing_neighbour_data_version_is_only_the_net(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where other processes ring this one's doorbell, a commit of theirs that concerns no
    waiter here (a ``durable server``'s claim) does not end a wait on work at the first
    ``data_version`` check; a writer with no doorbell is still noticed, by the check made
    every `POLL_INTERVAL` (1 s here, against a first check after 5 ms)."""
    monkeypatch.setattr(wakeups, "POLL_INTERVAL", 1.0)
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        neighbour = doorbell.Doorbell.open(Hub(), str(path))  # another process's, as seen
        assert neighbour is not None
        try:
            assert await claim(store, "w1") == []  # the wait's baseline
            _commit_without_doorbell(path)
            started = time.monotonic()
            await store.wait([TOPIC_RUNS], WAIT)
            assert 0.9 <= time.monotonic() - started < WAIT - 1
        finally:
            neighbour.close()


async def test_with_no_neighbour_to_ring_data_version_is_looked_at_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No other doorbell: every other writer is one that rings nobody, so the first check
    comes after `POLL_FIRST` as before, not a `POLL_INTERVAL` later."""
    monkeypatch.setattr(wakeups, "POLL_INTERVAL", 30.0)
    path = tmp_path / "app.db"
    async with SQLiteStore(f"sqlite:///{path}") as store:
        assert await claim(store, "w1") == []
        _commit_without_doorbell(path)
        started = time.monotonic()
        await store.wait([TOPIC_RUNS], WAIT)
        assert time.monotonic() - started < WAIT - 1
