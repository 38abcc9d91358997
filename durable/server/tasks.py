"""The task endpoints (DESIGN §7): activities served by programs in other languages, and
external completion by token. (Filled in once `Client.poll_tasks` and friends land.)"""

from __future__ import annotations

from .routing import Endpoint

__all__ = ["ENDPOINTS"]

ENDPOINTS: tuple[Endpoint, ...] = ()
