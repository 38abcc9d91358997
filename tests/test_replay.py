"""The replay gate (DESIGN §9): recorded runs replayed against changed code, in process
(`durable.testing.replay`) and as the `durable export` / `durable replay` commands.

Runs of tests/replay_v1.py's ``checkout`` are recorded by a real worker on each backend,
then replayed against v1 itself (they match), v2 (a step moved: the diff names the
position, both commands and the changed line) and v3 (a step added behind
`durable.patched`: they match).
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
import replay_v1
import replay_v2
import replay_v3
from clikit import Cli

import durable
from durable.replayer import ReplayError, RunHistory, divergence_report
from durable.testing import replay


async def _record(url: str) -> dict[str, RunHistory]:
    """Three runs of v1's checkout: approved (completed), declined (completed), and one
    still waiting for its approval (open); their histories by workflow id. (An approval
    sent before the run waits for it is taken without a wait: v2 would then issue the same
    commands, in the same order, and replay.)"""
    async with durable.connect(url) as client:
        worker = durable.Worker(
            client,
            workflows=[replay_v1.checkout],
            activities=[replay_v1.reserve, replay_v1.charge],
        )
        async with worker:
            for wid, decision in (("yes", True), ("no", False), ("open", None)):
                handle = await client.start(replay_v1.checkout, "lamp", id=wid)
                await _until_waiting(handle)  # the approval comes while it waits
                if decision is not None:
                    await handle.signal("approved", decision)
                    await handle.result()
        store = await client._open()
        out = {}
        for wid in ("yes", "no", "open"):
            run = await store.get_run(wid)
            assert run is not None
            out[wid] = RunHistory.of(run, await store.read_journal(run.run_id))
    return out


async def _until_waiting(handle: durable.WorkflowHandle[list[str]]) -> None:
    """Until the run waits for its approval signal (its pending steps say so)."""
    for _ in range(400):
        described = await handle.describe()
        if any(p.kind == "signal" for p in described.pending):
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the run never waited for its signal")


@pytest.fixture
async def recorded(store_url: str) -> dict[str, RunHistory]:
    return await _record(store_url)


async def test_recorded_runs_replay_against_the_code_that_made_them(
    recorded: dict[str, RunHistory],
) -> None:
    assert recorded["yes"].status == "completed"
    assert recorded["open"].status == "running"
    for history in recorded.values():
        assert replay(history, [replay_v1.checkout]) == len(history.entries)
        # the export document round-trips exactly, through JSON text
        again = RunHistory.from_json(json.loads(json.dumps(history.to_json())))
        assert again == history


async def test_a_moved_step_is_reported_with_both_commands_and_the_changed_line(
    recorded: dict[str, RunHistory],
) -> None:
    for wid in ("yes", "open"):
        history = recorded[wid]
        with pytest.raises(durable.NonDeterminismError) as info:
            replay(history, [replay_v2.checkout])
        err = info.value
        kinds = {e.seq: e.kind for e in history.entries}
        assert err.seq is not None
        assert kinds[err.seq] == "signal_wait_started"
        assert err.recorded is not None
        assert "approved" in err.recorded
        assert err.issued is not None
        assert "charge" in err.issued
        assert err.location is not None
        assert "replay_v2.py" in err.location
        assert "THE CHANGED LINE" in err.location
        report = divergence_report(history, err)
        assert f"at journal entry {err.seq}" in report
        assert f"> {err.seq:>5}  signal_wait_started" in report
        assert "durable.patched" in report


async def test_code_that_returns_early_or_stops_issuing_is_a_divergence(
    recorded: dict[str, RunHistory],
) -> None:
    @durable.workflow(name="checkout")
    async def returns_early(item: str) -> list[str]:
        return [await replay_v1.reserve(item)]  # no longer waits for the approval

    with pytest.raises(durable.NonDeterminismError) as info:
        replay(recorded["yes"], [returns_early])
    err = info.value
    assert err.issued == "workflow_completed"
    assert err.recorded is not None
    assert "approved" in err.recorded
    assert err.location == "the workflow function had already returned"

    @durable.workflow(name="checkout")
    async def stalls(item: str) -> list[str]:
        done = [await replay_v1.reserve(item)]
        await asyncio.get_running_loop().create_future()  # STALLS HERE
        return done

    with pytest.raises(durable.NonDeterminismError) as info:
        replay(recorded["yes"], [stalls])
    err = info.value
    assert err.issued is None
    assert err.location is not None
    assert "test_replay.py" in err.location
    assert "STALLS HERE" in err.location
    report = divergence_report(recorded["yes"], err)
    assert "issued:   nothing (the code issued no further command)" in report


async def test_a_change_behind_patched_replays(recorded: dict[str, RunHistory]) -> None:
    for history in recorded.values():
        assert replay(history, [replay_v3.checkout]) == len(history.entries)


def _history_file(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(doc))
    return path


async def test_histories_that_cannot_be_replayed_say_why(
    recorded: dict[str, RunHistory], tmp_path: Path
) -> None:
    with pytest.raises(ReplayError, match="not a durable run export"):
        replay(_history_file(tmp_path, {"runs": []}), [replay_v1.checkout])
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ReplayError, match="not JSON"):
        replay(tmp_path / "bad.json", [replay_v1.checkout])

    @durable.workflow(name="other")
    async def other() -> None:
        pass

    doc = recorded["yes"].to_json()
    with pytest.raises(ReplayError, match="defines: other"):
        replay(doc, [other])
    doc["entries"][2]["data"] = base64.b64encode(b"\xc1 not msgpack").decode()
    with pytest.raises(ReplayError, match=r"Journal entry 3 \(.*\) of yes .* cannot be read"):
        replay(doc, [replay_v1.checkout])
    del doc["entries"][0]["seq"]
    with pytest.raises(ReplayError, match="damaged durable run export"):
        replay(doc, [replay_v1.checkout])


async def test_export_and_replay_commands_gate_a_deploy(
    recorded: dict[str, RunHistory], store_url: str, tmp_path: Path
) -> None:
    cli = Cli(db=store_url, cwd=tmp_path)
    said = cli.ok("export", "yes", "--output", "yes.json")
    assert "Exported yes" in said
    assert RunHistory.load(tmp_path / "yes.json") == recorded["yes"]

    assert "1 run(s) replayed against this code: all match" in cli.ok(
        "replay", "replay_v1", "--file", "yes.json"
    )
    assert "3 run(s) replayed against this code: all match" in cli.ok("replay", "replay_v3")

    moved = cli("replay", "replay_v2")
    assert moved.returncode == 1
    assert "does not replay against this code" in moved.stderr
    assert "recorded: " in moved.stderr
    assert "issued:   activity_scheduled 'charge'" in moved.stderr
    assert "THE CHANGED LINE" in moved.stderr

    unknown = cli("replay", "replay_v1", "--name", "nope")
    assert unknown.returncode == 1
    assert "'nope' is not a workflow of the given module(s)" in unknown.stderr
    not_export = cli("replay", "replay_v1", "--file", str(_history_file(tmp_path, [])))
    assert not_export.returncode == 1
    assert "not a durable run export" in not_export.stderr
    missing = cli("export", "no-such-run")
    assert missing.returncode == 1
    assert "No workflow 'no-such-run'" in missing.stderr
