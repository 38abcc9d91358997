"""The HTTP API refusing what it cannot do, always as a problem that says what to fix:
bad JSON and shapes, oversize bodies and values, unknown routes and methods, the bearer
token, unexpected errors (logged, never shown); and `durable server` refusing to listen
beyond loopback without a token."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serverkit import Api, problem, running, serving

import durable
from durable.server import create_app
from durable.server.auth import is_loopback

TESTS = Path(__file__).resolve().parent


async def test_bad_json_and_wrong_shapes_name_what_to_fix(api: Api) -> None:
    start = "/v1/workflows/hello/start"
    r = await api.http.post(
        start, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in problem(r, 400)
    r = await api.http.post(start, json=["ada"])
    assert "the request body must be object, not array" in problem(r, 400)
    r = await api.http.post(start, json={"args": "ada"})
    assert "the request body.args must be array, not string" in problem(r, 400)
    r = await api.http.post(start, json={"args": [], "arg": 1})
    assert "unknown member 'arg'" in problem(r, 400)
    r = await api.http.post(start, json={"args": ["a"], "if_exists": "replace"})
    assert '"return", "error", "restart"' in problem(r, 400)
    r = await api.http.post(start, json={"args": ["a"], "tags": {"k": 1}})
    assert "tags.k must be string" in problem(r, 400)
    r = await api.http.post(start, json={"args": ["a"], "id": ""})
    assert "must not be empty" in problem(r, 400)
    r = await api.http.get("/v1/workflows", params={"stauts": "failed"})
    assert "Unknown query parameter 'stauts'" in problem(r, 400)
    r = await api.http.get("/v1/workflows", params={"tag": "no-colon"})
    assert "must be KEY:VALUE" in problem(r, 400)
    r = await api.http.get("/v1/workflows/x/result", params={"wait": "soon"})
    assert "'wait' must be a finite number" in problem(r, 400)
    r = await api.http.get("/v1/workflows", params={"limit": "2.5"})
    assert "'limit' must be a finite integer" in problem(r, 400)
    assert (await api.http.get("/v1/workflows", params={"limit": "2.0"})).status_code == 200
    r = await api.http.get("/v1/workflows/x/result", params={"wait": 3600})
    assert "at most 60" in problem(r, 400)
    r = await api.http.post("/v1/workflows/x/signal/go", json={"value": 1, "extra": 2})
    assert "unknown member 'extra'" in problem(r, 400)
    assert [d async for d in api.client.list()] == []


async def test_oversize_bodies_and_values_are_413(api: Api) -> None:
    big = "x" * (5 * 1024 * 1024)
    r = await api.http.post("/v1/workflows/hello/start", json={"args": [big]})
    assert "over 4 MiB" in problem(r, 413)

    # Streamed without a length, it is cut off as it arrives.
    async def chunks() -> Any:
        for _ in range(6):
            yield b" " * (1024 * 1024)

    r = await api.http.post("/v1/workflows/hello/start", content=chunks())
    assert "over 4 MiB" in problem(r, 413)
    # Under the body limit, over the payload limit of one value.
    value = "y" * (3 * 1024 * 1024)
    r = await api.http.post("/v1/workflows/not_served/start", json={"args": [value]})
    assert "over the payload limit" in problem(r, 413)
    started = await api.start("approval", "o", id="sig")
    assert started["created"]
    r = await api.http.post("/v1/workflows/sig/signal/approve", json={"value": value})
    assert "over the payload limit" in problem(r, 413)
    assert [d.id async for d in api.client.list()] == ["sig"]


async def test_unknown_routes_and_methods(api: Api) -> None:
    r = await api.http.get("/v2/workflows")
    assert "No endpoint at '/v2/workflows'" in problem(r, 404)
    r = await api.http.delete("/v1/workflows/x")
    assert "DELETE is not allowed" in problem(r, 405)
    assert "GET" in r.headers["allow"]
    r = await api.http.get("/v1/workflows/hello/start")
    assert "use POST" in problem(r, 405)


async def test_the_token_is_required_when_set(store_url: str) -> None:
    async with running(store_url, token="s3cret", worker=False) as api:
        assert (await api.http.get("/v1/workflows")).status_code == 200
        doc = (await api.http.get("/openapi.json")).json()
        assert doc["security"] == [{"bearer": []}]
        async with httpx.AsyncClient(base_url=api.url) as anonymous:
            r = await anonymous.get("/v1/workflows")
            assert "Authorization: Bearer TOKEN" in problem(r, 401)
            assert r.headers["www-authenticate"].startswith("Bearer")
            r = await anonymous.get("/openapi.json")
            problem(r, 401)
            r = await anonymous.post(
                "/v1/workflows/hello/start",
                json={"args": ["a"]},
                headers={"Authorization": "Bearer s3cre"},
            )
            assert "token is wrong" in problem(r, 401)
            r = await anonymous.get("/v1/workflows", headers={"Authorization": "s3cret"})
            problem(r, 401)
        assert [d async for d in api.client.list()] == []


class _Broken(durable.Client):
    """A client whose listing fails unexpectedly (a bug, as the server sees it)."""

    async def list(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        raise RuntimeError("secret internals")
        yield  # pragma: no cover


async def test_an_unexpected_error_is_logged_and_answered_without_a_trace(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with _Broken(store_url) as client, serving(create_app(client)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            with caplog.at_level(logging.ERROR, logger="durable.server.problems"):
                r = await http.get("/v1/workflows")
            detail = problem(r, 500)
            assert "secret internals" not in r.text
            assert "in its log" in detail
            assert "secret internals" in caplog.text
            assert "Traceback" in caplog.text
            # A closed client is a database that cannot be used: 503, saying so.
            await client.aclose()
            r = await http.get("/v1/workflows/x")
            assert "database cannot be used" in problem(r, 503)


def test_loopback_hosts() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_DB", "DURABLE_TOKEN")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    return {**env, **extra}


def _durable(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_refuses_a_public_host_without_a_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    done = _durable("server", "--host", "0.0.0.0", "--db", db)
    assert done.returncode == 1
    assert "Refusing to listen on '0.0.0.0' without a token" in done.stderr
    assert "--token" in done.stderr
    assert "Traceback" not in done.stderr
    # A missing extra says how to install it.
    code = (
        "import sys; sys.modules['uvicorn'] = None; from durable.cli import main; "
        f"sys.exit(main(['server', '--db', {db!r}]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "pip install 'durable-flow[server]'" in done.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_command_serves_with_a_token_and_stops_gracefully(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'x.db'}"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable", "server", "--db", db, "--port", str(port)],
        env=_env(DURABLE_TOKEN="t0k"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        assert f"http://127.0.0.1:{port}" in banner
        assert "token required" in banner
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                r = httpx.get(f"{url}/v1/workflows", headers={"Authorization": "Bearer t0k"})
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert r.status_code == 200
        assert r.json() == {"workflows": [], "next_cursor": None}
        assert httpx.get(f"{url}/v1/workflows").status_code == 401
        doc = httpx.get(f"{url}/openapi.json", headers={"Authorization": "Bearer t0k"}).json()
        assert doc["openapi"] == "3.1.0"
        assert "/v1/workflows/{name}/start" in doc["paths"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    json.dumps(doc)  # the document is plain JSON
