"""Server-sent events (``GET /v1/events``). (Filled in below.)"""

from __future__ import annotations

from .routing import Endpoint

__all__ = ["ENDPOINTS"]

ENDPOINTS: tuple[Endpoint, ...] = ()
