"""``GET /metrics``: durable's figures for Prometheus (`durable.telemetry`), with the queues
read from the database at each scrape, behind the server's token like every other path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..telemetry import FIGURES, REGISTRY

if TYPE_CHECKING:
    from .app import Service

__all__ = ["route"]


def route(service: Service) -> Route:
    """The ``/metrics`` route of the app whose `Service` is ``service``."""

    async def metrics(request: Request) -> Response:
        store = await service.store()
        now = service.client.clock.now()
        FIGURES.set_queues(await store.queue_stats(now), now)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"], include_in_schema=False)
