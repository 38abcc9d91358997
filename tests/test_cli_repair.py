"""``durable retry`` and ``durable fork`` (durable/cli/repair.py) as a person runs them:
short-lived ``python -m durable`` processes on every backend, beside an in-process worker
that brought the runs where the commands find them."""

from __future__ import annotations

from pathlib import Path

import pytest
from clikit import Cli
from test_repair import _worker, broken, order

import durable

pytestmark = pytest.mark.slow  # real processes: a few seconds in all


async def test_retry_and_fork_say_what_they_did_and_refuse_wrong_states(
    store_url: str, tmp_path: Path, client: durable.Client
) -> None:
    cli = Cli(db=store_url, cwd=tmp_path)
    broken.add("ship")
    async with _worker(client):
        failed = await client.start(order, "c1", id="c1")
        with pytest.raises(durable.WorkflowFailed):
            await failed.result(timeout=20)
    length = (await failed.describe()).history_length

    done = cli("retry", "c1", "--reason", "carrier is back")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("c1 re-opened (it was failed: ActivityError: Activity 'ship'")
    assert "carrier down" in done.stdout
    assert f"its journal keeps {length - 2} of {length} entries; step 4 runs again" in done.stdout
    assert "durable show c1 --follow" in done.stdout
    [retried] = [e for e in await failed.history() if e.kind == "run_retried"]
    assert retried.data["reason"] == "carrier is back"
    again = cli("retry", "c1")
    assert again.returncode == 1
    assert again.stderr.startswith("durable: Workflow 'c1' is still running")
    assert "nothing to retry" in again.stderr

    past = cli("fork", "c1", "--at-seq", "99")
    assert past.returncode == 1
    assert "at_seq 99 is past the end of the journal" in past.stderr
    forked = cli("fork", "c1", "--at-seq", "2", "--id", "c1-copy")
    assert forked.returncode == 0, forked.stderr
    assert forked.stdout.startswith("c1-copy forked from c1 at seq 2: ")
    copy = await client.get_handle("c1-copy").describe()
    assert (copy.status, copy.history_length) == ("running", 3)  # 2 copied, run_forked
