"""The schedule endpoints (`durable.server.schedules`) on a real server over each backend:
create or update, list, describe, pause, resume, trigger, backfill, delete, and bad input
as problems that say what to fix."""

from __future__ import annotations

from serverkit import Api, problem


async def test_schedule_endpoints(api: Api) -> None:
    http = api.http
    body = {
        "workflow": "hello",
        "args": ["ada", 1],
        "cron": "0 * * * *",
        "timezone": "Europe/Berlin",
    }
    r = await http.put("/v1/schedules/greet", json=body)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["id"], created["workflow"], created["cron"], created["timezone"]) == (
        "greet",
        "hello",
        "0 * * * *",
        "Europe/Berlin",
    )
    assert (created["overlap"], created["paused"], created["args"]) == ("skip", False, ["ada", 1])
    assert created["catchup_window"] == 600.0
    assert len(created["next_fire_times"]) == 5
    assert created["next_fire_times"][0].endswith(":00:00+01:00")  # Berlin, in December
    r = await http.put("/v1/schedules/greet", json={**body, "overlap": "allow_all"})
    assert r.status_code == 200
    assert r.json()["overlap"] == "allow_all"
    listed = (await http.get("/v1/schedules")).json()["schedules"]
    assert [d["id"] for d in listed] == ["greet"]
    # Pause and resume answer the schedule.
    paused = (await http.post("/v1/schedules/greet/pause")).json()
    assert paused["paused"] is True
    assert paused["next_fire_times"] == []
    assert (await http.post("/v1/schedules/greet/resume")).json()["paused"] is False
    # Trigger: a run now, served by the worker beside the server.
    started = (await http.post("/v1/schedules/greet/trigger")).json()["started"]
    assert started.startswith("greet@")
    outcome = await api.outcome(started)
    assert outcome["result"] == ["hello ada"]
    r = await http.post(
        "/v1/schedules/greet/backfill",
        json={"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"},
    )
    assert r.json() == {"started": ["greet@2026-12-01T09:00:00Z", "greet@2026-12-01T10:00:00Z"]}
    d = (await http.get("/v1/schedules/greet")).json()
    assert [run["id"] for run in d["recent_runs"]][:2] == [
        "greet@2026-12-01T10:00:00Z",
        "greet@2026-12-01T09:00:00Z",
    ]
    assert d["recent_runs"][0]["scheduled_at"] == "2026-12-01T10:00:00+00:00"
    assert (await http.delete("/v1/schedules/greet")).json() == {"id": "greet", "deleted": True}
    assert "No schedule with id 'greet'" in problem(await http.delete("/v1/schedules/greet"), 404)
    assert "PUT /v1/schedules/{id}" in problem(await http.get("/v1/schedules/greet"), 404)


async def test_schedule_bad_input_is_a_problem_and_writes_nothing(api: Api) -> None:
    http = api.http
    body = {"workflow": "hello", "args": ["ada"], "cron": "0 * * * *"}
    said = problem(await http.put("/v1/schedules/s", json={**body, "cron": "hourly"}), 400)
    assert "does not parse" in said
    assert "Nothing was written" in said
    said = problem(await http.put("/v1/schedules/s", json={**body, "timezone": "Mars/X"}), 400)
    assert "Unknown time zone 'Mars/X'" in said
    said = problem(await http.put("/v1/schedules/s", json={**body, "overlap": "queue"}), 400)
    assert "overlap" in said
    # Arguments the live worker's "hello" cannot take (hello(name: str, times: int = 1)).
    said = problem(await http.put("/v1/schedules/s", json={**body, "args": ["a", 1, 2, 3]}), 400)
    assert "Cannot schedule workflow 'hello'" in said
    said = problem(await http.put("/v1/schedules/a%20b", json=body), 400)
    assert "schedule id must be" in said
    assert (await http.get("/v1/schedules")).json() == {"schedules": []}
    assert (await http.put("/v1/schedules/s", json=body)).status_code == 201
    said = problem(
        await http.post(
            "/v1/schedules/s/backfill",
            json={"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        ),
        400,
    )
    assert "is after its end" in said
    said = problem(
        await http.post("/v1/schedules/s/backfill", json={"start": "soon", "end": "later"}), 400
    )
    assert "ISO 8601" in said
    assert "No schedule" in problem(await http.post("/v1/schedules/nope/trigger"), 404)
