"""Queue limits and priorities (`durable.limits`) through the public API: bad limits refused,
``durable.call``'s ``key`` and ``priority`` checked, journaled and written on the task row,
and two real ``durable worker`` processes on one database (SQLite file, PostgreSQL schema)
whose measured overlap never exceeds the limits. The store's side is the contract suite's
``limits`` part (tests/test_store_limits.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from clikit import WAIT, Cli, stop
from clikit import env as cli_env
from limits_app import fan, ticks

import durable
from durable import QueueLimits
from durable.limits import QueueView, parse_rate
from durable.testing import WorkflowEnvironment

BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"concurrency": 0}, ValueError, "concurrency must be at least 1, got 0"),
    ({"concurrency": -3}, ValueError, "concurrency must be at least 1, got -3"),
    ({"key_concurrency": 0}, ValueError, "key_concurrency must be at least 1"),
    ({"rate": -1, "per": timedelta(seconds=1)}, ValueError, "rate must be at least 1"),
    ({"rate": 100}, ValueError, "rate given without per"),
    ({"per": timedelta(seconds=5)}, ValueError, "per given without rate"),
    ({"rate": 5, "per": timedelta(0)}, ValueError, "per must be a positive duration"),
    ({"rate": 5, "per": -2}, ValueError, "per must be a positive duration"),
    ({"concurrency": 2.5}, TypeError, "concurrency must be a whole number"),
    ({"concurrency": True}, TypeError, "concurrency must be a whole number"),
]


async def test_bad_limits_are_refused_and_change_nothing(client: durable.Client) -> None:
    kept = await client.set_queue_limits("media", concurrency=4, rate=10, per=timedelta(minutes=1))
    assert kept == QueueLimits("media", 4, None, 10, timedelta(minutes=1))
    for kwargs, error, message in BAD:
        with pytest.raises(error, match=message):
            await client.set_queue_limits("media", **kwargs)
    with pytest.raises(ValueError, match="queue must be a non-empty str"):
        await client.set_queue_limits("", concurrency=1)
    assert await client.queue_limits("media") == kept
    assert await client.list_queue_limits() == [kept]
    [view] = await client.list_queues()
    assert (view.queue, view.tasks_waiting, view.limits) == ("media", 0, kept)
    assert (await client.set_queue_limits("media")).empty  # all None: no limits left
    assert await client.list_queue_limits() == []


@durable.activity
async def echo(value: int) -> int:
    """Returns its argument."""
    return value


@durable.workflow
async def child() -> None:
    """Does nothing."""


@durable.workflow
async def keyed() -> list[str]:
    """Calls with bad keys and priorities (refused at the call), then good ones."""
    refused = []
    bad: list[dict[str, Any]] = [{"key": ""}, {"key": 3}, {"priority": "high"}]
    bad += [{"priority": 2**40}, {"priority": True}]
    for options in bad:
        try:
            durable.call(echo, 1, **options)
        except (ValueError, TypeError) as exc:
            refused.append(str(exc))
    try:
        durable.call(child, key="k")
    except TypeError as exc:
        refused.append(str(exc))
    await durable.call(echo, 1, key="tenant-42", priority=3)
    await echo(2)
    await durable.call("resize", 3, key="tenant-7", priority=-2, queue="remote")
    return refused


async def test_call_checks_records_and_stores_key_and_priority() -> None:
    async with WorkflowEnvironment(workflows=[keyed, child], activities=[echo]) as env:
        handle = await env.client.start(keyed, id="keyed")
        [task] = await env.client.poll_tasks("remote", worker="node", wait=5)
        store = await env.client._open()
        extras = await store.read_extras(task.workflow_id, task.run_id)
        [row] = [t for t in extras.tasks if t.name == "resize"]
        assert (row.key, row.priority) == ("tenant-7", -2)
        await env.client.complete(task.token, 3)
        refused = await handle.result()
        assert len(refused) == 6
        assert "key must be a non-empty str" in refused[0]
        assert "key must be a str" in refused[1]
        assert "priority must be a whole number" in refused[2]
        assert "priority must be within" in refused[3]
        assert "priority must be a whole number" in refused[4]
        assert "not of child workflow 'child'" in refused[5]
        scheduled = [e.data for e in await handle.history() if e.kind == "activity_scheduled"]
        assert [(d.get("key"), d.get("priority")) for d in scheduled] == [
            ("tenant-42", 3),
            (None, None),  # neither given: neither stored
            ("tenant-7", -2),
        ]


@durable.workflow
async def remote_fan(keys: list[str]) -> int:
    """One remote ``resize`` per key, all at once, each with its key."""
    calls = (durable.call("resize", i, key=k, queue="remote") for i, k in enumerate(keys))
    return len(await asyncio.gather(*calls))


async def test_remote_polls_obey_the_limits() -> None:
    """``client.poll_tasks`` (what ``POST /v1/queues/{queue}/poll`` calls) claims within
    the queue's limits like any worker."""
    async with WorkflowEnvironment(workflows=[remote_fan]) as env:
        await env.client.set_queue_limits("remote", concurrency=3, key_concurrency=2)
        handle = await env.client.start(remote_fan, ["a", "a", "a", "b", "b"])
        got = await env.client.poll_tasks("remote", worker="node", max_tasks=5, wait=5)
        assert sorted(t.args[0] for t in got) == [0, 1, 3]  # two of key a, then b
        assert await env.client.poll_tasks("remote", worker="node", max_tasks=5) == []
        first = next(t for t in got if t.args == [0])
        await env.client.complete(first.token, 0)
        [more] = await env.client.poll_tasks("remote", worker="node", max_tasks=5, wait=5)
        assert more.args == [2]  # room for one more, and key a has room again
        for task in [*(t for t in got if t is not first), more]:
            await env.client.complete(task.token, 0)
        rest = await env.client.poll_tasks("remote", worker="node", max_tasks=5, wait=5)
        assert [t.args for t in rest] == [[4]]
        await env.client.complete(rest[0].token, 0)
        assert await handle.result() == 5


