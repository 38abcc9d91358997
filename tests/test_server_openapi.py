"""``/openapi.json`` is true: schemathesis generates requests from it for every operation
and checks the running server's answers against it (no 5xx, status codes, content types
and bodies as documented), on a real `durable server` with a worker beside it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from serverkit import Api

TESTS = Path(__file__).resolve().parent
TOKEN = "schema-test-token"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_DB", "DURABLE_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return env


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A `durable server` (with a token) and a worker of tests/server_app.py, on SQLite."""
    db = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'api.db'}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    durable = [sys.executable, "-m", "durable"]
    procs = [
        subprocess.Popen(
            [*durable, "worker", "server_app", "--db", db],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [*durable, "server", "--db", db, "--port", str(port), "--token", TOKEN],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(200):
            try:
                httpx.get(f"{url}/openapi.json", headers=headers)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        # Something for the id-based operations to find besides what is generated.
        httpx.post(
            f"{url}/v1/workflows/hello/start", json={"args": ["a"], "id": "0"}, headers=headers
        )
        yield url
    finally:
        errors = [_stop(p) for p in reversed(procs)]
    assert "Traceback" not in errors[0], errors[0]  # the server logged no failure


def _valid_wait(value: Any, most: float) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return 0 <= number <= most and not isinstance(value, bool)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_the_server_answers_as_its_document_says(server: str, mode: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    document = httpx.get(f"{server}/openapi.json", headers=headers).json()
    # Every call sends the token (tests/test_server_errors.py checks refusals without it):
    # generated cases leave the header alone.
    del document["security"], document["components"]["securitySchemes"]
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server)
    # An event stream never ends by itself; tests/test_server_events.py covers it.
    schema = schema.exclude(path="/v1/events")
    cases = schema.as_strategy(generation_mode=GenerationMode(mode))
    calls = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cases)
    def check(case: Any) -> None:
        # Long polls stay short: a generated run may never end, a queue never fill.
        # (Only valid waits: in negative mode an invalid one must stay invalid.)
        if case.query and _valid_wait(case.query.get("wait"), 60):
            case.query["wait"] = 0
        # A query waits for a worker's answer up to its timeout: keep valid ones short.
        timeout = case.query.get("timeout") if case.query else None
        if _valid_wait(timeout, 60) and float(timeout) >= 0.001:
            case.query["timeout"] = 0.5
        # wait_ms is an integer: a fraction generated to be invalid stays (12.5 -> 0 made
        # a negative case valid, and its 200 a failure).
        wait_ms = case.body.get("wait_ms") if isinstance(case.body, dict) else None
        if _valid_wait(wait_ms, 30_000) and float(wait_ms).is_integer():
            case.body["wait_ms"] = 0
        # A backfill range's own rules (start not after end, at most 1000 ticks, within
        # years 1-9999 in UTC) are not JSON Schema: valid cases get a valid range, of
        # five minutes (a cron with seconds, '*/1 * * * * *', ticks 300 times in it).
        backfill = case.operation.path == "/v1/schedules/{id}/backfill"
        if backfill and mode == "positive" and isinstance(case.body, dict):
            case.body.update(start="2026-12-01T00:00:00Z", end="2026-12-01T00:05:00Z")
        # A query of a run that no worker serves is a documented 504 (reason no_answer:
        # the gateway found nobody to ask), not a failure of the server: a generated start
        # may replace run "0" with one of a name no worker knows, then query it.
        query = case.operation.path == "/v1/workflows/{id}/query/{name}"
        excluded = [not_a_server_error] if query else []
        response = case.call_and_validate(headers=headers, excluded_checks=excluded)
        status = response.status_code
        if query and status == 504:
            assert response.json()["reason"] == "no_answer", response.text
            status = 0  # answered as documented
        calls.append((case.operation.label, status))

    check()
    assert not [c for c in calls if c[1] >= 500]
    assert len({label for label, _ in calls}) >= 8  # most operations were exercised


CONTRACT = {
    ("post", "/v1/workflows/{name}/start"),
    ("get", "/v1/workflows"),
    ("get", "/v1/workflows/{id}"),
    ("get", "/v1/workflows/{id}/steps"),
    ("get", "/v1/workflows/{id}/history"),
    ("get", "/v1/workflows/{id}/logs"),
    ("get", "/v1/workflows/{id}/result"),
    ("get", "/v1/workflows/{id}/published/{key}"),
    ("post", "/v1/workflows/{id}/signal/{signal}"),
    ("post", "/v1/workflows/{id}/query/{name}"),  # §10 (durable.server.queries)
    # §10 messages (durable.server.updates)
    ("post", "/v1/workflows/{id}/update/{name}"),
    ("post", "/v1/workflows/{id}/cancel"),
    ("post", "/v1/workflows/{id}/terminate"),
    ("post", "/v1/workflows/{id}/retry"),
    ("post", "/v1/workflows/{id}/fork"),
    ("get", "/v1/events"),
    ("post", "/v1/queues/{queue}/poll"),
    ("post", "/v1/tasks/{token}/heartbeat"),
    ("post", "/v1/tasks/{token}/complete"),
    ("post", "/v1/tasks/complete"),
    ("post", "/v1/tasks/{token}/fail"),
    # §8 schedules (durable.server.schedules)
    ("get", "/v1/schedules"),
    ("put", "/v1/schedules/{id}"),
    ("get", "/v1/schedules/{id}"),
    ("delete", "/v1/schedules/{id}"),
    ("post", "/v1/schedules/{id}/pause"),
    ("post", "/v1/schedules/{id}/resume"),
    ("post", "/v1/schedules/{id}/trigger"),
    ("post", "/v1/schedules/{id}/backfill"),
    ("post", "/v1/prune"),
    ("get", "/v1/queues"),
    ("get", "/v1/queues/{queue}/limits"),
    ("put", "/v1/queues/{queue}/limits"),
}


async def test_the_document_covers_the_contract(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert "security" not in doc  # no token, no security scheme
    operations = {(m, p) for p, methods in doc["paths"].items() for m in methods}
    assert operations == CONTRACT
    ids = [op["operationId"] for methods in doc["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))
    for methods in doc["paths"].values():
        for op in methods.values():
            assert op["responses"]["500"] == {"$ref": "#/components/responses/500"}
            for status, response in op["responses"].items():
                if status.startswith("2"):
                    assert response["content"], (op["operationId"], status)
    problem = doc["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail"]
