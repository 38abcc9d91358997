"""HTTP benchmarks: what crossing `durable server` costs, beside the in-process figures.

    .venv/bin/python benchmarks/bench_http.py                   # SQLite, a fresh temp file
    .venv/bin/python benchmarks/bench_http.py --db postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/bench_http.py --only round-trip --round-trips 200

The server is a ``durable server`` subprocess on loopback (as in production: its own
process); the Python worker and the client run in this process, the remote workers
(httpx, long-polling) in a third, as a worker in another language would. Figures:

- start: ``POST /v1/workflows/{name}/start`` one after another, p50/p95, beside
  ``client.start`` in this process on the same database.
- round trip: a workflow with one activity served over HTTP by a long-polling remote
  worker (``durable.call("echo", ..., queue="remote")``), run start to result, p50/p95,
  beside the same workflow whose activity is Python in the worker; the overhead is the
  difference of the p50s (issue 8's target: <= 5 ms). Where ``node`` is on the PATH, the
  same again with a Node.js remote worker (its built-in ``fetch``, queue ``remote-node``),
  alternated with the others: what the remote worker's own HTTP client costs shows as the
  difference of the two.
- remote tasks/s: one workflow gathering 1,000 remote activities, served by remote
  workers polling with ``max_tasks`` batching and completing each batch in one request
  (``POST /v1/tasks/complete``); beside the same fan-out of Python activities (issue 8's
  target: >= 1,000 tasks/s on SQLite).

Results are reported, never asserted; medians and ratios come from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

import durable

ROOT = Path(__file__).resolve().parent.parent
REMOTE = "remote"  # the queue the HTTP pollers serve
REMOTE_NODE = "remote-node"  # the queue the Node.js poller serves
STARTS = 200  # sequential starts timed, each way
ROUND_TRIPS = 50  # workflows timed, each way (after WARMUP)
WARMUP = 5
FANOUT = 1000  # remote activities gathered by one workflow
POLLERS = 4  # remote workers polling at once in the fan-out
MAX_TASKS = 100  # tasks a poll may return
FIGURES = ("starts", "round-trip", "fan-out")  # what --only chooses from


@durable.activity
async def echo(value: int) -> int:
    """The Python twin of the remote ``echo``."""
    return value


@durable.workflow
async def noop() -> None:
    """Started, never run (no worker serves it during the start figures)."""


@durable.workflow
async def one_remote(value: int) -> int:
    """One activity, served over HTTP."""
    return int(await durable.call("echo", value, queue=REMOTE))


@durable.workflow
async def one_remote_node(value: int) -> int:
    """One activity, served over HTTP by the Node.js worker."""
    return int(await durable.call("echo", value, queue=REMOTE_NODE))


@durable.workflow
async def one_local(value: int) -> int:
    """The same, served by the Python worker."""
    return await echo(value)


@durable.workflow
async def fan_out_remote(n: int) -> int:
    """``n`` remote activities at once."""
    results = await asyncio.gather(*(durable.call("echo", i, queue=REMOTE) for i in range(n)))
    return sum(results)


@durable.workflow
async def fan_out_local(n: int) -> int:
    """``n`` Python activities at once."""
    results = await asyncio.gather(*(echo(i) for i in range(n)))
    return sum(results)


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM ``proc``, then SIGKILL if it has not exited within 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(url: str) -> Iterator[str]:
    """``durable server`` as a subprocess; yields its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable", "server", "--db", url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("durable server did not come up") from None
                time.sleep(0.1)
        yield base
    finally:
        stop(proc)


