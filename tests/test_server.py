"""The HTTP API's workflow endpoints (durable.server.workflows) against a real server and
worker, on both backends: start, list, describe, steps, history, result, published,
signal, cancel, terminate, and durable's richer values round-tripped through a workflow."""

from __future__ import annotations

import asyncio
import base64
import uuid
from datetime import UTC, datetime

from serverkit import Api, problem


async def test_start_runs_a_workflow_and_result_answers_its_value(api: Api) -> None:
    started = await api.start("hello", "ada", 2, id="greet-1")
    assert started["id"] == "greet-1"
    assert started["created"] is True
    outcome = await api.outcome("greet-1")
    assert outcome == {
        "id": "greet-1",
        "run_id": started["run_id"],
        "status": "completed",
        "result": ["hello ada", "hello ada"],
    }
    # The same id again hands the run back (200), and says it did not create it.
    r = await api.http.post("/v1/workflows/hello/start", json={"args": ["bob"], "id": "greet-1"})
    assert r.status_code == 200
    assert r.json() == {"id": "greet-1", "run_id": started["run_id"], "created": False}
    r = await api.http.post(
        "/v1/workflows/hello/start", json={"args": ["bob"], "id": "greet-1", "if_exists": "error"}
    )
    assert "already" in problem(r, 409)
    assert "if_exists" in problem(r, 409)
    # restart: the closed run is replaced by a new one.
    r = await api.http.post(
        "/v1/workflows/hello/start",
        json={"args": ["cy"], "id": "greet-1", "if_exists": "restart"},
    )
    assert r.status_code == 201
    assert r.json()["run_id"] != started["run_id"]
    assert (await api.outcome("greet-1"))["result"] == ["hello cy"]


async def test_start_refuses_an_id_of_another_workflow_and_takes_a_queue(api: Api) -> None:
    await api.start("hello", "ada", id="taken")
    r = await api.http.post("/v1/workflows/approval/start", json={"args": ["o"], "id": "taken"})
    detail = problem(r, 409)
    assert "belongs to a 'hello' workflow" in detail
    assert "nothing was started" in detail
    started = await api.start("hello", "ada", id="elsewhere", queue="nobody-serves")
    r = await api.http.get("/v1/workflows/elsewhere")
    assert r.json()["queue"] == "nobody-serves"
    assert r.json()["status"] == "pending"
    assert "No live worker serves queue 'nobody-serves'" in r.json()["problem"]
    assert r.json()["run_id"] == started["run_id"]


async def test_a_workflow_no_worker_serves_is_started_and_describe_says_so(api: Api) -> None:
    started = await api.start("not_deployed_yet", 1, id="early")
    assert started["created"] is True
    d = (await api.http.get("/v1/workflows/early")).json()
    assert d["status"] == "pending"
    assert d["name"] == "not_deployed_yet"
    assert "No live worker registers workflow 'not_deployed_yet'" in d["problem"]
    r = await api.http.get("/v1/workflows/early/result", params={"wait": 0.2})
    assert r.status_code == 202
    assert r.json() == {"id": "early", "run_id": started["run_id"], "status": "pending"}


async def test_arguments_are_checked_against_the_signature_the_worker_serves(api: Api) -> None:
    r = await api.http.post("/v1/workflows/hello/start", json={"args": ["ada", "twice"]})
    detail = problem(r, 400)
    assert "argument 'times' must be int, got str 'twice'" in detail
    assert "Nothing was written" in detail
    r = await api.http.post("/v1/workflows/hello/start", json={"args": []})
    assert "missing ['name']" in problem(r, 400)
    r = await api.http.post("/v1/workflows/hello/start", json={"args": ["a", 1, 2]})
    assert "at most 2 taken" in problem(r, 400)
    assert [d async for d in api.client.list()] == []


async def test_richer_types_cross_in_their_json_forms(api: Api) -> None:
    uid = str(uuid.uuid4())
    args = [
        "2026-01-01T09:30:00+00:00",
        "2026-02-03",
        90.5,
        base64.b64encode(b"raw\x00bytes").decode(),
        "12.50",
        uid,
        "blue",
        {"x": 1, "y": 2, "label": "p"},
        [7, "seven"],
        ["b", "a"],
    ]
    await api.start("rich", *args, id="rich-1")
    outcome = await api.outcome("rich-1")
    assert outcome["status"] == "completed", outcome
    types = outcome["result"]["types"]
    assert types == {
        "when": "datetime",
        "day": "date",
        "span": "timedelta",
        "blob": "bytes",
        "amount": "Decimal",
        "uid": "UUID",
        "color": "Color",
        "point": "Point",
        "pair": "tuple",
        "labels": "set",
    }
    assert outcome["result"]["values"] == {
        "when": "2026-01-02T09:30:00+00:00",
        "day": "2026-02-03",
        "span": 181.0,
        "blob": base64.b64encode(b"raw\x00bytes!").decode(),
        "amount": "25.00",
        "uid": uid,
        "color": "blue",
        "point": {"x": 2, "y": 3, "label": "p"},
        "pair": [7, "seven"],
        "labels": ["a", "b"],
    }
    # describe shows the input as the workflow received it, in the same forms.
    d = (await api.http.get("/v1/workflows/rich-1")).json()
    assert d["input"][0] == "2026-01-01T09:30:00+00:00"
    assert d["input"][7]["label"] == "p"