@durable.activity(queue="ticks")
async def tock(index: int) -> int:
    """Returns its index."""
    return index


@durable.workflow
async def tocks(n: int) -> int:
    """``n`` tocks at once."""
    return len(await asyncio.gather(*(tock(i) for i in range(n))))


@pytest.mark.parametrize("attempt", range(8))
async def test_time_skipping_moves_through_a_rate_limit(attempt: int) -> None:
    """In virtual time a rate limit holds tasks back until its window frees room: the
    environment jumps there (a queued task it may not start is no work to wait for).

    Repeated: limits set while the worker's own re-read of them is under way once let
    about one run in five take the fast path past the limit (the re-read published its
    new mark before its result)."""
    async with WorkflowEnvironment(workflows=[tocks], activities=[tock]) as env:
        await env.client.set_queue_limits("ticks", rate=10, per=timedelta(minutes=1))
        begun = env.now()
        handle = await env.client.start(tocks, 25)
        assert await handle.result() == 25
        starts = [
            (s.attempts[0].started_at - begun).total_seconds()
            for s in await handle.steps()
            if s.kind == "activity"
        ]
        windows = sorted({round(t) for t in starts})
        assert windows == [0, 60, 120], windows  # 10 at once, 10 a minute later, then 5
        assert sorted(round(t) for t in starts).count(60) == 10


# ---- two worker processes --------------------------------------------------------------


@contextmanager
def _workers(db: str, tmp_path: Path, log: Path, n: int = 2) -> Iterator[None]:
    """``n`` ``durable worker limits_app`` processes serving default, media and ticks."""
    environ = {**cli_env(), "LIMITS_LOG": str(log)}
    argv = [sys.executable, "-m", "durable", "worker", "limits_app", "--db", db]
    argv += ["--queue", "default", "--queue", "media", "--queue", "ticks"]
    with ExitStack() as stack:
        procs = []
        for i in range(n):
            out = stack.enter_context((tmp_path / f"worker{i}.out").open("w"))
            err = tmp_path / f"worker{i}.err"
            errs = stack.enter_context(err.open("w"))
            procs.append((subprocess.Popen(argv, env=environ, stdout=out, stderr=errs), i))
        try:
            for proc, i in procs:
                deadline = time.monotonic() + WAIT
                while "Ctrl-C stops." not in (tmp_path / f"worker{i}.out").read_text():
                    assert proc.poll() is None, (tmp_path / f"worker{i}.err").read_text()
                    assert time.monotonic() < deadline, "a worker printed no banner"
                    time.sleep(0.05)
            yield
        finally:
            codes = [stop(proc) for proc, _ in procs]  # type: ignore[arg-type]
        assert codes == [0] * n
        for _, i in procs:
            assert "Traceback" not in (tmp_path / f"worker{i}.err").read_text()


def _overlap(events: list[tuple[float, int, str]]) -> tuple[int, dict[str, int]]:
    """The most intervals open at once, overall and per key (ends before starts at a tie)."""
    now: dict[str, int] = {}
    peak, peaks = 0, dict[str, int]()
    for _, delta, key in sorted(events, key=lambda e: (e[0], e[1])):
        now[key] = now.get(key, 0) + delta
        peaks[key] = max(peaks.get(key, 0), now[key])
        peak = max(peak, sum(now.values()))
    return peak, peaks


