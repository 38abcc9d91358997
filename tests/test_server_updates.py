"""``POST /v1/workflows/{id}/update/{name}`` on both backends: results, a handler's error,
rejections and closed runs as 409 problems, unknown workflows as 404, idempotent ids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from serverkit import Api, problem, running

import durable


@durable.workflow
async def cart(user: str) -> list[str]:
    items: list[str] = []

    def check(item: str) -> None:
        if not item:
            raise ValueError("empty item")

    def add(item: str) -> int:
        items.append(item)
        return len(items)

    def broken() -> None:
        raise RuntimeError("handler broke")

    async def slow() -> str:
        await durable.sleep(3600)
        return "late"

    durable.on_update("add", add, validator=check)
    durable.on_update("broken", broken)
    durable.on_update("slow", slow)
    await durable.wait_condition(lambda: "done" in items, timeout=60)
    return items


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[Api]:
    async with running(store_url, workflows=[cart]) as served:
        yield served


async def _update(api: Api, wid: str, name: str, **body: Any) -> Any:
    return await api.http.post(f"/v1/workflows/{wid}/update/{name}", json=body)


async def test_update_answers_the_result_and_is_idempotent(api: Api) -> None:
    wid = (await api.start("cart", "ann"))["id"]
    r = await _update(api, wid, "add", args=["apple"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed"
    assert body["result"] == 1
    assert body["update_id"]  # chosen by the server when not given
    again = await _update(api, wid, "add", args=["apple"], update_id=body["update_id"])
    assert again.json()["result"] == 1  # the same outcome; the handler ran once
    r = await _update(api, wid, "broken")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "failed"
    assert r.json()["error"]["type"] == "RuntimeError"
    assert "handler broke" in r.json()["error"]["message"]
    assert (await _update(api, wid, "add", args=["done"])).json()["result"] == 2
    assert (await api.outcome(wid))["result"] == ["apple", "done"]


async def test_rejections_and_closed_runs_are_409_problems(api: Api) -> None:
    wid = (await api.start("cart", "ann"))["id"]
    r = await _update(api, wid, "add", args=[""])
    assert "empty item" in problem(r, 409)
    assert r.json()["cause"]["type"] == "ValueError"
    r = await _update(api, wid, "nope")
    assert "no handler for update 'nope' (registered: 'add', 'broken', 'slow')" in problem(r, 409)
    assert r.json()["cause"]["type"] == "UnknownUpdate"
    r = await _update(api, wid, "add", args=["done"])
    assert r.json()["result"] == 1
    assert (await api.outcome(wid))["status"] == "completed"
    r = await _update(api, wid, "add", args=["late"])
    assert "has closed (completed)" in problem(r, 409)
    assert r.json()["cause"]["type"] == "WorkflowClosed"
    history = await api.http.get(f"/v1/workflows/{wid}/history")
    kinds = [e["kind"] for e in history.json()["events"]]
    assert kinds.count("update_accepted") == 1  # rejected and late ones left no trace


async def test_bad_requests(api: Api) -> None:
    r = await _update(api, "nobody", "add", args=[1])
    assert "No workflow with id 'nobody'" in problem(r, 404)
    wid = (await api.start("cart", "ann"))["id"]
    problem(await _update(api, wid, "add", args="not a list"), 400)
    problem(await _update(api, wid, "add", extra=1), 400)
    r = await api.http.post(f"/v1/workflows/{wid}/update/slow", params={"wait": 0}, json={})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    await _update(api, wid, "add", args=["done"])
