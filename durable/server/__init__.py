"""durable's HTTP API (DESIGN §7): `create_app` gives the ASGI application that
``durable server`` runs on uvicorn and that a user's own Starlette or FastAPI app can mount.

Layout (one concept per module):

- app        create_app and the Service the endpoints share (client, shutdown)
- routing    endpoints as data: served by Starlette, checked, and documented from one place
- openapi    the OpenAPI 3.1 document generated from the endpoints
- problems   errors as application/problem+json; nothing unexpected leaks a traceback
- auth       the bearer token, and the refusal to listen beyond loopback without one
- schemas    the JSON shapes sent and taken (JSON Schema), values in their JSON forms
- workflows  start, list, describe, steps, history, result, published, signal, cancel, ...
- queries    POST /v1/workflows/{id}/query/{name}: a run's query, answered by a worker
- tasks      activities served by other languages; external completion by token
- events     server-sent events: run status changes and new steps, from store wake-ups
- schedules  /v1/schedules: list, create or update, describe, pause, resume, trigger, ...

Starlette and uvicorn come with durable-flow (an install without them is told how to fix it).
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "The durable HTTP server needs starlette and uvicorn: pip install 'durable-flow[server]'"
    ) from exc

from .app import Service, create_app

__all__ = ["Service", "create_app"]
