"""Retention on every backend: the storage contract's part (`Store.prune_runs`), and
``client.prune``, the worker's automatic retention, ``durable prune`` and ``POST
/v1/prune`` over it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from serverkit import problem

import durable
from durable import retention
from durable.clock import VirtualClock
from durable.server import create_app
from durable.testing.store_contract.kit import store
from durable.testing.store_contract.retention import *  # noqa: F403

__all__ = ["store"]  # the contract's fixture, used by the tests imported above


WEEK = 7 * 86400.0


@durable.activity
async def double(n: int) -> int:
    return 2 * n


@durable.workflow
async def work(n: int) -> int:
    return await double(n)


@durable.workflow
async def child_holder() -> str:
    durable.publish("child", await durable.call(work, 1, id="held-child"))
    return str(await durable.wait_signal("go"))


async def test_prune_deletes_old_closed_runs_in_batches_while_a_worker_runs_workflows(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs closed a week ago go, a few per transaction, while a worker starts and finishes
    new ones: every new one completes, and none of them (closed just now) is deleted; an
    open run and the closed child of an open parent stay."""
    clock = VirtualClock(1_000_000.0)
    monkeypatch.setattr(retention, "PRUNE_BATCH", 7)
    async with durable.connect(store_url, clock=clock) as client:
        async with durable.Worker(client, workflows=[work, child_holder], activities=[double]):
            old = [await client.start(work, i, id=f"old-{i}") for i in range(40)]
            assert [await h.result() for h in old] == [2 * i for i in range(40)]
            holder = await client.start(child_holder, id="holder")
            assert await holder.read("child") == 2  # the child closed, the parent waits
        clock.advance_to(clock.now() + WEEK)
        async with durable.Worker(client, workflows=[work, child_holder], activities=[double]):
            new = [await client.start(work, i, id=f"new-{i}") for i in range(30)]
            deleted = await client.prune(older_than=timedelta(days=1))
            assert [await h.result() for h in new] == [2 * i for i in range(30)]
            assert deleted == 40
            ids = {d.id async for d in client.list(limit=1000)}
            assert ids == {f"new-{i}" for i in range(30)} | {"holder", "held-child"}
            await holder.signal("go", "done")
            assert await holder.result() == "done"
        clock.advance_to(clock.now() + WEEK)
        assert await client.prune(older_than=timedelta(days=1)) == 32
        assert [d async for d in client.list()] == []


@pytest.mark.parametrize(
    ("older_than", "error", "problem"),
    [
        (timedelta(0), ValueError, "must be a positive, finite age"),
        (timedelta(days=-1), ValueError, "must be a positive, finite age"),
        (-5, ValueError, "must be a positive, finite age"),
        (float("inf"), ValueError, "must be a positive, finite age"),
        ("30d", TypeError, "must be a timedelta"),
    ],
)
async def test_prune_refuses_an_age_that_is_not_positive(
    client: durable.Client, older_than: object, error: type[Exception], problem: str
) -> None:
    await client.start("some_workflow", id="kept")
    await client.get_handle("kept").terminate()
    with pytest.raises(error, match=problem):
        await client.prune(older_than=older_than)  # type: ignore[arg-type]
    assert [d.id async for d in client.list()] == ["kept"]


async def test_a_worker_with_retention_prunes_beside_its_work(store_url: str) -> None:
    clock = VirtualClock(1_000_000.0)
    async with durable.connect(store_url, clock=clock) as client:
        for i in range(5):
            await client.start("some_workflow", id=f"old-{i}")
            await client.get_handle(f"old-{i}").terminate()
        clock.advance_to(clock.now() + WEEK)
        worker = durable.Worker(
            client, workflows=[work], activities=[double], retention=timedelta(days=1)
        )
        async with worker:
            assert await client.execute(work, 21, id="fresh") == 42
            for _ in range(200):
                if [d.id async for d in client.list()] == ["fresh"]:
                    break
                await asyncio.sleep(0.05)
            assert [d.id async for d in client.list()] == ["fresh"]
    with pytest.raises(ValueError, match="retention must be a positive"):
        durable.Worker(client, workflows=[work], retention=timedelta(0))


async def test_post_prune_deletes_old_runs_and_refuses_bad_ages(store_url: str) -> None:
    clock = VirtualClock(1_000_000.0)
    async with durable.connect(store_url, clock=clock) as client:
        await client.start("some_workflow", id="old")
        await client.get_handle("old").terminate()
        clock.advance_to(clock.now() + WEEK)
        await client.start("some_workflow", id="open")
        transport = httpx.ASGITransport(app=create_app(client))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            r = await http.post("/v1/prune", json={"older_than_seconds": 86400})
            assert r.status_code == 200, r.text
            assert r.json() == {"deleted": 1, "older_than_seconds": 86400}
            for body, detail in [
                ({"older_than_seconds": 0}, "must be a positive, finite age"),
                ({"older_than_seconds": -1}, "must be a positive, finite age"),
                ({"older_than_seconds": "30d"}, "must be number"),
                ({}, "needs the member 'older_than_seconds'"),
            ]:
                r = await http.post("/v1/prune", json=body)
                assert detail in problem(r, 400)
            document = (await http.get("/openapi.json")).json()
            assert "post" in document["paths"]["/v1/prune"]
        assert [d.id async for d in client.list()] == ["open"]


def test_durable_prune_deletes_what_closed_before_the_age_given(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> None:
        for when, workflow_id in ((time.time() - 40 * 86400, "old"), (time.time() - 60, "recent")):
            async with durable.connect(db, clock=VirtualClock(when)) as client:
                await client.start("some_workflow", id=workflow_id)
                await client.get_handle(workflow_id).terminate()

    asyncio.run(seed())
    cli = [sys.executable, "-m", "durable", "prune", "--db", db]
    done = subprocess.run([*cli, "--older-than", "30d"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "deleted 1 run(s) closed more than 30 days, 0:00:00 ago"
    done = subprocess.run([*cli, "--older-than", "30s", "--json"], capture_output=True, text=True)
    assert json.loads(done.stdout) == {"deleted": 1, "older_than_seconds": 30.0}
    for bad in ("30x", "0d", "-3d", ""):
        done = subprocess.run([*cli, f"--older-than={bad}"], capture_output=True, text=True)
        assert done.returncode == 2
        assert "--older-than" in done.stderr
        assert "30d" in done.stderr


def test_ages_are_read_with_units() -> None:
    assert retention.parse_duration("30d") == timedelta(days=30)
    assert retention.parse_duration("1d12h") == timedelta(hours=36)
    assert retention.parse_duration(" 2w ") == timedelta(weeks=2)
    assert retention.parse_duration("1.5h") == timedelta(minutes=90)
    for bad in ("30", "d", "30 days", "1d-2h", ""):
        with pytest.raises(ValueError, match="write a number and a unit"):
            retention.parse_duration(bad)


def test_durable_worker_takes_a_retention_age(capsys: pytest.CaptureFixture[str]) -> None:
    from durable.cli import _parser

    args = _parser().parse_args(["worker", "shop", "--retention", "30d"])
    assert args.retention == timedelta(days=30)
    assert _parser().parse_args(["worker", "shop"]).retention is None
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["worker", "shop", "--retention=-1d"])
    assert info.value.code == 2
    assert "--retention: Cannot read '-1d' as a duration" in capsys.readouterr().err