async def test_list_filters_and_pages_newest_first(api: Api) -> None:
    for n in range(5):
        await api.start("hello", f"n{n}", id=f"l-{n}")
    await api.start("not_deployed_yet", id="other")
    for n in range(5):
        await api.outcome(f"l-{n}")
    seen, cursor = [], None
    while True:
        params = {"name": "hello", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.http.get("/v1/workflows", params=params)).json()
        seen.append([d["id"] for d in page["workflows"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [["l-4", "l-3"], ["l-2", "l-1"], ["l-0"]]
    pending = (await api.http.get("/v1/workflows", params={"status": "pending"})).json()
    assert [d["id"] for d in pending["workflows"]] == ["other"]
    assert pending["next_cursor"] is None
    r = await api.http.get("/v1/workflows", params={"status": "done"})
    assert "must be one of" in problem(r, 400)
    r = await api.http.get("/v1/workflows", params={"limit": "many"})
    assert "'limit' must be a finite integer, not 'many'" in problem(r, 400)
    r = await api.http.get("/v1/workflows", params={"limit": 0})
    assert "at least 1" in problem(r, 400)


async def test_describe_steps_and_history_pages(api: Api) -> None:
    started = await api.start("hello", "ada", 3, id="h-1")
    await api.outcome("h-1")
    d = (await api.http.get("/v1/workflows/h-1")).json()
    assert d["status"] == "completed"
    assert d["result"] == ["hello ada"] * 3
    assert d["input"] == ["ada", 3]
    assert d["error"] is None
    assert d["pending"] == []
    datetime.fromisoformat(d["created_at"])
    steps = (await api.http.get("/v1/workflows/h-1/steps")).json()
    assert steps["run_id"] == started["run_id"]
    kinds = [(s["kind"], s["name"], s["status"]) for s in steps["steps"]]
    assert kinds == [("activity", "greet", "completed"), ("publish", "count", "completed")] * 3
    assert steps["steps"][0]["output"] == "hello ada"
    assert steps["steps"][0]["attempts"][0]["number"] == 1
    events, after = [], 0
    while after is not None:
        page = (
            await api.http.get("/v1/workflows/h-1/history", params={"after": after, "limit": 4})
        ).json()
        assert len(page["events"]) <= 4
        events += page["events"]
        after = page["next_after"]
    assert [e["seq"] for e in events] == list(range(1, d["history_length"] + 1))
    assert events[0]["kind"] == "workflow_started" or events[0]["seq"] == 1
    # An older run by its run_id, after a restart.
    await api.http.post(
        "/v1/workflows/hello/start", json={"args": ["b"], "id": "h-1", "if_exists": "restart"}
    )
    old = await api.http.get("/v1/workflows/h-1", params={"run_id": started["run_id"]})
    assert old.json()["run_id"] == started["run_id"]
    assert old.json()["input"] == ["ada", 3]
    r = await api.http.get("/v1/workflows/h-1", params={"run_id": "nope"})
    assert "has no run 'nope'" in problem(r, 404)


async def test_unknown_workflows_are_404_problems(api: Api) -> None:
    for path in ("", "/steps", "/history", "/result", "/published/k"):
        r = await api.http.get(f"/v1/workflows/ghost{path}")
        assert "No workflow with id 'ghost'" in problem(r, 404)
    for path in ("/signal/go", "/cancel", "/terminate"):
        r = await api.http.post(f"/v1/workflows/ghost{path}", json={})
        assert "No workflow with id 'ghost'" in problem(r, 404)


async def test_signal_published_and_result_long_poll(api: Api) -> None:
    started = await api.start("approval", "o-7", id="ap-1")
    # Published values: the first appears once the workflow runs; a missing key is 404.
    for _ in range(200):
        r = await api.http.get("/v1/workflows/ap-1/published/state")
        if r.status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert r.json() == {"id": "ap-1", "key": "state", "value": {"order": "o-7", "waiting": True}}
    r = await api.http.get("/v1/workflows/ap-1/published/nothing")
    assert "published nothing under 'nothing'" in problem(r, 404)
    # Several long polls wait together; a signal ends them all with the result.
    polls = [
        asyncio.create_task(api.http.get("/v1/workflows/ap-1/result", params={"wait": 20}))
        for _ in range(5)
    ]
    await asyncio.sleep(0.3)
    assert not any(p.done() for p in polls)
    r = await api.http.post("/v1/workflows/ap-1/signal/approve", json={"value": "yes"})
    assert r.status_code == 202
    assert r.json() == {"id": "ap-1", "run_id": started["run_id"], "status": "running"}
    for response in await asyncio.gather(*polls):
        assert response.status_code == 200
        assert response.json()["result"] == "o-7: yes"
    r = await api.http.get("/v1/workflows/ap-1/published/state")
    assert r.json()["value"]["waiting"] is False
    r = await api.http.post("/v1/workflows/ap-1/signal/approve", json={"value": "again"})
    assert "has closed (completed)" in problem(r, 409)


async def test_a_failed_run_answers_its_error(api: Api) -> None:
    await api.start("fails", "no stock", id="f-1")
    outcome = await api.outcome("f-1")
    assert outcome["status"] == "failed"
    assert outcome["error"]["type"] == "Refused"
    assert outcome["error"]["message"] == "no stock"
    assert "result" not in outcome


async def test_cancel_and_terminate(api: Api) -> None:
    await api.start("approval", "o-1", id="c-1")
    r = await api.http.post("/v1/workflows/c-1/cancel")
    assert r.status_code == 202
    assert r.json()["id"] == "c-1"
    outcome = await api.outcome("c-1")
    assert outcome["status"] == "cancelled"
    r = await api.http.post("/v1/workflows/c-1/cancel")
    assert r.status_code == 202
    assert r.json()["status"] == "cancelled"
    await api.start("approval", "o-2", id="t-1")
    r = await api.http.post("/v1/workflows/t-1/terminate", json={"reason": "bad data"})
    assert r.status_code == 200
    assert r.json()["status"] == "terminated"
    outcome = await api.outcome("t-1")
    assert outcome["status"] == "terminated"
    assert outcome["error"]["message"] == "bad data"
    r = await api.http.post("/v1/workflows/t-1/terminate", json={"reason": "again"})
    assert r.status_code == 200
    assert r.json()["status"] == "terminated"
    d = (await api.http.get("/v1/workflows/t-1")).json()
    assert d["error"]["message"] == "bad data"
    assert datetime.fromisoformat(d["closed_at"]) <= datetime.now(UTC)


async def test_tags_are_stored_described_and_filtered_on(api: Api) -> None:
    await api.start("hello", "a", id="t-acme", tags={"customer": "acme", "tier": "2"})
    await api.start("hello", "b", id="t-globex", tags={"customer": "globex", "tier": "2"})
    await api.start("hello", "c", id="t-none")
    d = (await api.http.get("/v1/workflows/t-acme")).json()
    assert d["tags"] == {"customer": "acme", "tier": "2"}

    async def ids(*tags: str) -> list[str]:
        r = await api.http.get("/v1/workflows", params={"tag": list(tags)})
        assert r.status_code == 200, r.text
        return [w["id"] for w in r.json()["workflows"]]

    assert await ids("customer:acme") == ["t-acme"]
    assert await ids("tier:2") == ["t-globex", "t-acme"]
    assert await ids("tier:2", "customer:globex") == ["t-globex"]
    assert await ids("tier:3") == []
    assert len(await ids()) == 3
    r = await api.http.post("/v1/workflows/hello/start", json={"args": ["x"], "tags": {"a:b": "c"}})
    assert "without ':'" in problem(r, 400)
    r = await api.http.post(
        "/v1/workflows/hello/start", json={"args": ["x"], "tags": {"k": "v" * 300}}
    )
    assert "too long" in problem(r, 400)
    r = await api.http.get("/v1/workflows", params={"tag": ":x"})
    assert "KEY:VALUE" in problem(r, 400)


async def test_ids_with_slashes_and_percents_are_addressed_percent_encoded(api: Api) -> None:
    """Workflow ids are any string: one with '/' (or one that looks like a path of the API)
    is addressed with the id percent-encoded, as in the console's links."""
    from urllib.parse import quote

    for workflow_id in ["orders/7", "a/steps", "50%/2F", "x/signal/approve"]:
        started = await api.start("approval", "o-1", id=workflow_id)
        path = f"/v1/workflows/{quote(workflow_id, safe='')}"
        r = await api.http.get(path)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == workflow_id
        assert r.json()["run_id"] == started["run_id"]
        r = await api.http.get(f"{path}/steps")
        assert r.status_code == 200, r.text
        r = await api.http.post(f"{path}/signal/approve", json={"value": True})
        assert r.status_code == 202, r.text
        r = await api.http.get(f"{path}/result", params={"wait": 20})
        assert r.json()["id"] == workflow_id
        assert r.json()["status"] == "completed", r.text
