"""Queries across processes, on both backends: ``durable worker queries_app`` subprocesses
answer (from memory, and after a restart by replay in a fresh process), and ``durable
query`` asks from another process, as a person does."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from clikit import WAIT, Cli, background_worker
from queries_app import cart

import durable


@pytest.fixture
def cli(store_url: str, tmp_path: Path) -> Cli:
    return Cli(store_url, tmp_path)


@contextmanager
def worker(cli: Cli, tmp_path: Path, name: str) -> Iterator[subprocess.Popen[str]]:
    """``durable worker queries_app`` in the background, stopped gracefully (SIGTERM)."""
    with background_worker(cli, tmp_path, "queries_app", name=name) as (proc, _):
        yield proc


async def _until(handle: durable.WorkflowHandle[list[str]], items: list[str]) -> None:
    deadline = time.monotonic() + WAIT
    while await handle.query("items") != items:
        assert time.monotonic() < deadline, f"the run never held {items}"
        await asyncio.sleep(0.02)


async def test_workers_in_other_processes_answer_and_a_fresh_one_replays(
    client: durable.Client, cli: Cli, tmp_path: Path
) -> None:
    with worker(cli, tmp_path, "first"):
        handle = await client.start(cart, "ada", id="cart-cli")
        await handle.signal("add", "apple")
        await _until(handle, ["apple"])
        assert await handle.query("has", "apple") is True
        assert json.loads(cli.ok("query", "cart-cli", "has", '"apple"')) is True
        assert json.loads(cli.ok("query", "cart-cli", "items")) == ["apple"]
        document = cli.json("query", "cart-cli", "count", '{"name": "apple"}', "1")
        assert document == {
            "id": "cart-cli",
            "query": "count",
            "args": [{"name": "apple"}, 1],
            "result": True,
        }
    length = len(await handle.history())
    with worker(cli, tmp_path, "second"):  # a fresh process: rebuilds the run to answer
        assert await handle.query("items") == ["apple"]
        assert json.loads(cli.ok("query", "cart-cli", "user")) == "ada"
        refused = cli.refused("query", "cart-cli", "nope")
        assert "No query 'nope' of workflow 'cart' (cart-cli): it registers 'count', " in refused
        refused = cli.refused("query", "cart-cli", "has")
        assert "The arguments given do not fit query 'has'" in refused
        assert len(await handle.history()) == length
        await handle.signal("add", None)
        assert await handle.result(timeout=WAIT) == ["apple"]
        # Closed: still answered, by replay.
        assert json.loads(cli.ok("query", "cart-cli", "items")) == ["apple"]


def test_cli_refusals_without_a_worker(cli: Cli) -> None:
    cli.ok("start", "cart", "--input", '["bo"]', "--id", "cart-idle")
    refused = cli.refused("query", "cart-idle", "items", code=2)
    assert "No worker serves workflow 'cart'" in refused
    assert "durable worker MODULE" in refused
    bad_json = cli.refused("query", "cart-idle", "has", "apple", code=2)
    assert "not valid JSON" in bad_json
    assert "No workflow with id 'ghost'" in cli.refused("query", "ghost", "items")
    assert "expected a number of seconds > 0" in cli.refused(
        "query", "cart-idle", "items", "--timeout", "0", code=2
    )
