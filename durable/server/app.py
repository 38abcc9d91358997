"""`create_app`: the ASGI application of `durable server`, mountable in a user's own app.

    from starlette.applications import Starlette
    from starlette.routing import Mount

    client = durable.connect("postgresql://app@db/app")
    app = Starlette(routes=[Mount("/durable", app=create_app(client, token=TOKEN))])

Layers, outermost first: `ProblemMiddleware` (any unexpected error becomes a 500 problem,
logged here), `BearerAuth` when there is a token, then Starlette's routing over the
endpoints of `durable.server.workflows`, `.logs`, `.tasks`, `.events` and `.schedules`,
``/openapi.json`` generated from the same definitions, and ``/metrics`` for Prometheus
(`.metrics`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..client import Client
from ..console.pages import routes as console_routes
from ..errors import StoreError
from ..store import Store
from . import (
    events,
    logs,
    metrics,
    openapi,
    queries,
    queues,
    repair,
    retention,
    schedules,
    tasks,
    updates,
    workflows,
)
from .auth import BearerAuth
from .paths import EncodedSlashes
from .problems import (
    Problem,
    ProblemMiddleware,
    handle_http,
    handle_problem,
    handle_store_error,
)
from .routing import Endpoint, json_response, starlette_routes

__all__ = ["ENDPOINTS", "Service", "create_app"]

T = TypeVar("T")

#: Every endpoint of the API, in the order the OpenAPI document lists them.
ENDPOINTS: Sequence[Endpoint] = (
    *workflows.ENDPOINTS,
    *updates.ENDPOINTS,
    *queries.ENDPOINTS,
    *logs.ENDPOINTS,
    *repair.ENDPOINTS,
    *tasks.ENDPOINTS,
    *events.ENDPOINTS,
    *schedules.ENDPOINTS,
    *retention.ENDPOINTS,
    *queues.ENDPOINTS,
)


class Service:
    """What the endpoints share: the client, and whether the server is shutting down.

    Long polls and event streams end early once `close` is called (``durable server``
    calls it when uvicorn begins its shutdown; an app that mounts this one calls
    ``app.state.durable.close()`` from its own shutdown), so a graceful shutdown does not
    wait for them.
    """

    def __init__(self, client: Client, token: str | None) -> None:
        self.client = client
        self.token = token
        self._closing = asyncio.Event()

    @property
    def closing(self) -> bool:
        """Whether `close` was called."""
        return self._closing.is_set()

    def close(self) -> None:
        """End long polls and event streams now (idempotent); requests still answer."""
        self._closing.set()

    async def store(self) -> Store:
        """The client's store (opened on first use)."""
        return await self.client._open()

    async def unless_closing(self, fn: Callable[[], Awaitable[T]]) -> list[T]:
        """``[await fn()]``, or ``[]`` if the server began shutting down first (``fn`` is
        then cancelled)."""
        result: list[T] = []
        if self.closing:
            return result
        try:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await self._closing.wait()
                    tg.cancel_scope.cancel()

                async def work() -> None:
                    result.append(await fn())
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                tg.start_soon(work)
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None  # as if fn had been awaited here
            raise
        return result


def create_app(client: Client, token: str | None = None) -> Starlette:
    """The HTTP API (DESIGN §7) over ``client`` as a Starlette application.

    With ``token``, every request must send ``Authorization: Bearer <token>``. The app
    does not close ``client``: its owner does. ``app.state.durable`` is its `Service`.
    """
    service = Service(client, token or None)
    document = openapi.document(ENDPOINTS, secured=service.token is not None)

    async def openapi_json(request: Request) -> Response:
        return json_response(document)

    routes = [
        *starlette_routes(ENDPOINTS, service),
        *console_routes(),
        Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
        metrics.route(service),
    ]
    middleware = [Middleware(ProblemMiddleware), Middleware(EncodedSlashes)]
    if service.token is not None:
        middleware.append(Middleware(BearerAuth, token=service.token))
    handlers: dict[Any, Any] = {
        Problem: handle_problem,
        HTTPException: handle_http,
        StoreError: handle_store_error,
    }
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.durable = service
    return app
