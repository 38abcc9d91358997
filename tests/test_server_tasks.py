"""The task endpoints (durable.server.tasks) on both backends: a remote activity polled,
heartbeated and completed or failed over HTTP as a worker in another language does, with
batching, concurrent pollers, stale and unknown tokens; and an external wait completed by
its token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import server_remote_app
from serverkit import WAIT, Api, problem, running


@pytest.fixture
async def remote(store_url: str) -> AsyncIterator[Api]:
    """The API with a worker of tests/server_remote_app.py (whose activities nobody here
    implements: the tests serve them over HTTP)."""
    async with running(store_url, workflows=server_remote_app.WORKFLOWS) as api:
        yield api


async def poll(api: Api, count: int = 1, **body: Any) -> list[dict[str, Any]]:
    """Poll media-node until ``count`` tasks came (each poll long-polls up to 2 s)."""
    tasks: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while len(tasks) < count:
            r = await api.http.post(
                "/v1/queues/media-node/poll",
                json={"worker": "node-1", "wait_ms": 2000, "max_tasks": count, **body},
            )
            assert r.status_code == 200, r.text
            tasks += r.json()
    return tasks


async def test_a_remote_activity_is_polled_heartbeated_and_completed(remote: Api) -> None:
    started = await remote.start("resize", "/img/cat.png", 640, id="rz-1")
    [task] = await poll(remote)
    assert task["name"] == "resize_image"
    assert task["args"] == ["/img/cat.png", 640]
    assert task["attempt"] == 1
    assert task["workflow_id"] == "rz-1"
    assert task["run_id"] == started["run_id"]
    assert task["heartbeat_timeout"] is None or task["heartbeat_timeout"] > 0
    token = task["token"]
    r = await remote.http.post(f"/v1/tasks/{token}/heartbeat", json={"details": {"done": 0.5}})
    assert r.json() == {"cancel_requested": False}
    steps = (await remote.http.get("/v1/workflows/rz-1/steps")).json()["steps"]
    assert [(s["name"], s["status"]) for s in steps] == [("resize_image", "running")]
    r = await remote.http.post(f"/v1/tasks/{token}/complete", json={"result": {"w": 640}})
    assert r.status_code == 200
    assert r.json() == {"token": token, "status": "completed"}
    # Completing the same attempt again is harmless.
    r = await remote.http.post(f"/v1/tasks/{token}/complete", json={"result": {"w": 640}})
    assert r.status_code == 200
    assert (await remote.outcome("rz-1"))["result"] == {"w": 640}


async def test_a_failure_is_retried_and_a_stale_token_gets_the_outcome(remote: Api) -> None:
    await remote.start("resize", "/img/dog.png", 10, id="rz-2")
    [first] = await poll(remote)
    r = await remote.http.post(
        f"/v1/tasks/{first['token']}/fail",
        json={"error": {"type": "DiskFull", "message": "no space left"}},
    )
    assert r.json() == {"token": first["token"], "status": "failed"}
    [second] = await poll(remote)
    assert second["attempt"] == 2
    r = await remote.http.post(f"/v1/tasks/{second['token']}/complete", json={"result": 7})
    assert r.status_code == 200
    assert (await remote.outcome("rz-2"))["result"] == 7
    # The first attempt's token is stale now: 409 with what is stored.
    r = await remote.http.post(f"/v1/tasks/{first['token']}/complete", json={"result": 1})
    problem(r, 409)
    assert r.json()["outcome"]["status"] in ("completed", "closed")


async def test_a_non_retryable_failure_reaches_the_workflow(remote: Api) -> None:
    await remote.start("resize_or_say_why", "/img/x.png", id="rz-3")
    [task] = await poll(remote)
    r = await remote.http.post(
        f"/v1/tasks/{task['token']}/fail",
        json={"error": {"type": "BadImage", "message": "not a PNG"}, "non_retryable": True},
    )
    assert r.status_code == 200
    result = (await remote.outcome("rz-3"))["result"]
    assert result.startswith("failed:")
    assert "not a PNG" in result


async def test_batches_and_concurrent_pollers_lose_nothing_and_repeat_nothing(
    remote: Api,
) -> None:
    for n in range(12):
        await remote.start("resize", f"/img/{n}.png", n, id=f"batch-{n}")

    async def poller(name: str) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        async with asyncio.timeout(WAIT):
            while True:
                r = await remote.http.post(
                    "/v1/queues/media-node/poll",
                    json={"worker": name, "wait_ms": 500, "max_tasks": 5},
                )
                batch = r.json()
                assert len(batch) <= 5
                if not batch and got:
                    return got
                for task in batch:
                    done = await remote.http.post(
                        f"/v1/tasks/{task['token']}/complete", json={"result": task["args"][1]}
                    )
                    assert done.status_code == 200
                got += batch

    results = await asyncio.gather(*(poller(f"node-{i}") for i in range(3)))
    handed = [t["workflow_id"] for got in results for t in got]
    assert sorted(handed) == sorted(f"batch-{n}" for n in range(12))  # each once
    for n in range(12):
        assert (await remote.outcome(f"batch-{n}"))["result"] == n


async def test_a_batch_completion_answers_each_token_in_order(remote: Api) -> None:
    for n in range(4):
        await remote.start("resize", f"/img/{n}.png", n, id=f"many-{n}")
    tasks = await poll(remote, 4)
    # The first attempt of many-0 fails and is retried: its token goes stale.
    stale = tasks[0]
    r = await remote.http.post(
        f"/v1/tasks/{stale['token']}/fail", json={"error": {"type": "Flaky", "message": "x"}}
    )
    assert r.status_code == 200
    [retried] = await poll(remote)
    items = [{"token": t["token"], "result": t["args"][1] * 10} for t in [retried, *tasks[1:]]]
    items.append(items[1])  # the same token twice: harmless
    items.append({"token": stale["token"], "result": 0})
    items.append({"token": "not-a-token"})
    r = await remote.http.post("/v1/tasks/complete", json={"tasks": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [a["token"] for a in results] == [i["token"] for i in items]
    assert [a["status"] for a in results] == ["completed"] * 5 + ["refused"] * 2
    assert results[5]["problem"]["status"] == 409
    assert results[5]["problem"]["outcome"]["status"] in ("running", "completed", "closed")
    assert results[6]["problem"]["status"] == 404
    for n in range(4):
        assert (await remote.outcome(f"many-{n}"))["result"] == n * 10
    # Completing them again is harmless too; a stale token stays refused with the outcome.
    r = await remote.http.post("/v1/tasks/complete", json={"tasks": items[:2]})
    assert [a["status"] for a in r.json()["results"]] == ["completed", "completed"]
    r = await remote.http.post("/v1/tasks/complete", json={"tasks": []})
    assert "tasks is empty" in problem(r, 400)
    many = [{"token": "t"}] * 1001
    r = await remote.http.post("/v1/tasks/complete", json={"tasks": many})
    assert "at most 1000" in problem(r, 400)
    r = await remote.http.post("/v1/tasks/complete", json={"tasks": [{"result": 1}]})
    assert "needs the member 'token'" in problem(r, 400)


async def test_an_external_wait_is_completed_by_its_token(remote: Api) -> None:
    for workflow_id in ("pay-1", "pay-2"):
        await remote.start("awaits_payment", workflow_id, id=workflow_id)
    tokens = {}
    async with asyncio.timeout(WAIT):
        for workflow_id in ("pay-1", "pay-2"):
            while True:
                r = await remote.http.get(f"/v1/workflows/{workflow_id}/published/token")
                if r.status_code == 200:
                    tokens[workflow_id] = r.json()["value"]
                    break
                await asyncio.sleep(0.05)
    r = await remote.http.post(
        f"/v1/tasks/{tokens['pay-1']}/complete", json={"result": {"cents": 900}}
    )
    assert r.status_code == 200
    assert (await remote.outcome("pay-1"))["result"] == {
        "order": "pay-1",
        "payment": {"cents": 900},
    }
    r = await remote.http.post(
        f"/v1/tasks/{tokens['pay-2']}/fail",
        json={"error": {"type": "Declined", "message": "card declined"}},
    )
    assert r.status_code == 200
    assert "card declined" in (await remote.outcome("pay-2"))["result"]["failed"]
    r = await remote.http.post(f"/v1/tasks/{tokens['pay-1']}/complete", json={"result": 1})
    assert r.status_code in (200, 409)  # the same wait again: a no-op, or stale once closed


async def test_bad_tokens_and_bodies(remote: Api) -> None:
    r = await remote.http.post("/v1/tasks/not-a-token/complete", json={"result": 1})
    assert problem(r, 404)
    r = await remote.http.post("/v1/tasks/not-a-token/heartbeat", json={})
    problem(r, 404)
    r = await remote.http.post("/v1/queues/media-node/poll", json={})
    assert "needs the member 'worker'" in problem(r, 400)
    r = await remote.http.post("/v1/queues/media-node/poll")
    assert "needs a JSON object" in problem(r, 400)
    r = await remote.http.post("/v1/queues/q/poll", json={"worker": "w", "max_tasks": 0})
    assert "at least 1" in problem(r, 400)
    r = await remote.http.post("/v1/queues/q/poll", json={"worker": "w", "wait_ms": 60_000})
    assert "at most 30000" in problem(r, 400)
    r = await remote.http.post("/v1/tasks/x/fail", json={"error": "boom"})
    assert "error must be object" in problem(r, 400)
    r = await remote.http.post("/v1/tasks/x/fail", json={"error": {"type": "T"}})
    assert "needs the member 'message'" in problem(r, 400)
    # Refused by the schema, or by the client inside a long poll: a 400 that says why.
    body = {"worker": "w", "names": [], "wait_ms": 100}
    r = await remote.http.post("/v1/queues/q/poll", json=body)
    assert "names is empty" in problem(r, 400)
    body = {"worker": "durable:me", "wait_ms": 100}
    r = await remote.http.post("/v1/queues/q/poll", json=body)
    assert "not starting with 'durable:'" in problem(r, 400)