async def remote_worker(
    http: httpx.AsyncClient, name: str, stop: asyncio.Event, max_tasks: int
) -> int:
    """Serve ``echo`` over HTTP until ``stop``: long-poll, complete what came (a batch in one
    request, ``POST /v1/tasks/complete``). Returns how many tasks it completed."""
    done = 0
    while not stop.is_set():
        answer = await http.post(
            f"/v1/queues/{REMOTE}/poll",
            json={"worker": name, "names": ["echo"], "max_tasks": max_tasks, "wait_ms": 1000},
        )
        answer.raise_for_status()
        body = answer.json()
        tasks = body if isinstance(body, list) else body["tasks"]

        if len(tasks) == 1:
            [task] = tasks
            reply = await http.post(
                f"/v1/tasks/{task['token']}/complete", json={"result": task["args"][0]}
            )
            reply.raise_for_status()
        elif tasks:  # a batch: completed in one request
            items = [{"token": t["token"], "result": t["args"][0]} for t in tasks]
            reply = await http.post("/v1/tasks/complete", json={"tasks": items})
            reply.raise_for_status()
            assert all(r["status"] == "completed" for r in reply.json()["results"])
        done += len(tasks)
    return done


async def timed_starts(
    client: durable.Client, http: httpx.AsyncClient
) -> tuple[list[float], list[float]]:
    over_http: list[float] = []
    in_process: list[float] = []
    for i in range(STARTS + WARMUP):
        t = time.perf_counter()
        reply = await http.post("/v1/workflows/noop/start", json={"args": [], "id": f"h-{i}"})
        elapsed = time.perf_counter() - t
        assert reply.status_code == 201, reply.text
        if i >= WARMUP:
            over_http.append(elapsed * 1000)
        t = time.perf_counter()
        await client.start(noop, id=f"c-{i}")
        if i >= WARMUP:
            in_process.append((time.perf_counter() - t) * 1000)
    return over_http, in_process


async def timed_round_trips(
    client: durable.Client, count: int, node: bool
) -> tuple[list[float], list[float], list[float]]:
    """Round trips of `one_remote`, `one_remote_node` (if ``node``) and `one_local`,
    alternated: their times in ms."""
    remote: list[float] = []
    remote_node: list[float] = []
    local: list[float] = []
    ways = [(one_remote, remote), (one_remote_node, remote_node), (one_local, local)]
    for i in range(count + WARMUP):
        for fn, samples in ways if node else ways[::2]:
            t = time.perf_counter()
            assert await client.execute(fn, i, id=f"{fn.__name__}-{i}") == i
            if i >= WARMUP:
                samples.append((time.perf_counter() - t) * 1000)
    return remote, remote_node, local


async def timed_fan_out(
    client: durable.Client, fn: Callable[[int], Awaitable[int]], tag: str
) -> float:
    t = time.perf_counter()
    total = await client.execute(fn, FANOUT, id=f"fan-{tag}-{uuid.uuid4().hex[:6]}")
    assert total == FANOUT * (FANOUT - 1) // 2
    return FANOUT / (time.perf_counter() - t)


