"""Helpers of the HTTP API tests (tests/test_server*.py): a real uvicorn server on a free
loopback port, over a real database, with a real worker serving tests/server_app.py, and
an httpx client talking to it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import server_app
import uvicorn

import durable
from durable.server import Service, create_app

WAIT = 20.0  # seconds a test waits for a workflow to get somewhere


@dataclass
class Api:
    """A running server: its base ``url``, an ``http`` client of it (sending the token, if
    any), the durable ``client`` it serves, and its `Service`."""

    url: str
    http: httpx.AsyncClient
    client: durable.Client
    service: Service

    async def start(self, name: str, *args: Any, **body: Any) -> dict[str, Any]:
        """Start ``name`` over HTTP (201 expected); the answer's body."""
        r = await self.http.post(f"/v1/workflows/{name}/start", json={"args": list(args), **body})
        assert r.status_code == 201, r.text
        out: dict[str, Any] = r.json()
        return out

    async def outcome(self, workflow_id: str) -> dict[str, Any]:
        """The run's outcome, waiting for it to close (200 expected)."""
        r = await self.http.get(f"/v1/workflows/{workflow_id}/result", params={"wait": WAIT})
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out


def problem(response: httpx.Response, status: int) -> str:
    """Check ``response`` is a problem of ``status``; its detail."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:durable:problem:")
    assert body["title"]
    assert body["detail"]
    assert "Traceback" not in response.text
    detail: str = body["detail"]
    return detail


@asynccontextmanager
async def serving(app: Any, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on uvicorn on a free port of ``host`` until the block ends; its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        service = getattr(getattr(app, "state", None), "durable", None)
        if service is not None:
            service.close()
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def running(
    url: str,
    token: str | None = None,
    *,
    worker: bool = True,
    workflows: list[Any] | None = None,
) -> AsyncIterator[Api]:
    """The API over database ``url``, with a worker serving server_app (or ``workflows``)
    beside it, unless not ``worker``."""
    async with durable.connect(url) as client:
        app = create_app(client, token)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with serving(app) as base:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
                api = Api(base, http, client, app.state.durable)
                if not worker:
                    yield api
                    return
                async with durable.Worker(
                    client,
                    workflows=workflows or server_app.WORKFLOWS,
                    activities=[] if workflows else server_app.ACTIVITIES,
                ):
                    yield api
