"""Step logs (DESIGN §9): records logged in activity attempts (async, sync in a thread,
retried) and in live workflow code are stored with their step, once, on both backends; read
by ``handle.logs()``, ``durable logs``, the HTTP API and the console's step detail."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import timedelta, timezone
from pathlib import Path

import httpx
import pytest
from clikit import Cli

import durable
from durable import steplogs
from durable.server import create_app

log = logging.getLogger("steplogs_test")

SEEN: dict[str, int] = {}


@durable.activity(retry=durable.RetryPolicy(initial_interval=timedelta(milliseconds=10)))
async def charge(order: str) -> str:
    """Log, fail the first attempt with a logged traceback, then charge."""
    SEEN[order] = SEEN.get(order, 0) + 1
    log.info("charging %s, attempt %d", order, SEEN[order])
    if SEEN[order] == 1:
        try:
            raise ConnectionError("gateway <down>")
        except ConnectionError:
            log.exception("the gateway failed")
            raise
    return f"receipt-{order}"


@durable.activity
def pack(order: str) -> str:
    """A sync activity: it runs, and logs, in a worker thread."""
    log.warning("packing %s in a thread", order)
    return f"packed {order}"


@durable.activity
async def chatty(n: int) -> int:
    """Log ``n`` records."""
    for i in range(n):
        log.info("line %d", i)
    return n


@durable.workflow
async def order_flow(order: str) -> list[str]:
    """Log from workflow code around two activities and a wait for a signal."""
    durable.logger.info("taking order %s", order)
    receipt = await charge(order)
    await durable.wait_signal("go")
    packed = await pack(order)
    durable.logger.info("order %s done", order)
    return [receipt, packed]


@durable.workflow
async def chatter(n: int) -> int:
    """Run the chatty activity."""
    return await chatty(n)


@pytest.fixture(autouse=True)
def _levels() -> object:
    """Let INFO records be made (what is captured is what logging lets through)."""
    SEEN.clear()
    loggers = [logging.getLogger("steplogs_test"), logging.getLogger("durable.workflow")]
    before = [g.level for g in loggers]
    for g in loggers:
        g.setLevel(logging.INFO)
    yield
    for g, level in zip(loggers, before, strict=True):
        g.setLevel(level)


def _worker(client: durable.Client) -> durable.Worker:
    return durable.Worker(
        client, workflows=[order_flow, chatter], activities=[charge, pack, chatty]
    )


async def _until_waiting(handle: durable.WorkflowHandle[list[str]]) -> None:
    for _ in range(800):
        if any(p.kind == "signal" for p in (await handle.describe()).pending):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the run never waited for its signal")


async def _logs_settled(handle: durable.WorkflowHandle[object], count: int) -> list[steplogs.Log]:
    for _ in range(400):  # stored shortly after the attempt, batched
        got = await handle.logs()
        if len(got) >= count:
            return got
        await asyncio.sleep(0.025)
    return await handle.logs()


async def test_records_are_kept_with_their_step_once_across_workers(store_url: str) -> None:
    root_handlers = list(logging.getLogger().handlers)
    async with durable.connect(store_url) as client:
        async with _worker(client):
            handle = await client.start(order_flow, "o-1", id="o-1")
            await _until_waiting(handle)
            log.info("logged by the test itself: no step's")
        assert logging.getLogger().handlers == root_handlers  # logging's config untouched
        # A second worker rebuilds the run by replaying its code: nothing logged twice.
        async with _worker(client):
            await handle.signal("go", True)
            assert await handle.result() == ["receipt-o-1", "packed o-1"]
            got = await _logs_settled(handle, 7)
        steps = {s.seq: s for s in await handle.steps()}

    lines = [(g.attempt, g.level, g.logger, g.message.splitlines()[0]) for g in got]
    assert lines == [
        (0, "INFO", "durable.workflow", "[o-1 #1] taking order o-1"),
        (1, "INFO", "steplogs_test", "charging o-1, attempt 1"),
        (1, "ERROR", "steplogs_test", "the gateway failed"),
        (2, "INFO", "steplogs_test", "charging o-1, attempt 2"),
        (1, "WARNING", "steplogs_test", "packing o-1 in a thread"),
        (0, "INFO", "durable.workflow", lines[5][3]),
    ]
    assert lines[5][3].endswith("order o-1 done")
    charged = [g for g in got if g.logger == "steplogs_test" and "charging" in g.message]
    assert {g.seq for g in charged} == {2}
    assert steps[2].name == "charge"
    [failed] = [g for g in got if g.level == "ERROR"]
    assert "Traceback" in failed.message
    assert "ConnectionError: gateway <down>" in failed.message
    [packed] = [g for g in got if "packing" in g.message]
    assert steps[packed.seq].name == "pack"
    assert all("logged by the test itself" not in g.message for g in got)
    assert [g.id for g in got] == sorted(g.id for g in got)


async def test_an_attempt_keeps_at_most_its_share_and_says_how_many_were_cut(
    store_url: str,
) -> None:
    async with durable.connect(store_url) as client, _worker(client):
        handle = await client.start(chatter, steplogs.MAX_RECORDS + 50)
        await handle.result()
        got = await _logs_settled(handle, steplogs.MAX_RECORDS + 1)
        one_step = await handle.logs(seq=got[0].seq, after=got[9].id, limit=5)
    assert len(got) == steplogs.MAX_RECORDS + 1
    assert got[-2].message == f"line {steplogs.MAX_RECORDS - 1}"
    assert got[-1].level == "WARNING"
    assert got[-1].message.startswith("50 more log record(s) were not kept")
    assert [g.message for g in one_step] == [f"line {i}" for i in range(10, 15)]


async def test_logs_through_the_cli_http_and_console(store_url: str, tmp_path: Path) -> None:
    async with durable.connect(store_url) as client:
        async with _worker(client):
            handle = await client.start(order_flow, "o-2", id="o-2")
            await _until_waiting(handle)
            await handle.signal("go", True)
            await handle.result()
            got = await _logs_settled(handle, 6)
        charge_seq = next(g.seq for g in got if "charging" in g.message)

        cli = Cli(db=store_url, cwd=tmp_path)
        text = cli.ok("logs", "o-2")
        assert "ERROR" in text
        assert "attempt 2 steplogs_test: charging o-2, attempt 2" in text
        # Local time with its offset, as every other command prints times.
        charging = next(g for g in got if g.message == "charging o-2, attempt 2")
        india = cli("logs", "o-2", tz="Asia/Kolkata").stdout
        ist = charging.at.astimezone(timezone(timedelta(hours=5, minutes=30)))
        assert f"{ist.isoformat(timespec='milliseconds')} " in india
        assert "+05:30 " in india
        assert "+00:00" not in india
        only = cli.ok("logs", "o-2", "--step", str(charge_seq))
        assert "packing" not in only
        assert "charging o-2, attempt 1" in only
        as_json = json.loads(cli.ok("logs", "o-2", "--json"))
        assert [r["message"] for r in as_json] == [g.message for g in got]
        assert cli("logs", "nope").returncode == 1

        app = create_app(client)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://durable") as http:
            first = (await http.get("/v1/workflows/o-2/logs", params={"limit": 2})).json()
            assert [r["message"] for r in first["logs"]] == [g.message for g in got[:2]]
            assert first["next_after"] == got[1].id
            rest = await http.get("/v1/workflows/o-2/logs", params={"after": first["next_after"]})
            assert [r["message"] for r in rest.json()["logs"]] == [g.message for g in got[2:]]
            assert rest.json()["next_after"] is None
            bad = await http.get("/v1/workflows/o-2/logs", params={"limit": 0})
            assert bad.status_code == 400
            assert bad.headers["content-type"] == "application/problem+json"
            page = await http.get(f"/runs/o-2?step={charge_seq}")
            assert page.status_code == 200
            assert "ConnectionError: gateway &lt;down&gt;" in page.text  # escaped
            assert "gateway <down>" not in page.text
            assert 'class="log-error"' in page.text
            # An activity run in the worker records its start with its attempts only: the
            # step's "started" is its first attempt's, as the attempts table shows it.
            started = re.search(r"<dt>started</dt><dd>([^<]*)</dd>", page.text)
            first = re.search(r"<tr><td>1</td><td[^>]*>[^<]*</td><td>([^<]*)</td>", page.text)
            assert started is not None
            assert first is not None
            assert started.group(1) == first.group(1) != "-"
