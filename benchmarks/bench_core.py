"""Core benchmarks: latency, throughput, fan-out, replay, sleepers, and the database's limit.

    .venv/bin/python benchmarks/bench_core.py                  # SQLite, fresh files in a temp dir
    .venv/bin/python benchmarks/bench_core.py --only W1,W2,W3,L \\
        --db postgresql://postgres@127.0.0.1:5432/test --workers 1,2,4

Workloads (one worker, the client in the same process, unless said otherwise):

- W1 latency: a workflow of 10 sequential no-op activities, run 30 times one after another
  after a warm-up; p50 and p95. ``--external``: the worker is a ``durable worker``
  subprocess, so the result reaches the client across processes. On SQLite also the
  disk's floor beside it: 12 single-row commits of plain ``sqlite3`` (WAL,
  ``synchronous=FULL``; a workflow of 10 steps costs about 12 transactions) on a file in
  the same directory, timed just before W1 (the median of 30), and W1 p50 as a multiple
  of it.
- W2 throughput: 500 such workflows started at once (``asyncio.gather``), then all results
  awaited; workflows/s and steps/s (a step is one activity: 5,000 steps). ``--workers
  1,2,4`` runs it with that many worker processes: the one in this process plus
  ``durable worker benchmarks.bench_core`` subprocesses (``--external``: all of them
  subprocesses, this process only the client). Also reports where the CPU went, and
  steps per CPU-second of durable's processes.
- W3 fan-out: one workflow gathering 1,000 no-op activities; wall time.
- R replay: rebuild a run from its ~10,000-entry journal (5,000 sequential activities) the
  way `Worker._rebuild` does: read the journal, replay it through `WorkflowRun`.
- S sleepers: RSS of this process (client + worker) with ``--sleepers`` workflows asleep on
  a 30-day timer, beside the idle RSS.
- L limit: the raw driver on the same database: aiosqlite single-row INSERT+COMMIT and
  100-row batches with the store's pragmas; or asyncpg single-row transactions and 100-row
  batches with 10 concurrent writers.

Each workload gets a fresh database: an SQLite file (removed at the end unless ``--keep``)
or a PostgreSQL schema ``bench_<random>_<workload>`` (dropped at the end unless ``--keep``).
Results are reported, never asserted. The workflows and activities are defined at module
level so that ``python -m durable worker benchmarks.bench_core`` serves them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import logging
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import durable
from durable import payload
from durable.definition import workflow_definition
from durable.engine import INPUT_KINDS, WorkflowRun
from durable.errors import NonDeterminismError
from durable.store import JournalEntry, RunRecord, open_store

ROOT = Path(__file__).resolve().parent.parent  # the repository: cwd of worker subprocesses

STEPS = 10  # activities per workflow in W1 and W2
W1_RUNS = 30  # timed runs in W1
W1_WARMUP = 5  # untimed runs before them
W2_WORKFLOWS = 500  # started at once in W2
W3_FANOUT = 1000  # activities gathered by the W3 workflow
R_ACTIVITIES = 5000  # sequential activities of the R workflow (journal: 2 * 5000 + 2 entries)
R_REPEAT = 5  # rebuilds timed in R
S_BATCH = 1000  # sleepers started per gather in S
L_SECONDS = 3.0  # duration of each raw-driver measurement
L_WRITERS = 10  # concurrent asyncpg writers in L
SLEEP = dt.timedelta(days=30)

# Targets from the issues (SQLite #2, PostgreSQL #3): (value, "<=" or ">=").
TARGETS: dict[tuple[str, str, str], tuple[float, str]] = {
    ("sqlite", "W1", "p50 ms"): (10, "<="),
    ("sqlite", "W2", "steps/s"): (3000, ">="),
    ("sqlite", "W3", "wall s"): (0.5, "<="),
    ("sqlite", "R", "rebuild ms"): (200, "<="),
    ("sqlite", "S", "RSS asleep MB"): (150, "<="),
    ("postgresql", "W1", "p50 ms"): (15, "<="),
    ("postgresql", "W2", "steps/s"): (2000, ">="),
}

logger = logging.getLogger("bench_core")


# -- the workload code (module level: worker subprocesses import it) --------------------------


@durable.activity(name="bench_noop")
async def noop(i: int) -> int:
    """Does nothing: every cost measured is durable's."""
    return i


