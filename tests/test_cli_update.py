"""`durable update ID NAME [ARGS...]`: a short-lived `python -m durable` process beside an
in-process worker, on every backend."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from clikit import Cli

import durable

pytestmark = pytest.mark.slow  # real processes


@durable.workflow
async def tally() -> int:
    total = [0]

    def positive(n: int) -> None:
        if n <= 0:
            raise ValueError(f"{n} is not positive")

    def add(n: int) -> int:
        total[0] += n
        return total[0]

    def broken() -> None:
        raise RuntimeError("handler broke")

    durable.on_update("add", add, validator=positive)
    durable.on_update("broken", broken)
    await durable.wait_condition(lambda: total[0] >= 10, timeout=60)
    return total[0]


async def test_update_prints_the_result_and_refuses_with_the_reason(
    store_url: str, tmp_path: Path
) -> None:
    cli = Cli(db=store_url, cwd=tmp_path)
    async with durable.connect(store_url) as client, durable.Worker(client, workflows=[tally]):
        handle = await client.start(tally, id="t-1")
        assert await asyncio.to_thread(cli.ok, "update", "t-1", "add", "3") == "3\n"
        out = await asyncio.to_thread(
            cli.ok, "update", "t-1", "add", "4", "--update-id", "u", "--json"
        )
        assert json.loads(out) == {"id": "t-1", "name": "add", "result": 7}
        # The same update id again: the same outcome, the handler not run again.
        again = await asyncio.to_thread(cli.ok, "update", "t-1", "add", "4", "--update-id", "u")
        assert again == "7\n"
        rejected = await asyncio.to_thread(cli.refused, "update", "t-1", "add", "-1")
        assert "was rejected" in rejected
        assert "-1 is not positive" in rejected
        assert "nothing was journaled" in rejected
        unknown = await asyncio.to_thread(cli.refused, "update", "t-1", "nope")
        assert "no handler for update 'nope' (registered: 'add', 'broken')" in unknown
        # A handler's failure shows its remote traceback, as `durable result` does a run's.
        done = await asyncio.to_thread(cli, "update", "t-1", "broken")
        assert done.returncode == 1
        assert done.stderr.startswith("durable: Update 'broken' (id ")
        assert "failed: RuntimeError: handler broke\n" in done.stderr
        bad_json = await asyncio.to_thread(cli.refused, "update", "t-1", "add", "ada", code=2)
        assert "not valid JSON" in bad_json
        assert await asyncio.to_thread(cli.ok, "update", "t-1", "add", "3") == "10\n"
        assert await handle.result(timeout=20) == 10
        closed = await asyncio.to_thread(cli.refused, "update", "t-1", "add", "1")
        assert "has closed (completed)" in closed
        missing = await asyncio.to_thread(cli.refused, "update", "nobody", "add", "1")
        assert "nobody" in missing