async def test_two_worker_processes_never_exceed_the_limits(store_url: str, tmp_path: Path) -> None:
    log = tmp_path / "activities.log"
    async with durable.connect(store_url) as client:
        # Set before the workers start: from their first step, these queues go by claims.
        await client.set_queue_limits("media", concurrency=3, key_concurrency=2)
        await client.set_queue_limits("ticks", rate=20, per=timedelta(seconds=1))
        with _workers(store_url, tmp_path, log):
            keys = ["a", "b", "c", "a", "b", "a", "c", "a", "b", "c", "a", "a"]
            media = await client.start(fan, keys, 0.2, id="fan")
            rated = await client.start(ticks, 70, id="ticks")
            assert await media.result(timeout=60) == len(keys)
            assert await rated.result(timeout=60) == 70
    lines = [line.split() for line in log.read_text().splitlines()]
    media_events = [
        (float(at), 1 if event == "start" else -1, key)
        for event, _, key, at, _ in lines
        if key != "-"
    ]
    assert len(media_events) == 2 * len(keys)
    peak, per_key = _overlap(media_events)
    assert 1 <= peak <= 3, f"{peak} transcodes ran at once on a queue limited to 3"
    assert max(per_key.values()) <= 2, f"per key: {per_key} (limit 2)"
    # 20 starts per second: in 2.5 s from the first, the windows at 0, 1 and 2 s: 60 at
    # most (+5 % for the clocks of two processes). Fewer only if the workers fall behind
    # (a loaded machine): the lower bound catches a limiter that throttles well below its
    # rate, not a slow machine.
    starts = sorted(float(at) for event, _, key, at, _ in lines if key == "-")
    assert len(starts) == 70
    first = starts[0]
    measured = sum(1 for t in starts if t < first + 2.5)
    assert 45 <= measured <= 63, f"{measured} ticks started in 2.5 s at 20/s"


async def test_http_reads_and_sets_limits_and_the_console_shows_them(
    client: durable.Client,
) -> None:
    import httpx

    from durable.server import create_app

    app = create_app(client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        put = await http.put(
            "/v1/queues/media/limits", json={"concurrency": 10, "rate": {"count": 100, "per": 60}}
        )
        assert put.status_code == 200, put.text
        limits = {"concurrency": 10, "key_concurrency": None, "rate": {"count": 100, "per": 60.0}}
        assert put.json() == {"queue": "media", **limits}
        assert (await client.queue_limits("media")).per == timedelta(minutes=1)
        got = await http.get("/v1/queues/media/limits")
        assert got.json() == put.json()
        [queue] = (await http.get("/v1/queues")).json()
        assert (queue["queue"], queue["tasks_waiting"], queue["limits"]) == ("media", 0, limits)
        for body, says in [
            ({"concurrency": 0}, "concurrency"),  # refused by the schema
            ({"rate": {"count": 5}}, "per"),  # a rate needs its window
            ({"rate": {"count": 5, "per": 0}}, "per"),
            ({"speed": 5}, "speed"),
        ]:
            bad = await http.put("/v1/queues/media/limits", json=body)
            assert bad.status_code == 400, bad.text
            assert bad.headers["content-type"].startswith("application/problem+json")
            assert says in bad.json()["detail"]
        assert (await client.queue_limits("media")).concurrency == 10  # unchanged
        paths = (await http.get("/openapi.json")).json()["paths"]
        assert {"get", "put"} <= set(paths["/v1/queues/{queue}/limits"])
        assert "get" in paths["/v1/queues"]
        page = await http.get("/workers")
        assert page.status_code == 200
        assert 'data-limits="media"' in page.text
        assert "100 per 1m" in page.text


def test_cli_sets_reads_and_lists_limits(tmp_path: Path) -> None:
    """The CLI on SQLite (the storage behind it is tested on both backends above)."""
    cli = Cli(db=f"sqlite:///{tmp_path / 'cli.db'}", cwd=tmp_path)
    out = cli.ok("queue", "limits", "media", "--concurrency", "10", "--rate", "100/1m")
    assert "concurrency      10" in out
    assert "100 per 1m" in out
    # Options not given stay; 'none' removes one.
    changed = cli.json("queue", "limits", "media", "--key-concurrency", "2", "--rate", "none")
    assert changed == {"queue": "media", "concurrency": 10, "key_concurrency": 2, "rate": None}
    [row] = cli.json("queue", "list")
    assert (row["queue"], row["limits"]["concurrency"]) == ("media", 10)
    refused = cli.refused("queue", "limits", "media", "--concurrency", "0", code=2)
    assert "--concurrency: expected a whole number >= 1" in refused


def test_a_queue_view_dates_its_oldest_work_as_iso_8601() -> None:
    """As every time durable prints as JSON (the CLI's --json and GET /v1/queues)."""
    view = QueueView("media", 3, 0, 1, 1_796_300_000.5, QueueLimits("media"))
    assert view.to_json()["oldest_waiting_at"] == "2026-12-03T12:13:20.500000+00:00"
    assert (
        QueueView("idle", 0, 0, 0, None, QueueLimits("idle")).to_json()["oldest_waiting_at"] is None
    )


def test_rates_are_read_as_count_per_window() -> None:
    assert parse_rate("100/1m") == (100, timedelta(minutes=1))
    assert parse_rate("5/10s") == (5, timedelta(seconds=10))
    assert parse_rate("1000/h") == (1000, timedelta(hours=1))
    assert parse_rate(" 3 / 250ms ") == (3, timedelta(milliseconds=250))
    for bad in ("100", "100/", "1m/100", "-1/1m", "10/0s", "ten/1m", "10/1y"):
        with pytest.raises(ValueError, match=r"rate|window"):
            parse_rate(bad)