@durable.workflow(name="bench_sequence")
async def sequence(n: int) -> int:
    """``n`` activities one after another (W1, W2, R)."""
    for i in range(n):
        await noop(i)
    return n


@durable.workflow(name="bench_fan_out")
async def fan_out(n: int) -> int:
    """``n`` activities at once (W3)."""
    results = await asyncio.gather(*(noop(i) for i in range(n)))
    return len(results)


@durable.workflow(name="bench_sleeper")
async def sleeper() -> None:
    """Sleeps for a month (S)."""
    await durable.sleep(SLEEP)


WORKFLOWS = [sequence, fan_out, sleeper]
ACTIVITIES = [noop]


# -- results ------------------------------------------------------------------------------


@dataclass
class Row:
    workload: str
    metric: str
    value: float | str
    note: str = ""


class Report:
    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.rows: list[Row] = []

    def add(self, workload: str, metric: str, value: float | str, note: str = "") -> None:
        row = Row(workload, metric, value, note)
        self.rows.append(row)
        print(f"  {workload:<6} {metric:<24} {_fmt(value):>12}  {note}", file=sys.stderr)

    def target(self, row: Row) -> tuple[str, str]:
        key = (self.backend, row.workload.split(" ")[0], row.metric)
        # W2's target is for one worker process.
        if row.workload.startswith("W2") and row.workload not in ("W2", "W2 x1"):
            return "", ""
        found = TARGETS.get(key)
        if found is None or isinstance(row.value, str):
            return "", ""
        limit, op = found
        met = row.value <= limit if op == "<=" else row.value >= limit
        return f"{op} {_fmt(limit)}", "yes" if met else "no"

    def print(self, header: str) -> None:
        print()
        print(header)
        print(f"{'workload':<10}{'metric':<26}{'value':>14}  {'target':<10}{'met':<5}note")
        for row in sorted(self.rows, key=lambda r: ALL.index(r.workload.split(" ")[0])):
            target, met = self.target(row)
            print(
                f"{row.workload:<10}{row.metric:<26}{_fmt(row.value):>14}  "
                f"{target:<10}{met:<5}{row.note}"
            )


