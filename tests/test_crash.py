"""Crash tests: real worker processes, killed for real (SIGKILL, SIGSTOP, SIGTERM).

Each test runs ``python -m durable worker tests.crash_app --db URL`` subprocesses from the
repository root on every backend (``store_url``), drives them with a client in this process,
and then reads the journals back:

- SIGKILL at random moments while 100+ multi-step workflows run: every workflow completes
  with the right result, every step is journaled exactly once, every step really ran.
- SIGSTOP past the lease, then SIGCONT (after the takeover finished, and during it): the
  frozen worker's late writes are rejected.
- SIGTERM: the worker exits 0 at once and hands its leases back, so another worker goes on
  without waiting for them to expire; what finished in its grace period is kept.
- A live worker presumed dead (its heartbeat stalled past the lease; in-process, with the
  worker's constants patched): an attempt declared lost cannot commit its result, even
  when the retry lands on the same worker; alone, the late worker keeps its attempt.

Leases: the workers run with ``--lease 2`` (2 s instead of 30 s: ``Worker(lease_seconds=)``,
renewed every third of a second) unless a test needs durable's default.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

import durable
import durable.worker
from durable import payload
from durable.errors import RemoteError
from durable.store import Store, TaskOutcome, TaskRecord, open_store
from tests import crash_app

ROOT = Path(__file__).resolve().parent.parent
SHORT_LEASE = 2.0  # seconds a claim survives a silent worker in these tests (not 30)
HEARTBEAT = SHORT_LEASE / 6  # the heartbeat interval that lease gives a worker
SEED = int(os.environ.get("DURABLE_CRASH_SEED", "20261122"))  # same kill schedule each run
KILLS = 6
FIRST_WAVE = 40  # workflows started before the first kill
WAVE = 14  # workflows started before each further kill
PIPELINE_ACTIVITIES = crash_app.STEPS + 2


@dataclass
class Proc:
    """One worker subprocess and where its output goes."""

    name: str
    process: asyncio.subprocess.Process
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.returncode is None


class Workers:
    """Worker subprocesses on one database; every one still running is killed at teardown."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.dir = tmp_path
        self.log = tmp_path / "executions.log"  # crash_app's record of activity executions
        self.procs: list[Proc] = []
        self._files: list[IO[bytes]] = []

    def _open(self, path: Path) -> IO[bytes]:
        f = path.open("wb")
        self._files.append(f)
        return f

    async def spawn(self, *, lease: float | None = SHORT_LEASE) -> Proc:
        """Start ``durable worker tests.crash_app``; ``lease=None`` keeps durable's default."""
        name = f"worker-{len(self.procs)}"
        env = dict(os.environ, CRASH_LOG=str(self.log), PYTHONUNBUFFERED="1")
        options = ("--lease", str(lease)) if lease is not None else ()
        stdout, stderr = self.dir / f"{name}.out", self.dir / f"{name}.err"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "durable", "--verbose", "worker", "tests.crash_app", "--db", self.url),
            *options,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._open(stdout),
            stderr=self._open(stderr),
        )
        proc = Proc(name, process, stdout, stderr)
        self.procs.append(proc)
        return proc

    async def ready(self, proc: Proc, timeout: float = 15.0) -> None:
        """Wait until the worker has printed its banner (it then opens the store and serves)."""
        deadline = time.monotonic() + timeout
        while b"Ctrl-C stops." not in proc.stdout.read_bytes():
            assert proc.alive, f"{proc.name} exited with {proc.process.returncode} at startup"
            assert time.monotonic() < deadline, f"{proc.name} did not start in {timeout}s"
            await asyncio.sleep(0.05)

    @property
    def alive(self) -> list[Proc]:
        return [p for p in self.procs if p.alive]

    async def kill(self, proc: Proc) -> None:
        """SIGKILL (works on a stopped process too) and reap."""
        if proc.alive:
            proc.process.kill()
        await proc.process.wait()

    async def close(self) -> None:
        for proc in self.procs:
            await self.kill(proc)
        for f in self._files:
            f.close()

    def executions(self) -> list[tuple[str, str, str, int, int]]:
        """crash_app's log: ``(event, activity, key, pid, attempt)`` per line."""
        if not self.log.exists():
            return []
        rows = []
        for line in self.log.read_text().splitlines():
            event, name, key, pid, attempt = line.split()
            rows.append((event, name, key, int(pid), int(attempt)))
        return rows

    def running(self) -> set[int]:
        """The pids that have started an activity and not yet ended it, per the log."""
        open_attempts: Counter[tuple[str, str, int]] = Counter()
        for event, name, key, pid, _ in self.executions():
            open_attempts[(name, key, pid)] += 1 if event == "start" else -1
        return {pid for (_, _, pid), count in open_attempts.items() if count > 0}

    def dump(self) -> None:
        """Print every worker's output (shown by pytest when the test fails)."""
        for proc in self.procs:
            code = proc.process.returncode
            print(f"===== {proc.name} pid {proc.pid} exit {code} =====")
            for path in (proc.stdout, proc.stderr):
                text = path.read_text(errors="replace") if path.exists() else ""
                print(f"--- {path.name} (last 200 lines) ---")
                print("\n".join(text.splitlines()[-200:]))

    @contextlib.contextmanager
    def dump_on_failure(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self.dump()
            raise


@pytest.fixture
async def workers(store_url: str, tmp_path: Path) -> AsyncIterator[Workers]:
    pool = Workers(store_url, tmp_path)
    try:
        yield pool
    finally:
        await pool.close()


async def in_transaction(url: str) -> bool:
    """Whether some process holds a transaction open on the database that ``url`` names:
    SQLite's write lock, or a PostgreSQL session with locks on the URL's schema."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        with contextlib.closing(sqlite3.connect(parts.path[1:], timeout=0.2)) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True
            db.execute("ROLLBACK")
            return False
    import asyncpg

    query = parse_qsl(parts.query)
    schema = dict(query)["schema"]
    dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks l "
            "JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
            schema,
        )
    finally:
        await conn.close()
    return bool(held)


async def freeze_safely(proc: Proc, url: str) -> None:
    """SIGSTOP ``proc`` at a moment when it holds no transaction open.

    Frozen inside one, it would keep the other workers out (all of a SQLite file; on
    PostgreSQL the rows it locked, which claims skip) until it resumes; that is a separate
    problem from the fencing these tests are about, so refreeze a moment later instead.
    """
    for _ in range(100):
        os.kill(proc.pid, signal.SIGSTOP)
        if not await in_transaction(url):
            return
        os.kill(proc.pid, signal.SIGCONT)
        await asyncio.sleep(0.01)
    pytest.fail(f"{proc.name} was always inside a transaction; could not freeze it safely")


async def wait_for_line(
    workers: Workers, want: tuple[str, str, str], timeout: float, pid: int | None = None
) -> int:
    """Wait until crash_app logged ``(event, activity, key)`` (by ``pid`` if given); the pid."""
    deadline = time.monotonic() + timeout
    while True:
        for event, name, key, by, _ in workers.executions():
            if (event, name, key) == want and pid in (None, by):
                return by
        assert time.monotonic() < deadline, f"no {want} by {pid or 'any'} within {timeout}s"
        await asyncio.sleep(0.02)


def check_journal(events: list[durable.Event], expected_keys: set[tuple[Any, ...]]) -> Counter[str]:
    """The journal is gapless, starts and completes once, and schedules and completes each
    of ``expected_keys`` (activity name + arguments but the last) exactly once."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1)), "seqs are not gapless"
    kinds = Counter(e.kind for e in events)
    assert events[0].kind == "workflow_started"
    assert events[-1].kind == "workflow_completed"
    assert kinds["workflow_started"] == 1
    assert kinds["workflow_completed"] == 1
    assert kinds["activity_failed"] == 0
    scheduled = {e.seq: e for e in events if e.kind == "activity_scheduled"}
    keys = [(e.data["name"], *e.data["args"]["args"][:-1]) for e in scheduled.values()]
    assert sorted(keys, key=repr) == sorted(expected_keys, key=repr), "steps scheduled"
    refs = [e.data["ref"] for e in events if e.kind == "activity_completed"]
    assert len(refs) == len(set(refs)), f"an activity completion was journaled twice: {refs}"
    assert set(refs) == set(scheduled), "every scheduled activity completes, once"
    completed_at = {e.data["ref"]: e.seq for e in events if e.kind == "activity_completed"}
    for e in events:
        if e.kind == "activity_retrying":  # a lost or failed attempt, before the success
            assert e.seq < completed_at[e.data["ref"]]
    return kinds


def pipeline_keys(n: int) -> set[tuple[Any, ...]]:
    steps = {("step", n, k) for k in range(crash_app.STEPS)}
    return steps | {("branch", n, "a"), ("branch", n, "b")}


async def wait_all_closed(client: durable.Client, name: str, count: int, timeout: float) -> None:
    """Poll the list (lighter than a hundred result() waiters) until ``count`` runs closed."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = Counter([d.status async for d in client.list(name=name, limit=10 * count)])
        if statuses["completed"] + statuses["failed"] >= count:
            return
        assert time.monotonic() < deadline, f"not all {count} {name} closed: {dict(statuses)}"
        await asyncio.sleep(0.25)


@pytest.mark.slow
async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    store_url: str, workers: Workers
) -> None:
    rng = random.Random(SEED)
    size = 3 if urlsplit(store_url).scheme.startswith("postgres") else 2
    began = time.monotonic()
    with workers.dump_on_failure():
        for proc in [await workers.spawn() for _ in range(size)]:
            await workers.ready(proc)
        killed: list[int] = []
        async with durable.connect(store_url) as client:
            started = 0

            async def start(count: int) -> None:
                nonlocal started
                for n in range(started, started + count):
                    await client.start(crash_app.pipeline, n, id=f"pipeline-{n}")
                started += count

            await start(FIRST_WAVE)
            for _ in range(KILLS):
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                # A random worker, among those running an activity right now if any are:
                # killing an idle one would test little.
                running = workers.running()
                victim = rng.choice([p for p in workers.alive if p.pid in running] or workers.alive)
                await workers.kill(victim)
                killed.append(victim.pid)
                await workers.spawn()
                await start(WAVE)
            await wait_all_closed(client, "pipeline", started, timeout=40)

            lost_attempts = 0
            for n in range(started):
                handle = client.get_handle(f"pipeline-{n}")
                desc = await handle.describe()
                assert (desc.status, desc.result) == ("completed", crash_app.expected(n)), n
                kinds = check_journal(await handle.history(), pipeline_keys(n))
                assert kinds["activity_scheduled"] == PIPELINE_ACTIVITIES
                assert kinds["activity_completed"] == PIPELINE_ACTIVITIES
                assert kinds["timer_started"] == kinds["timer_fired"] == 1
                lost_attempts += kinds["activity_retrying"]

        assert len(killed) == KILLS
        runs = workers.executions()
        ended = Counter((name, key) for event, name, key, _, _ in runs if event == "end")
        for n in range(started):
            for name, _, last in pipeline_keys(n):
                assert ended[(name, f"{n}:{last}")] >= 1, f"{name} {n}:{last} never ran to the end"
        # The kills hit running work: attempts were lost with their worker and re-run.
        assert lost_attempts > 0
        assert any(pid in killed for event, *_, pid, _ in runs if event == "start")
        extra = sum(1 for event, *_ in runs if event == "start") - started * PIPELINE_ACTIVITIES
        print(
            f"{started} workflows, {KILLS} kills, {lost_attempts} attempts lost with a worker, "
            f"{extra} extra activity executions, {time.monotonic() - began:.1f}s"
        )


async def freeze_past_lease(
    client: durable.Client, workers: Workers, workflow_id: str
) -> tuple[durable.WorkflowHandle[Any], Proc, Proc]:
    """Start ``relay(3, 1.0)`` on one worker, freeze it during step s1, start another and
    wait until that one runs s1 again (possible only once the frozen worker's lease ran
    out). Returns the handle, the frozen worker and the other one."""
    first = await workers.spawn()
    await workers.ready(first)
    handle = await client.start(crash_app.relay, 3, 1.0, id=workflow_id)
    await wait_for_line(workers, ("start", "slow", "s1"), 15, pid=first.pid)
    await freeze_safely(first, workers.url)
    frozen_at = time.monotonic()
    second = await workers.spawn()
    await wait_for_line(workers, ("start", "slow", "s1"), 15, pid=second.pid)
    assert time.monotonic() - frozen_at >= SHORT_LEASE - HEARTBEAT
    return handle, first, second


async def resume(workers: Workers, frozen: Proc) -> None:
    """SIGCONT ``frozen`` and wait until its stale attempt of s1 has ended and it has had a
    few heartbeats and commits in which to try to deliver it."""
    os.kill(frozen.pid, signal.SIGCONT)
    await wait_for_line(workers, ("end", "slow", "s1"), 10, pid=frozen.pid)
    await asyncio.sleep(4 * HEARTBEAT)


@pytest.mark.slow
async def test_worker_frozen_past_its_lease_cannot_write(store_url: str, workers: Workers) -> None:
    """Resumed after the other worker finished the workflow: nothing it does changes it."""
    with workers.dump_on_failure():
        async with durable.connect(store_url) as client:
            handle, first, second = await freeze_past_lease(client, workers, "relay-frozen")
            result = await handle.result(timeout=30)
            assert result == [f"s0@{first.pid}", f"s1@{second.pid}", f"s2@{second.pid}"]
            before = await handle.history()

            await resume(workers, first)
            after = await handle.history()
            assert after == before, "the resumed worker changed the journal"
            check_journal(after, {("slow", "s0"), ("slow", "s1"), ("slow", "s2")})
            desc = await handle.describe()
            assert (desc.status, desc.result, desc.pending) == ("completed", result, [])
            assert first.alive, "the resumed worker crashed"
        await workers.kill(first)
        await workers.kill(second)


@pytest.mark.slow
async def test_worker_frozen_past_its_lease_resumed_mid_takeover(
    store_url: str, workers: Workers
) -> None:
    """Resumed while the other worker is still running s1: its stale s1 result loses the
    race however it goes, and the journal stays whole."""
    with workers.dump_on_failure():
        async with durable.connect(store_url) as client:
            handle, first, second = await freeze_past_lease(client, workers, "relay-resumed")
            await resume(workers, first)
            result = await handle.result(timeout=30)
            # s2 may run in either worker: the resumed one serves again.
            assert result[:2] == [f"s0@{first.pid}", f"s1@{second.pid}"]
            await asyncio.sleep(2 * HEARTBEAT)
            check_journal(await handle.history(), {("slow", "s0"), ("slow", "s1"), ("slow", "s2")})
            desc = await handle.describe()
            assert (desc.status, desc.result, desc.pending) == ("completed", result, [])
            assert first.alive, "the resumed worker crashed"
        await workers.kill(first)
        await workers.kill(second)


async def sigterm_mid_relay(
    store_url: str, workers: Workers
) -> tuple[list[str], Proc, Proc, list[str]]:
    """Run ``relay(6, 0.4)`` on one worker with durable's default lease, another worker
    standing by; SIGTERM the first during step s2. Checks that it exits 0 promptly, that
    it starts no activity once it has taken the signal, and that the second finishes the
    workflow long before a lease could have expired; returns the result, both workers and
    the steps the first had started when it took the signal."""
    lease = durable.worker.LEASE_SECONDS  # durable's default: nothing patched here
    first = await workers.spawn(lease=None)
    await workers.ready(first)
    # s2 waits for the SIGTERM: on a slow machine the second worker's start took long
    # enough for the first to run every step before the test got to send it.
    hold = Path(f"{workers.log}.hold-s2")
    await asyncio.to_thread(hold.touch)
    async with durable.connect(store_url) as client:
        handle = await client.start(crash_app.relay, 6, 0.4, id="relay-sigterm")
        second = await workers.spawn(lease=None)
        await workers.ready(second)
        await wait_for_line(workers, ("start", "slow", "s2"), 15, pid=first.pid)
        first.process.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        while "stopping:" not in first.stderr.read_text():
            assert time.monotonic() - stopped_at < 5, "the worker did not take SIGTERM"
            await asyncio.sleep(0.01)
        started = [k for e, _, k, p, _ in workers.executions() if e == "start" and p == first.pid]
        await asyncio.to_thread(hold.unlink)  # s2 ends within the stopping worker's grace period
        assert await asyncio.wait_for(first.process.wait(), 5) == 0
        exited = time.monotonic() - stopped_at
        result = await handle.result(timeout=lease)
        took = time.monotonic() - stopped_at
        print(f"exited {exited:.2f}s after SIGTERM; workflow done {took:.2f}s after")
        assert took < lease / 3, f"took {took:.1f}s after SIGTERM: were the leases handed back?"
        check_journal(await handle.history(), {("slow", f"s{i}") for i in range(6)})
    later = [k for e, _, k, p, _ in workers.executions() if e == "start" and p == first.pid]
    assert later == started, f"started {later[len(started) :]} after taking SIGTERM"
    return result, first, second, started


@pytest.mark.slow
async def test_sigterm_hands_leases_back_at_once(store_url: str, workers: Workers) -> None:
    with workers.dump_on_failure():
        result, first, second, by_first = await sigterm_mid_relay(store_url, workers)
        # The first worker ran s0, s1 and s2, in flight at SIGTERM, and nothing after it.
        assert by_first == ["s0", "s1", "s2"]
        pids = [int(r.split("@")[1]) for r in result]
        assert pids == [first.pid] * 3 + [second.pid] * 3


@pytest.mark.slow
async def test_sigterm_keeps_what_finished_in_its_grace_period(
    store_url: str, workers: Workers
) -> None:
    """The stopping worker lets its running activity finish (``STOP_GRACE``): that result
    is kept, not thrown away and the activity run again elsewhere."""
    with workers.dump_on_failure():
        result, first, second, _ = await sigterm_mid_relay(store_url, workers)
        assert ("end", "slow", "s2", first.pid) in [r[:4] for r in workers.executions()]
        assert ("start", "slow", "s2", second.pid) not in [r[:4] for r in workers.executions()]
        assert result[2] == f"s2@{first.pid}"


def _stall_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leases of 1 s that nobody renews: every worker in this process is late (a long
    database outage or lock wait, a GC or VM pause), though alive."""
    monkeypatch.setattr(durable.worker, "LEASE_SECONDS", 1.0)
    monkeypatch.setattr(durable.worker, "HEARTBEAT_INTERVAL", 60.0)  # the stall
    monkeypatch.setattr(durable.worker, "POLL_INTERVAL", 0.1)


@pytest.mark.slow
async def test_attempt_declared_lost_cannot_commit_its_result(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live worker whose heartbeat stalls past its lease is presumed dead by another:
    its running attempt is declared lost and retried, and the retry may well come back to
    this same worker. The stale attempt's result must then lose to the fence, like any
    dead worker's: the journal never says "attempt 1 was lost" and also commits attempt
    1's result. This test plays the other worker through the storage contract, so that
    the retry can only go to the late worker (its owner id matches; its attempt does not).
    """
    _stall_heartbeats(monkeypatch)
    detector = open_store(store_url)
    async with durable.connect(store_url) as client, detector:
        workflows, activities = [crash_app.lapse], [crash_app.lapsing]
        async with durable.Worker(client, workflows=workflows, activities=activities):
            handle = await client.start(crash_app.lapse, 1.5, 0.8, id="lapse")
            started = time.monotonic()
            while not (lost := await _claim_lapsed(detector)):
                assert time.monotonic() - started < 10, "attempt 1's lease never lapsed"
                await asyncio.sleep(0.05)
            [task] = lost
            assert (task.status, task.attempt) == ("running", 1)
            error = RemoteError("WorkerLost", "presumed dead by the test").to_dict()
            item = {"ref": task.seq, "attempt": 1, "error": error}
            retry = TaskOutcome(
                "retry", "activity_retrying", payload.encode(item), visible_at=time.time()
            )
            assert await detector.finish_task(task.task_id, "detector", 1, retry, time.time())
            committed = await handle.result(timeout=15)
        events = await handle.history()
    lost_attempts = {e.data["attempt"] for e in events if e.kind == "activity_retrying"}
    assert lost_attempts == {1}
    assert committed == 2, (
        f"attempt {committed}'s result was committed, but the journal declared attempt 1 "
        f"lost: {[(e.seq, e.kind, e.data.get('attempt')) for e in events]}"
    )
    check_journal(events, {("lapsing", 1.5)})


async def _claim_lapsed(store: Store) -> list[TaskRecord]:
    now = time.time()
    return await store.claim_tasks(
        "detector", queues=["default"], names=["lapsing"], now=now, lease_until=now + 60, limit=1
    )


@pytest.mark.slow
async def test_lone_worker_late_to_renew_keeps_its_running_attempt(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same stall with no other worker: the late worker does not declare its own
    running attempt lost (it knows that attempt is alive), so it runs once and counts."""
    _stall_heartbeats(monkeypatch)
    async with durable.connect(store_url) as client:
        async with durable.Worker(
            client, workflows=[crash_app.lapse], activities=[crash_app.lapsing]
        ):
            handle = await client.start(crash_app.lapse, 1.5, 0.8, id="lapse-alone")
            assert await handle.result(timeout=15) == 1
        events = await handle.history()
    assert [e.kind for e in events if e.kind.startswith("activity")] == [
        "activity_scheduled",
        "activity_completed",
    ]
    check_journal(events, {("lapsing", 1.5)})