def database(db: str | None, tmp: Path) -> str:
    if db is None:
        return f"sqlite:///{tmp / 'http.db'}"
    parts = urlsplit(db)
    query = dict(parse_qsl(parts.query))
    query.setdefault("schema", f"bench_http_{uuid.uuid4().hex[:8]}")
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.contextmanager
def pollers(base: str, count: int, max_tasks: int) -> Iterator[None]:
    """``count`` remote workers polling ``base`` in a process of their own (as a worker in
    another language would be), stopped at the end."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-remote", base, "--pollers", str(count),
         "--max-tasks", str(max_tasks)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        yield
    finally:
        stop(proc)


# The Node.js twin of `remote_worker` (one poller, one task at a time), with no packages:
# Node's built-in fetch keeps its connection alive as httpx does. Stops on SIGTERM.
NODE_WORKER = """
const [base, queue] = process.argv.slice(-2);
let stop = false;
process.on("SIGTERM", () => { stop = true; });
const post = async (path, body) => {
  const r = await fetch(base + path, {method: "POST", body: JSON.stringify(body),
                                      headers: {"content-type": "application/json"}});
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
while (!stop) {
  const body = await post(`/v1/queues/${queue}/poll`,
                          {worker: `node-${process.pid}`, names: ["echo"], wait_ms: 1000});
  for (const task of Array.isArray(body) ? body : body.tasks) {
    await post(`/v1/tasks/${task.token}/complete`, {result: task.args[0]});
  }
}
"""


@contextlib.contextmanager
def node_poller(base: str) -> Iterator[bool]:
    """The Node.js remote worker serving `REMOTE_NODE`, if ``node`` is on the PATH (yields
    whether it is)."""
    node = shutil.which("node")
    if node is None:
        yield False
        return
    proc = subprocess.Popen(
        [node, "--input-type=module", "-e", NODE_WORKER, "--", base, REMOTE_NODE], cwd=ROOT
    )
    try:
        yield True
    finally:
        stop(proc)


async def serve_remote(base: str, count: int, max_tasks: int) -> None:
    """The poller process: ``count`` remote workers until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await asyncio.gather(
            *(
                remote_worker(http, f"poller-{os.getpid()}-{n}", stop, max_tasks)
                for n in range(count)
            )
        )


async def main(db: str | None, only: set[str], round_trips: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-http-"))
    url = database(db, tmp)
    async with durable.connect(url) as client:
        await client.start(noop, id="warm-up")  # creates the schema before the server opens it
    rows: list[tuple[str, str, str]] = []
    with server(url) as base:
        async with (
            durable.connect(url) as client,
            httpx.AsyncClient(base_url=base, timeout=30) as http,
        ):
            if "starts" in only:
                starts_http, starts_local = await timed_starts(client, http)
                rows.append(
                    (
                        "start p50 / p95 ms",
                        f"{statistics.median(starts_http):.2f} / "
                        f"{percentile(starts_http, 0.95):.2f}",
                        f"{statistics.median(starts_local):.2f} / "
                        f"{percentile(starts_local, 0.95):.2f}",
                    )
                )
            workflows = [one_remote, one_remote_node, one_local, fan_out_remote, fan_out_local]
            async with durable.Worker(client, workflows=workflows, activities=[echo]):
                if "round-trip" in only:
                    with pollers(base, 1, 1), node_poller(base) as node:
                        remote, remote_node, local = await timed_round_trips(
                            client, round_trips, node
                        )
                    local_p = f"{statistics.median(local):.2f} / {percentile(local, 0.95):.2f}"
                    for label, samples in (("", remote), (", Node.js", remote_node)):
                        if not samples:
                            continue
                        overhead = statistics.median(samples) - statistics.median(local)
                        rows.append(
                            (
                                f"round trip p50 / p95 ms{label}",
                                f"{statistics.median(samples):.2f} / "
                                f"{percentile(samples, 0.95):.2f}",
                                local_p,
                            )
                        )
                        rows.append(
                            (f"remote overhead p50 ms{label}", f"{overhead:.2f}", "target <= 5")
                        )
                if "fan-out" in only:
                    rates_remote: list[float] = []
                    rates_local: list[float] = []
                    with pollers(base, POLLERS, MAX_TASKS):
                        for _ in range(3):
                            rates_remote.append(await timed_fan_out(client, fan_out_remote, "r"))
                            rates_local.append(await timed_fan_out(client, fan_out_local, "l"))
                    rows.append(
                        (
                            f"tasks/s ({FANOUT} fan-out, max_tasks={MAX_TASKS})",
                            f"{statistics.median(rates_remote):,.0f}",
                            f"{statistics.median(rates_local):,.0f}",
                        )
                    )
    print(f"durable HTTP benchmarks on {url.split('?')[0]} (cpus: {os.cpu_count()})")
    print(f"{'figure':<40} {'over HTTP':>18} {'in process':>18}")
    for label, http_figure, local_figure in rows:
        print(f"{label:<40} {http_figure:>18} {local_figure:>18}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a database URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--only",
        default=",".join(FIGURES),
        help=f"a comma-separated subset of {', '.join(FIGURES)} (default: all)",
    )
    parser.add_argument(
        "--round-trips",
        type=int,
        default=ROUND_TRIPS,
        help=f"round trips timed each way (default {ROUND_TRIPS})",
    )
    parser.add_argument("--serve-remote", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--pollers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--max-tasks", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_remote:
        asyncio.run(serve_remote(args.serve_remote, args.pollers, args.max_tasks))
    else:
        chosen = set(args.only.split(","))
        if chosen - set(FIGURES):
            parser.error(f"--only takes {', '.join(FIGURES)}, got {args.only!r}")
        asyncio.run(main(args.db, chosen, args.round_trips))
