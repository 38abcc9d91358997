"""The HTTP API's repair endpoints (durable.server.repair) against a real server and
worker, on both backends: retry and fork, their answers and their problems."""

from __future__ import annotations

from serverkit import Api, problem


async def test_retry_reopens_a_terminated_run_and_refuses_wrong_states(api: Api) -> None:
    await api.start("approval", "o-1", id="o-1")
    await api.client.get_handle("o-1").read("state", timeout=20)  # waiting for the signal
    r = await api.http.post("/v1/workflows/o-1/retry")
    assert "still running" in problem(r, 409)
    r = await api.http.post("/v1/workflows/o-1/terminate", json={"reason": "oops"})
    assert r.json()["status"] == "terminated"
    r = await api.http.post("/v1/workflows/o-1/retry", json={"reason": "it was a mistake"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"
    r = await api.http.post("/v1/workflows/o-1/signal/approve", json={"value": "yes"})
    assert r.status_code == 202, r.text
    assert (await api.outcome("o-1"))["result"] == "o-1: yes"
    r = await api.http.get("/v1/workflows/o-1/history")
    retried = [e for e in r.json()["events"] if e["kind"] == "run_retried"]
    assert [(e["data"]["status"], e["data"]["reason"]) for e in retried] == [
        ("terminated", "it was a mistake")
    ]
    r = await api.http.post("/v1/workflows/o-1/retry")
    assert "completed: there is nothing to retry" in problem(r, 409)
    r = await api.http.post("/v1/workflows/nobody/retry")
    assert "nobody" in problem(r, 404)


async def test_fork_starts_a_new_workflow_from_a_prefix(api: Api) -> None:
    await api.start("hello", "ada", 2, id="h-1")
    await api.outcome("h-1")
    r = await api.http.post("/v1/workflows/h-1/fork", json={"at_seq": 5, "id": "h-2"})
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "h-2"
    assert (await api.outcome("h-2"))["result"] == ["hello ada", "hello ada"]
    r = await api.http.post("/v1/workflows/h-1/fork", json={"at_seq": 2, "id": "h-2"})
    assert "h-2" in problem(r, 409)
    r = await api.http.post("/v1/workflows/h-1/fork", json={"at_seq": 60})
    assert "past the end of the journal" in problem(r, 409)
    r = await api.http.post("/v1/workflows/h-1/fork", json={"at_seq": 4})
    assert "cuts entries 3-5 of workflow 'h-1' apart" in problem(r, 409)
    assert "fork at 2 (before them) or 5 (after them)" in problem(r, 409)
    r = await api.http.post("/v1/workflows/h-1/fork", json={})
    assert "at_seq" in problem(r, 400)
    r = await api.http.post("/v1/workflows/nobody/fork", json={"at_seq": 0})
    assert "nobody" in problem(r, 404)
    paths = (await api.http.get("/openapi.json")).json()["paths"]
    assert paths["/v1/workflows/{id}/retry"]["post"]["operationId"] == "retryWorkflow"
    fork = paths["/v1/workflows/{id}/fork"]["post"]
    assert fork["operationId"] == "forkWorkflow"
    assert "409" in fork["responses"]


async def test_a_run_whose_code_raised_at_once_is_started_again_by_retry(api: Api) -> None:
    await api.start("fails", "no stock", id="f-1")
    assert (await api.outcome("f-1"))["status"] == "failed"
    r = await api.http.post("/v1/workflows/f-1/retry")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "running"
    outcome = await api.outcome("f-1")  # the same code fails the same way
    assert outcome["error"]["message"] == "no stock"
    events = (await api.http.get("/v1/workflows/f-1/history")).json()["events"]
    # nothing of its own is kept: the note comes first, then its start again
    assert [e["kind"] for e in events] == ["run_retried", "workflow_started", "workflow_failed"]
    assert events[0]["data"]["dropped"] == [[1, "workflow_started"], [2, "workflow_failed"]]
