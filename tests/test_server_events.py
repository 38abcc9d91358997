"""Server-sent events (durable.server.events) on both backends: run status changes and new
steps arrive as they are committed, by this process's worker or another's, and streams end
when the run closes or the server shuts down."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from serverkit import WAIT, Api, problem, running

from durable.store import TOPIC_STEPS, steps_topic

TESTS = Path(__file__).resolve().parent


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """The (event, data) pairs of a text/event-stream; comments as ("", text)."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "", line[1:].strip()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


async def test_the_runs_topic_tells_of_new_runs_and_status_changes(api: Api) -> None:
    async with api.http.stream("GET", "/v1/events", params={"topic": "runs"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        started = await api.start("hello", "ada", 2, id="ev-1")
        statuses = []
        async with asyncio.timeout(WAIT):
            async for event, data in sse(response):
                if event == "run" and data["id"] == "ev-1":
                    assert data["run_id"] == started["run_id"]
                    assert data["name"] == "hello"
                    statuses.append(data["status"])
                    if data["status"] == "completed":
                        break
    assert statuses[-1] == "completed"
    assert len(statuses) == len(set(statuses))  # each change once


async def test_a_run_topic_streams_its_status_and_steps_then_ends(api: Api) -> None:
    started = await api.start("approval", "o-1", id="ev-2")
    for _ in range(200):  # until it waits for the signal
        if (await api.http.get("/v1/workflows/ev-2/published/state")).status_code == 200:
            break
        await asyncio.sleep(0.05)
    seen: list[tuple[str, Any]] = []
    async with api.http.stream("GET", "/v1/events", params={"topic": "run:ev-2"}) as response:
        async with asyncio.timeout(WAIT):
            events = sse(response)
            event, data = await anext(events)
            assert event == "run"
            assert data["status"] == "running"
            assert data["run_id"] == started["run_id"]
            r = await api.http.post("/v1/workflows/ev-2/signal/approve", json={"value": "ok"})
            assert r.status_code == 202
            async for event, data in events:
                seen.append((event, data))
    kinds = [e for e, _ in seen]
    assert kinds[-1] == "end"
    assert seen[-1][1]["status"] == "completed"
    steps = [d["step"] for e, d in seen if e == "step"]
    signal_step = next(s for s in steps if s["kind"] == "signal")
    assert signal_step["name"] == "approve"
    assert signal_step["status"] == "completed"
    assert signal_step["output"] == "ok"
    assert [s["input"] for s in steps if s["kind"] == "publish"] == [
        {"order": "o-1", "waiting": False}
    ]
    assert ("run", "completed") in [(e, d.get("status")) for e, d in seen]


async def test_bad_topics_are_problems(api: Api) -> None:
    r = await api.http.get("/v1/events", params={"topic": "everything"})
    assert "Unknown topic 'everything'" in problem(r, 400)
    r = await api.http.get("/v1/events", params={"topic": "run:ghost"})
    assert "No workflow with id 'ghost'" in problem(r, 404)
    r = await api.http.get("/v1/events")
    assert "'topic' is required" in problem(r, 400)


async def test_streams_end_when_the_server_shuts_down(api: Api) -> None:
    await api.start("approval", "o-2", id="ev-3")
    async with (
        api.http.stream("GET", "/v1/events", params={"topic": "runs"}) as runs,
        api.http.stream("GET", "/v1/events", params={"topic": "run:ev-3"}) as one,
    ):
        poll = asyncio.create_task(api.http.get("/v1/workflows/ev-3/result", params={"wait": 50}))
        await asyncio.sleep(0.3)
        api.service.close()
        async with asyncio.timeout(5):
            # Both streams end (whatever they said first), and so does the long poll.
            assert {e async for e, _ in sse(runs) if e} <= {"run"}
            assert {e async for e, _ in sse(one) if e} <= {"run", "step"}
            assert (await poll).status_code == 202  # still running


def _worker(url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DB"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "durable", "worker", "server_app", "--db", url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_steps_committed_by_another_process_reach_the_stream(store_url: str) -> None:
    worker = _worker(store_url)
    try:
        async with running(store_url, worker=False) as api:
            async with api.http.stream("GET", "/v1/events", params={"topic": "runs"}) as runs:
                run_events = sse(runs)
                started = await api.start("relay", 2, id="far")
                await _status(run_events, "far", "running")
                async with api.http.stream("GET", "/v1/events", params={"topic": "run:far"}) as one:
                    events = sse(one)
                    async with asyncio.timeout(WAIT):
                        assert (await anext(events))[0] == "run"
                        for n in range(2):
                            # Only a step shows the round ended: no status change, nothing
                            # published (what a result() waiter would be woken for).
                            await api.http.post("/v1/workflows/far/signal/next", json={})
                            async for event, data in events:
                                assert event == "step", (event, data)
                                step = data["step"]
                                if step["kind"] == "activity" and step["status"] == "completed":
                                    assert step["input"] == [str(n)]
                                    break
                        rest = [(e, d) async for e, d in events]
                    assert [e for e, _ in rest][-2:] == ["run", "end"]
                    assert rest[-1][1]["status"] == "completed"
                    assert rest[-1][1]["run_id"] == started["run_id"]
                await _status(run_events, "far", "completed")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err


async def _status(events: AsyncIterator[tuple[str, Any]], workflow_id: str, status: str) -> None:
    async with asyncio.timeout(WAIT):
        async for event, data in events:
            if event == "run" and data["id"] == workflow_id and data["status"] == status:
                return


def test_a_notify_too_long_names_steps_coarsely_not_everyone() -> None:
    from durable_postgres.listener import MAX_PAYLOAD_BYTES, decode_payload, encode_payload

    many = [steps_topic(f"{n:032x}") for n in range(400)]
    origin, topics = decode_payload(encode_payload("o", [*many, "tasks", "run:w"]))
    assert origin == "o"
    assert sorted(topics) == sorted(["tasks", "run:w", TOPIC_STEPS])
    few = [steps_topic("a"), "tasks"]
    assert sorted(decode_payload(encode_payload("o", few))[1]) == sorted(few)
    huge = [f"run:{n:0100x}" for n in range(MAX_PAYLOAD_BYTES // 50)]
    assert decode_payload(encode_payload("o", huge))[1] == ["*"]
