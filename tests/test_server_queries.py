"""POST /v1/workflows/{id}/query/{name} (durable.server.queries) on both backends: the
value of a run's query, and each refusal as a problem with its status and reason."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from queries_app import cart, charge, misbehaves
from serverkit import WAIT, Api, problem, running

import durable


@pytest.fixture
async def served(store_url: str) -> AsyncIterator[Api]:
    async with running(store_url, workflows=[cart, misbehaves]) as api:
        yield api


async def _ask(api: Api, workflow_id: str, name: str, *args: Any, **params: Any) -> Any:
    return await api.http.post(
        f"/v1/workflows/{workflow_id}/query/{name}", json={"args": list(args)}, params=params
    )


async def test_a_query_answers_its_value(served: Api) -> None:
    handle = await served.client.start(cart, "ada", id="cart-http")
    await handle.signal("add", "apple")
    for _ in range(500):
        r = await _ask(served, "cart-http", "items")
        if r.status_code == 200 and r.json() == {"result": ["apple"]}:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError(r.text)
    r = await _ask(served, "cart-http", "has", "apple")
    assert (r.status_code, r.json()) == (200, {"result": True})
    r = await _ask(served, "cart-http", "count", {"name": "apple", "size": 2}, 2)
    assert (r.status_code, r.json()) == (200, {"result": True})
    # No body means no arguments.
    r = await served.http.post("/v1/workflows/cart-http/query/user")
    assert (r.status_code, r.json()) == (200, {"result": "ada"})
    await handle.signal("add", None)
    assert (await served.outcome("cart-http"))["status"] == "completed"
    r = await _ask(served, "cart-http", "items")  # closed: answered by replay
    assert (r.status_code, r.json()) == (200, {"result": ["apple"]})


async def test_refusals_are_problems(served: Api) -> None:
    assert "No workflow with id 'ghost'" in problem(await _ask(served, "ghost", "items"), 404)
    handle = await served.client.start(misbehaves, id="bad-http")
    for _ in range(500):
        if (await _ask(served, "bad-http", "year")).status_code == 200:
            break
        await asyncio.sleep(0.02)
    r = await _ask(served, "bad-http", "nope")
    assert "No query 'nope' of workflow 'misbehaves'" in problem(r, 404)
    assert r.json()["reason"] == "unknown_query"
    r = await _ask(served, "bad-http", "publish")
    assert "called durable.publish()" in problem(r, 400)
    assert r.json()["reason"] == "refused"
    r = await _ask(served, "bad-http", "year", 1)
    assert "do not fit query 'year'" in problem(r, 400)
    r = await _ask(served, "bad-http", "raises")
    assert "raised ValueError: no such shelf" in problem(r, 422)
    assert r.json()["cause"] == {"type": "ValueError", "message": "no such shelf"}
    r = await served.http.post("/v1/workflows/bad-http/query/year", json={"argz": []})
    assert "argz" in problem(r, 400)
    r = await served.http.post("/v1/workflows/bad-http/query/year", json={"args": 3})
    assert "args" in problem(r, 400)
    await handle.signal("go")
    await handle.result(timeout=WAIT)


async def test_no_worker_is_a_504(store_url: str) -> None:
    async with running(store_url, worker=False) as api:
        await api.client.start(cart, "ida", id="cart-idle")
        r = await _ask(api, "cart-idle", "items", timeout=0.2)
        detail = problem(r, 504)
        assert "No worker serves workflow 'cart'" in detail
        assert r.json()["reason"] == "no_answer"


def test_the_status_of_every_reason_is_documented() -> None:
    from durable.server.queries import ENDPOINTS, STATUS

    assert set(STATUS) == {"unknown_query", "refused", "failed", "no_answer"}
    assert set(STATUS.values()) <= set(ENDPOINTS[0].problems)
    assert charge.__name__ == "charge"  # the app's activity: served in-process elsewhere
    assert isinstance(durable.QueryError("m", "refused"), durable.DurableError)