def _fmt(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


# -- databases ----------------------------------------------------------------------------


def backend_of(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    return "postgresql" if scheme in ("postgresql", "postgres") else "sqlite"


def _with_query(url: str, **changes: str | None) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in changes]
    query += [(k, v) for k, v in changes.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _schema_of(url: str) -> str | None:
    found = [v for k, v in parse_qsl(urlsplit(url).query) if k == "schema"]
    return found[-1] if found else None


class Databases:
    """A fresh database per workload: an SQLite file, or a PostgreSQL schema."""

    def __init__(self, base: str | None, keep: bool) -> None:
        self.keep = keep
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if base is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="durable-bench-")
            base = f"sqlite:///{self._tmp.name}/bench.db"
        self.base = base
        self.backend = backend_of(base)
        self._prefix = _schema_of(base) or f"bench_{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def fresh(self, tag: str) -> str:
        tag = tag.lower().replace(" ", "_")
        if self.backend == "postgresql":
            url = _with_query(self.base, schema=f"{self._prefix}_{tag}")
        else:
            parts = urlsplit(self.base)
            path = Path(parts.path[1:] if parts.path.startswith("/") else parts.path)
            target = path.with_name(f"{path.stem}-{tag}-{uuid.uuid4().hex[:6]}{path.suffix}")
            url = f"sqlite:///{target}" + (f"?{parts.query}" if parts.query else "")
        self.created.append(url)
        return url

    def sqlite_path(self, url: str) -> str:
        path = urlsplit(url).path
        return path[1:] if path.startswith("/") else path

    def dsn(self, url: str) -> str:
        """The asyncpg DSN of a PostgreSQL URL (without ``schema=``)."""
        return _with_query(url, schema=None)

    async def cleanup(self) -> None:
        if self.keep:
            print(f"kept: {', '.join(self.created)}", file=sys.stderr)
            return
        if self.backend == "postgresql" and self.created:
            import asyncpg

            conn = await asyncpg.connect(self.dsn(self.base))
            try:
                for url in self.created:
                    schema = _schema_of(url)
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
        elif self.backend == "sqlite":
            for url in self.created:
                path = self.sqlite_path(url)
                for suffix in ("", "-wal", "-shm", ".lock"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(path + suffix)
        if self._tmp is not None:
            self._tmp.cleanup()


# -- processes and CPU ----------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(stat_path: str) -> float:
    """utime + stime (seconds) from a /proc/.../stat file; 0 if it is gone."""
    try:
        text = Path(stat_path).read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("postgres"):
                pids.append(int(entry))
    return pids


def _machine() -> tuple[float, float, float]:
    """(busy, iowait, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle, iowait = fields[3], fields[4]
    total = sum(fields[:8])
    return total - idle - iowait, iowait, total


class CpuMeter:
    """Where the CPU went between `start` and `stop`: this process (its event-loop thread
    and its other threads, e.g. aiosqlite's), worker subprocesses, PostgreSQL processes."""

    def __init__(self, children: Sequence[int], postgres: bool) -> None:
        self.children = list(children)
        self.postgres = postgres
        self._start: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        pid = os.getpid()
        sample = {
            "this process": _cpu_of(f"/proc/{pid}/stat"),
            "event-loop thread": _cpu_of(f"/proc/{pid}/task/{pid}/stat"),
            "worker subprocesses": sum(_cpu_of(f"/proc/{c}/stat") for c in self.children),
        }
        if self.postgres:
            # Per pid, so backends that exit mid-run are lost: connections are pooled, so
            # the long-lived backends are all counted.
            for p in _postgres_pids():
                sample[f"pg:{p}"] = _cpu_of(f"/proc/{p}/stat")
        busy, iowait, total = _machine()
        sample["_busy"], sample["_iowait"], sample["_total"] = busy, iowait, total
        return sample

    def start(self) -> None:
        self._start = self._sample()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        delta = {k: v - self._start.get(k, 0.0) for k, v in end.items()}
        out = {
            "this process": delta["this process"],
            "event-loop thread": delta["event-loop thread"],
            "other threads": delta["this process"] - delta["event-loop thread"],
            "worker subprocesses": delta["worker subprocesses"],
        }
        if self.postgres:
            out["postgres"] = sum(v for k, v in delta.items() if k.startswith("pg:"))
        total = delta["_total"] or 1.0
        out["machine busy %"] = 100 * delta["_busy"] / total
        out["machine iowait %"] = 100 * delta["_iowait"] / total
        return out


@contextlib.asynccontextmanager
async def worker_processes(url: str, count: int) -> AsyncIterator[list[int]]:
    """``count`` ``durable worker benchmarks.bench_core`` subprocesses, stopped by SIGTERM."""
    procs: list[asyncio.subprocess.Process] = []
    logs = []
    try:
        for i in range(count):
            log = tempfile.NamedTemporaryFile(  # closed in finally
                prefix=f"bench-worker-{i}-", suffix=".log", delete=False
            )
            logs.append(log)
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "durable",
                    "worker",
                    "benchmarks.bench_core",
                    "--db",
                    url,
                    cwd=ROOT,
                    stdout=log,
                    stderr=log,
                )
            )
        yield [p.pid for p in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc, log in zip(procs, logs, strict=False):
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            log.close()
            _keep_log_if_errors(proc.pid, log.name)


def _keep_log_if_errors(pid: int, name: str) -> None:
    text = Path(name).read_text()
    if "Traceback" in text or "ERROR" in text:
        print(f"worker {pid} logged errors; see {name}", file=sys.stderr)
    else:
        os.remove(name)


async def wait_for_workers(url: str, count: int, timeout: float = 60.0) -> None:
    """Until ``count`` workers have registered in the database."""
    async with open_store(url) as store:
        deadline = time.monotonic() + timeout
        while len(await store.list_workers()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} workers did not register within {timeout:g} s")
            await asyncio.sleep(0.1)


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount, _ = line.split()
            values[key] = int(amount) / 1024
    return values["VmRSS:"], values["VmHWM:"]


@contextlib.asynccontextmanager
async def client_and_worker(url: str, *, worker: bool = True) -> AsyncIterator[durable.Client]:
    async with durable.connect(url) as client:
        if not worker:
            yield client
            return
        async with durable.Worker(client, workflows=WORKFLOWS, activities=ACTIVITIES):
            yield client


# -- workloads ------------------------------------------------------------------------------


FLOOR_COMMITS = 12  # single-row commits in the W1 floor: about the transactions of a W1 run
FLOOR_RUNS = 30


def commit_floor_ms(path: str) -> float:
    """The median time of `FLOOR_COMMITS` single-row commits of plain ``sqlite3`` (WAL,
    ``synchronous=FULL``) on a fresh file at ``path``: what W1's commits cost the disk."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, data BLOB)")
        data = b"x" * 100
        samples = []
        for _ in range(FLOOR_RUNS + 3):
            started = time.perf_counter()
            for _ in range(FLOOR_COMMITS):
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO rows (data) VALUES (?)", (data,))
                db.execute("COMMIT")
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        db.close()
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)
    return statistics.median(samples[3:])


async def w1_latency(url: str, report: Report, external: bool = False) -> None:
    floor = None
    if backend_of(url) == "sqlite":
        path = urlsplit(url).path[1:]
        floor = commit_floor_ms(os.path.join(os.path.dirname(path), "w1_floor.db"))
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(client_and_worker(url, worker=not external))
        if external:
            await stack.enter_async_context(worker_processes(url, 1))
            await wait_for_workers(url, 1)
        for _ in range(W1_WARMUP):
            await client.execute(sequence, STEPS)
        samples = []
        for _ in range(W1_RUNS):
            started = time.perf_counter()
            await client.execute(sequence, STEPS)
            samples.append((time.perf_counter() - started) * 1000)
    note = f"{W1_RUNS} runs of {STEPS} sequential activities; min {min(samples):.1f} ms"
    label = "W1 ext" if external else "W1"
    if external:
        note += "; the worker in a subprocess"
    report.add(label, "p50 ms", statistics.median(samples), note)
    report.add(label, "p95 ms", percentile(samples, 95), f"max {max(samples):.1f} ms")
    if floor is not None:
        p50 = statistics.median(samples)
        report.add(
            label,
            "floor ms",
            floor,
            f"{FLOOR_COMMITS} single-row commits of plain sqlite3 (WAL, synchronous=FULL), "
            "same directory, just before",
        )
        report.add(label, "p50 / floor", p50 / floor, "target <= 3")


async def w2_throughput(
    url: str, report: Report, workers: int, external: bool, repeat: int
) -> None:
    in_process = not external
    label = "W2" if workers == 1 and in_process else f"W2 x{workers}"
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(client_and_worker(url, worker=in_process))
        children = await stack.enter_async_context(
            worker_processes(url, workers - (1 if in_process else 0))
        )
        await wait_for_workers(url, workers)
        await asyncio.gather(*(client.execute(sequence, STEPS) for _ in range(20)))  # warm-up
        rates, splits = [], []
        for _ in range(repeat):
            meter = CpuMeter(children, postgres=report.backend == "postgresql")
            meter.start()
            started = time.perf_counter()
            handles = await asyncio.gather(
                *(client.start(sequence, STEPS) for _ in range(W2_WORKFLOWS))
            )
            results = await asyncio.gather(*(h.result() for h in handles))
            elapsed = time.perf_counter() - started
            splits.append((elapsed, meter.stop()))
            if results != [STEPS] * W2_WORKFLOWS:
                raise RuntimeError("W2: wrong results")
            rates.append(W2_WORKFLOWS / elapsed)
    if workers == 1 and in_process:
        where = "1 worker, in this process"
    elif in_process:
        where = f"{workers} workers: this process + {workers - 1} subprocess(es)"
    else:
        where = f"{workers} worker subprocess(es); this process is only the client"
    runs = ", ".join(f"{r * STEPS:,.0f}" for r in rates)
    rate = statistics.median(rates)
    report.add(label, "workflows/s", rate, where)
    report.add(label, "steps/s", rate * STEPS, f"median of {repeat}: {runs}")
    # The CPU split of the median run.
    elapsed, split = sorted(splits, key=lambda s: s[0])[len(splits) // 2]
    parts = [f"wall {elapsed:.2f}s"]
    parts += [f"{k} {v:.2f}s" for k, v in split.items() if not k.endswith("%") and v > 0.005]
    parts += [f"{k} {v:.0f}" for k, v in split.items() if k.endswith("%")]
    report.add(label, "cpu", "", "; ".join(parts))
    # Steps per CPU-second of durable's processes (this one and worker subprocesses; not
    # PostgreSQL's), over the runs together: less noisy than one run's split.
    cpu = sum(s["this process"] + s["worker subprocesses"] for _, s in splits)
    if cpu > 0:
        steps = W2_WORKFLOWS * STEPS * len(splits)
        report.add(label, "steps per CPU-s", steps / cpu, f"{cpu:.2f} CPU-s for {repeat} runs")


async def w3_fan_out(url: str, report: Report, repeat: int) -> None:
    async with client_and_worker(url) as client:
        await client.execute(fan_out, 50)  # warm-up
        samples = []
        for _ in range(repeat):
            started = time.perf_counter()
            if await client.execute(fan_out, W3_FANOUT) != W3_FANOUT:
                raise RuntimeError("W3: wrong result")
            samples.append(time.perf_counter() - started)
    runs = ", ".join(f"{s:.2f}" for s in samples)
    report.add("W3", "wall s", statistics.median(samples), f"median of {repeat}: {runs}")


def rebuild(run: RunRecord, entries: Sequence[JournalEntry]) -> WorkflowRun:
    """What `Worker._rebuild` does once it has the journal: replay it input by input, each
    with the commands recorded after it."""
    engine = WorkflowRun(
        workflow_definition(sequence),
        workflow_id=run.workflow_id,
        run_id=run.run_id,
        queue=run.queue,
        parent_id=run.parent_id,
    )
    i = 0
    while i < len(entries):
        entry = entries[i]
        j = i + 1
        while j < len(entries) and entries[j].kind not in INPUT_KINDS:
            j += 1
        if entry.kind not in INPUT_KINDS:
            raise NonDeterminismError(f"journal of {run.run_id} has {entry.kind!r} first")
        recorded = [(e.kind, payload.decode(e.data)) for e in entries[i + 1 : j]]
        engine.apply(entry.kind, payload.decode(entry.data), entry.time, recorded=recorded)
        i = j
    engine.is_replaying = False
    engine.take_effects()
    return engine


async def r_replay(url: str, report: Report) -> None:
    async with client_and_worker(url) as client:
        started = time.perf_counter()
        handle = await client.start(sequence, R_ACTIVITIES)
        await handle.result()
        built = time.perf_counter() - started
    async with open_store(url) as store:
        run = await store.get_run(handle.id)
        if run is None:
            raise RuntimeError(f"R: run {handle.id} vanished")
        totals, reads, replays = [], [], []
        for _ in range(R_REPEAT):
            t0 = time.perf_counter()
            entries = await store.read_journal(run.run_id)
            t1 = time.perf_counter()
            engine = rebuild(run, entries)
            t2 = time.perf_counter()
            if engine.outcome is None or engine.outcome.status != "completed":
                raise RuntimeError(f"replay ended in {engine.outcome!r}, not completed")
            engine.evict()
            reads.append((t1 - t0) * 1000)
            replays.append((t2 - t1) * 1000)
            totals.append((t2 - t0) * 1000)
    note = (
        f"{len(entries):,} entries; median of {R_REPEAT}: read "
        f"{statistics.median(reads):.0f} ms + replay {statistics.median(replays):.0f} ms"
    )
    report.add("R", "rebuild ms", statistics.median(totals), note)
    report.add("R", "journal written s", built, f"{R_ACTIVITIES:,} sequential activities, live")


async def _count_timers(url: str, backend: str) -> int:
    # Through the schema, not the storage contract: it has no count.
    if backend == "postgresql":
        import asyncpg

        conn = await asyncpg.connect(_with_query(url, schema=None))
        try:
            schema = _schema_of(url)
            return int(await conn.fetchval(f'SELECT count(*) FROM "{schema}".timers'))
        finally:
            await conn.close()
    import sqlite3

    path = urlsplit(url).path[1:]

    def count() -> int:
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            return int(db.execute("SELECT count(*) FROM timers").fetchone()[0])

    return await asyncio.to_thread(count)


async def s_sleepers(url: str, report: Report, count: int) -> None:
    async with client_and_worker(url) as client:
        await asyncio.sleep(0.5)
        gc.collect()
        idle, _ = rss_mb()
        started = time.perf_counter()
        handles: list[Any] = []
        for done in range(0, count, S_BATCH):
            batch = min(S_BATCH, count - done)
            handles += await asyncio.gather(*(client.start(sleeper) for _ in range(batch)))
            if (done + batch) % 10_000 == 0:
                print(
                    f"  S: {done + batch:,} started in {time.perf_counter() - started:.0f} s, "
                    f"RSS {rss_mb()[0]:.0f} MB",
                    file=sys.stderr,
                )
        started_all = time.perf_counter() - started
        while await _count_timers(url, report.backend) < count:
            await asyncio.sleep(0.5)
        asleep = time.perf_counter() - started
        sample = await handles[-1].describe()
        if sample.status != "running" or sample.history_length != 2:
            raise RuntimeError(f"a sleeper is not asleep on its timer: {sample!r}")
        del handles
        gc.collect()
        rss, peak = rss_mb()
    report.add("S", "RSS idle MB", idle, "client + worker open, nothing started")
    report.add("S", "RSS asleep MB", rss, f"{count:,} asleep; peak {peak:.0f} MB")
    report.add(
        "S", "time to all asleep s", asleep, f"starts took {started_all:.0f} s ({S_BATCH}/gather)"
    )


async def _rate(seconds: float, writers: int, one: Callable[[], Awaitable[int]]) -> float:
    """Rows per second from ``writers`` loops each calling ``one`` until time is up."""
    deadline = time.perf_counter() + seconds

    async def loop() -> int:
        rows = 0
        while time.perf_counter() < deadline:
            rows += await one()
        return rows

    started = time.perf_counter()
    counts = await asyncio.gather(*(loop() for _ in range(writers)))
    return sum(counts) / (time.perf_counter() - started)


async def l_sqlite(url: str, report: Report) -> None:
    import aiosqlite

    from durable_sqlite.store import BUSY_TIMEOUT

    path = urlsplit(url).path[1:]
    synchronous = dict(parse_qsl(urlsplit(url).query)).get("synchronous", "full")
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        # The store's pragmas (durable_sqlite.store.SQLiteStore.open).
        await db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        await db.execute_fetchall("PRAGMA journal_mode = WAL")
        await db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        await db.execute(
            "CREATE TABLE rows (id INTEGER PRIMARY KEY, run_id TEXT, seq INTEGER, data BLOB)"
        )
        data = b"x" * 100
        seq = 0

        async def insert(n: int) -> int:
            nonlocal seq
            await db.execute("BEGIN IMMEDIATE")
            await db.executemany(
                "INSERT INTO rows (run_id, seq, data) VALUES (?, ?, ?)",
                [("run", seq + k, data) for k in range(n)],
            )
            await db.commit()
            seq += n
            return n

        single = await _rate(L_SECONDS, 1, lambda: insert(1))
        batch = await _rate(L_SECONDS, 1, lambda: insert(100))
    finally:
        await db.close()
    pragmas = f"WAL, synchronous={synchronous.upper()}, busy_timeout"
    report.add("L", "single-row commits/s", single, f"aiosqlite, {pragmas}")
    report.add("L", "100-row batch rows/s", batch, f"{batch / 100:,.0f} commits/s")


async def l_postgres(url: str, report: Report) -> None:
    import asyncpg

    schema = _schema_of(url)
    dsn = _with_query(url, schema=None)
    setup = await asyncpg.connect(dsn)
    try:
        await setup.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await setup.execute(
            f'CREATE TABLE "{schema}".rows (id bigserial PRIMARY KEY, run_id text, seq int, '
            "data bytea)"
        )
    finally:
        await setup.close()
    table = f'"{schema}".rows'
    data = b"x" * 100
    async with asyncpg.create_pool(dsn, min_size=L_WRITERS, max_size=L_WRITERS) as pool:

        async def insert(n: int) -> int:
            async with pool.acquire() as conn, conn.transaction():
                if n == 1:
                    await conn.execute(
                        f"INSERT INTO {table} (run_id, seq, data) VALUES ($1, $2, $3)",
                        "run",
                        1,
                        data,
                    )
                else:
                    await conn.execute(
                        f"INSERT INTO {table} (run_id, seq, data) "
                        "SELECT * FROM unnest($1::text[], $2::int[], $3::bytea[])",
                        ["run"] * n,
                        list(range(n)),
                        [data] * n,
                    )
            return n

        single = await _rate(L_SECONDS, L_WRITERS, lambda: insert(1))
        batch = await _rate(L_SECONDS, L_WRITERS, lambda: insert(100))
    report.add("L", "single-row tx/s", single, f"asyncpg, {L_WRITERS} writers, BEGIN/INSERT/COMMIT")
    report.add("L", "100-row batch rows/s", batch, f"{L_WRITERS} writers, unnest arrays")


# -- main -----------------------------------------------------------------------------------

ALL = ("W1", "W2", "W3", "R", "S", "L")


async def run(args: argparse.Namespace) -> Report:
    dbs = Databases(args.db, args.keep)
    report = Report(dbs.backend)
    only = ALL if args.only is None else tuple(w.strip().upper() for w in args.only.split(","))
    unknown = set(only) - set(ALL)
    if unknown:
        raise SystemExit(f"unknown workload(s) {sorted(unknown)}; choose from {', '.join(ALL)}")
    try:
        # S first: its idle RSS is then that of a fresh process, not of one that ran W1-W3.
        for name in sorted(only, key=lambda w: (w != "S", ALL.index(w))):
            print(f"{name} ...", file=sys.stderr)
            if name == "W1":
                await w1_latency(dbs.fresh("w1"), report, args.external)
            elif name == "W2":
                for n in args.workers:
                    url = dbs.fresh(f"w2_{n}")
                    await w2_throughput(url, report, n, args.external, args.repeat)
            elif name == "W3":
                await w3_fan_out(dbs.fresh("w3"), report, args.repeat)
            elif name == "R":
                await r_replay(dbs.fresh("r"), report)
            elif name == "S":
                await s_sleepers(dbs.fresh("s"), report, args.sleepers)
            elif dbs.backend == "postgresql":
                await l_postgres(dbs.fresh("l"), report)
            else:
                await l_sqlite(dbs.fresh("l"), report)
    finally:
        await dbs.cleanup()
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL (default: fresh SQLite files in a temp dir)")
    parser.add_argument("--only", help=f"comma-separated workloads out of {','.join(ALL)}")
    parser.add_argument(
        "--workers",
        default="1",
        help="W2 worker processes, comma-separated for several runs (e.g. 1,2,4)",
    )
    parser.add_argument(
        "--external",
        action="store_true",
        help="W1 and W2: run every worker as a subprocess (default: one in this process)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of W2 and W3")
    parser.add_argument("--sleepers", type=int, default=100_000, help="workflows asleep in S")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in args.workers.split(",")]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    report = asyncio.run(run(args))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    report.print(
        f"durable core benchmarks on {report.backend}, {dt.date.today()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load avg {load}"
    )


if __name__ == "__main__":
    main()
