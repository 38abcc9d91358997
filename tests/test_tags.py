"""Tags and search on every backend: ``durable.set_tags`` journaled and replay-safe, the tag
index (``run_tags``) kept in step, backfilled once, and used by the list's query."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import problem
from test_engine import Journal, fetch

import durable
from durable.cli import render
from durable.clock import VirtualClock
from durable.console import labels
from durable.server import create_app
from durable.store import NewRun, open_store


@durable.activity
async def noop() -> None:
    """A durable step between two set_tags, so the second lands in a later commit."""


@durable.workflow
async def tagged(rounds: int) -> str:
    durable.set_tags(stage="started")
    await noop()
    durable.set_tags({"stage": "charged", "carrier": "dhl"})
    if rounds > 0:
        durable.continue_as_new(rounds - 1)
    return "done"


async def test_set_tags_merges_into_the_run_is_a_step_and_follows_continue_as_new(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[tagged], activities=[noop]):
        handle = await client.start(tagged, 1, id="order-1", tags={"customer": "acme"})
        assert await handle.result() == "done"
    final = {"customer": "acme", "stage": "charged", "carrier": "dhl"}
    assert (await handle.describe()).tags == final
    # every run of the chain carries them; the old stage is no longer found
    found = [d.status async for d in client.list(tags={"stage": "charged", "customer": "acme"})]
    assert found == ["completed", "continued_as_new"]
    assert [d async for d in client.list(tags={"stage": "started"})] == []
    steps = [(s.kind, s.name, s.input) for s in await handle.steps() if s.kind == "tags"]
    assert steps == [
        ("tags", "stage", {"stage": "started"}),
        ("tags", "stage, carrier", {"stage": "charged", "carrier": "dhl"}),
    ]
    assert [e.kind for e in await handle.history()].count("tags_set") == 2
    # shown as a mark with its values: in the CLI's steps and the console's labels
    built = [s for s in await handle.steps() if s.kind == "tags"]
    table = "\n".join(render.steps_table(built, datetime.now(UTC)))
    assert '= {"stage": "charged", "carrier": "dhl"}' in table
    assert labels.step_label(built[1]) == "tags \u00b7 stage, carrier"


async def test_set_tags_refuses_bad_tags_and_calls_outside_a_workflow() -> None:
    with pytest.raises(durable.NotInWorkflowError, match=r"client.start\(\.\.\., tags="):
        durable.set_tags(stage="x")


@durable.workflow
async def bad_tags() -> None:
    durable.set_tags({"stage": 3})  # type: ignore[dict-item]


async def test_a_bad_tag_fails_the_run_saying_why(client: durable.Client) -> None:
    async with durable.Worker(client, workflows=[bad_tags]):
        handle = await client.start(bad_tags, id="bad")
        with pytest.raises(durable.WorkflowFailed, match="tags map str keys to str values"):
            await handle.result()
    assert (await handle.describe()).tags == {}


async def test_the_tag_index_is_backfilled_once_when_created(
    store_url: str, schema_meta: Any
) -> None:
    """A database from before the tag index: its tagged runs are found by tag once it is
    opened by this code, and runs created from then on are indexed as they come."""
    async with open_store(store_url) as s:
        await s.create_run(_run("old", 1.0, {"customer": "acme"}), if_exists="error")
    await _drop_index(store_url, schema_meta)
    # written while the index did not exist (by code that predates it)
    await schema_meta._run(
        'UPDATE runs SET tags = \'{"customer": "acme", "tier": "2"}\' WHERE workflow_id = \'old\''
    )
    async with open_store(store_url) as s:
        await s.create_run(_run("new", 2.0, {"customer": "acme"}), if_exists="error")
        found = [r.workflow_id for r in await s.list_runs(tags={"customer": "acme"})]
        assert found == ["new", "old"]
        assert [r.workflow_id for r in await s.list_runs(tags={"tier": "2"})] == ["old"]
    rows = await schema_meta._run("SELECT COUNT(*) FROM run_tags")
    assert rows[0][0] == 3  # once: old's two tags, new's one


async def test_a_database_from_before_tags_gets_the_column_then_the_index(
    store_url: str, schema_meta: Any
) -> None:
    """Opening a database that has neither ``runs.tags`` nor the tag index adds the column
    first, then creates the index (whose backfill reads that column)."""
    async with open_store(store_url) as s:
        await s.create_run(_run("untagged", 1.0, {}), if_exists="error")
    await _drop_index(store_url, schema_meta)
    await schema_meta._run("ALTER TABLE runs DROP COLUMN tags")
    async with open_store(store_url) as s:
        await s.create_run(_run("tagged", 2.0, {"k": "v"}), if_exists="error")
        assert [r.workflow_id for r in await s.list_runs(tags={"k": "v"})] == ["tagged"]
        assert len(await s.list_runs()) == 2


async def _drop_index(store_url: str, schema_meta: Any) -> None:
    sqlite = store_url.startswith("sqlite")
    for trigger in ("run_tags_insert", "run_tags_update", "run_tags_delete"):
        await schema_meta._run(f"DROP TRIGGER {trigger}" + ("" if sqlite else " ON runs"))
    await schema_meta._run("DROP TABLE run_tags")


async def test_a_search_by_tag_reads_the_tag_index(store_url: str, schema_meta: Any) -> None:
    """EXPLAIN of the list's own query (and of its count) shows the tag index driving it,
    with several tags, a time range and a cursor, on each backend."""
    from durable_postgres import listing as pg_listing
    from durable_sqlite import listing as sqlite_listing

    async with open_store(store_url) as s:
        runs = [
            (_run(f"r{i}", float(i), {"customer": f"c{i % 50}", "tier": str(i % 3)}), "error")
            for i in range(5000)
        ]
        await s.create_runs(runs)  # type: ignore[arg-type]
        page = await s.list_runs(tags={"customer": "c7", "tier": "1"}, limit=3)
        assert [r.workflow_id for r in page] == ["r4957", "r4807", "r4657"]
    sqlite = store_url.startswith("sqlite")
    listing: Any = sqlite_listing if sqlite else pg_listing
    filtering = {
        "tags": {"customer": "c7", "tier": "1"},
        "created_after": 10.0,
        "created_before": 4000.0,
        "after": "r3007",
        "status": "pending",
    }
    queries = [listing.list_query(limit=100, **filtering), listing.count_query(**filtering)]
    if not sqlite:
        await schema_meta._run("ANALYZE")
    for sql, params in queries:
        plan = await _explain(schema_meta, sql, params, sqlite=sqlite)
        index = "run_tags_search" if sqlite else "run_tags_search_idx"
        assert index in plan, plan
        assert "SCAN runs" not in plan, plan
        assert "Seq Scan on runs" not in plan, plan
        if not sqlite:
            # the other tags are tested on the run rows: a second join of run_tags let a
            # planner without statistics loop over both tags' rows (seconds at 100k runs)
            assert plan.count(" on run_tags ") == 1, plan


def _run(workflow_id: str, at: float, tags: dict[str, str]) -> NewRun:
    return NewRun(workflow_id, f"{workflow_id}-run", "wf", "default", b"", at, tags=tags)


async def _explain(schema_meta: Any, sql: str, params: list[Any], *, sqlite: bool) -> str:
    if sqlite:
        literal = sql.replace("?", "{!r}").format(*params)
        rows = await schema_meta._run(f"EXPLAIN QUERY PLAN {literal}")
        return "\n".join(str(r[-1]) for r in rows)
    for i in range(len(params), 0, -1):
        sql = sql.replace(f"${i}", repr(params[i - 1]))
    rows = await schema_meta._run(f"EXPLAIN (COSTS OFF) {sql}")
    return "\n".join(str(r[0]) for r in rows)


async def test_the_list_filters_by_tags_and_time_over_http(store_url: str) -> None:
    clock = VirtualClock(1_800_000_000.0)
    async with durable.connect(store_url, clock=clock) as client:
        for i in range(4):
            clock.advance_to(1_800_000_000.0 + 3600 * i)
            await client.start("some_workflow", id=f"r{i}", tags={"team": "a"})
        transport = httpx.ASGITransport(app=create_app(client))
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            after = datetime.fromtimestamp(1_800_000_000.0 + 3600, UTC).isoformat()
            params = {"tag": "team:a", "created_after": after, "limit": 1}
            r = await http.get("/v1/workflows", params=params)
            assert [w["id"] for w in r.json()["workflows"]] == ["r3"]
            cursor = r.json()["next_cursor"]
            r = await http.get("/v1/workflows", params={**params, "cursor": cursor, "limit": 5})
            assert [w["id"] for w in r.json()["workflows"]] == ["r2", "r1"]
            before = after.replace("+00:00", "")  # naive: UTC
            r = await http.get("/v1/workflows", params={"created_before": before})
            assert [w["id"] for w in r.json()["workflows"]] == ["r0"]
            r = await http.get("/v1/workflows", params={"created_after": "yesterday"})
            assert "must be an ISO 8601 date-time" in problem(r, 400)


def test_durable_list_filters_by_time(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"

    async def seed() -> None:
        for day, workflow_id in ((1, "first"), (3, "third")):
            when = datetime(2026, 12, day, tzinfo=UTC).timestamp()
            async with durable.connect(db, clock=VirtualClock(when)) as client:
                await client.start("some_workflow", id=workflow_id)

    asyncio.run(seed())
    cli = [sys.executable, "-m", "durable", "list", "--db", db, "--json"]
    done = subprocess.run([*cli, "--created-after", "2026-12-02"], capture_output=True, text=True)
    assert [r["id"] for r in json.loads(done.stdout)] == ["third"]
    done = subprocess.run([*cli, "--created-before", "2026-12-02"], capture_output=True, text=True)
    assert [r["id"] for r in json.loads(done.stdout)] == ["first"]
    text = [*cli[:-1], "--created-after", "2026-12-05"]
    done = subprocess.run(text, capture_output=True, text=True)
    assert done.stdout.strip() == "no workflow runs with created since 2026-12-05T00:00:00"
    done = subprocess.run([*cli, "--created-after", "soon"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "expected an ISO 8601 date-time" in done.stderr


async def test_sqlite_counts_by_tag_agree_whichever_way_they_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tag most runs have is counted by reading the runs, a rarer one through the index
    (`durable_sqlite.listing.count_runs`): the counts are the same either way."""
    from durable_sqlite import listing

    async with open_store(f"sqlite:///{tmp_path / 'count.db'}") as s:
        for i in range(30):
            tags = {"env": "prod", "team": "a" if i % 3 else "b"}
            run = NewRun(f"r{i}", f"r{i}-run", "wf" if i % 2 else "other", "q", b"", i, tags=tags)
            await s.create_run(run, if_exists="error")
        await s.terminate("r3-run", entry_data=b"", error=b"", now=40.0, parent_item=None)
        questions = [
            ({"env": "prod"}, None),
            ({"team": "a", "env": "prod"}, "wf"),
            ({"team": "b"}, None),
        ]
        by_index = [await s.count_runs(tags=t, name=n) for t, n in questions]
        monkeypatch.setattr(listing, "COUNT_BY_INDEX", 5)
        assert [await s.count_runs(tags=t, name=n) for t, n in questions] == by_index
    assert by_index == [
        {"pending": 29, "terminated": 1},
        {"pending": 10},
        {"pending": 9, "terminated": 1},
    ]


@durable.workflow
async def tagged_v1() -> str:
    durable.set_tags(stage="started")
    found = await fetch("x")
    durable.set_tags(stage=found)
    return found


@durable.workflow(name="tagged_v1")
async def tagged_other_values() -> str:
    durable.set_tags(stage="begun")  # other values: allowed, replay checks the kind
    found = await fetch("x")
    durable.set_tags({"stage": found, "extra": "yes"})
    return found


@durable.workflow(name="tagged_v1")
async def untagged() -> str:
    return await fetch("x")


def test_set_tags_replays_without_repeating_and_its_removal_is_non_determinism() -> None:
    j = Journal(tagged_v1)
    j.complete(j.seq_of("activity_scheduled"), "found")
    assert j.kinds() == [
        "workflow_started",
        "tags_set",
        "activity_scheduled",
        "activity_completed",
        "tags_set",
        "workflow_completed",
    ]
    assert j.run.tags == {"stage": "found"}
    assert j.replay().tags == {"stage": "found"}  # what a successor would carry
    assert j.replay(tagged_other_values).outcome is not None
    with pytest.raises(durable.NonDeterminismError, match="holds tags_set"):
        j.replay(untagged)
