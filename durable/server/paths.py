"""Ids that contain ``/``: workflow ids are any string, so ``orders/7`` is addressed as
``/v1/workflows/orders%2F7``. Servers decode the path before routing (``/v1/workflows/
orders/7``, which no route matches), so `EncodedSlashes` routes on the path with ``%2F``
and ``%25`` left encoded, and `path_param` decodes them in the parameter's value. Exact:
an id with a literal ``%2F`` in it arrives as ``%252F`` and comes out as ``%2F``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ID_DESCRIPTION", "EncodedSlashes", "path_param"]

ID_DESCRIPTION = "workflow id, percent-encoded (a '/' in it as %2F)"

_KEPT = re.compile(rb"%(?:2[Ff]|25)")
_ESCAPED = "durable.escaped_path"  # scope key: the path was routed with %2F and %25 kept


class EncodedSlashes:
    """ASGI middleware: routes an API request whose raw path has ``%2F`` or ``%25`` on
    the path decoded except for those (upper case), so an id's ``/`` stays in its segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes | None = scope.get("raw_path")
        if scope["type"] == "http" and raw and raw.startswith(b"/v1/") and _KEPT.search(raw):
            raw = raw.split(b"?", 1)[0]
            parts = _KEPT.split(raw)
            kept = [m.group().upper() for m in _KEPT.finditer(raw)]
            path = unquote(parts[0].decode("latin-1"), errors="strict")
            for token, part in zip(kept, parts[1:], strict=True):
                path += token.decode() + unquote(part.decode("latin-1"), errors="strict")
            scope = {**scope, "path": path, _ESCAPED: True}
        await self.app(scope, receive, send)


def path_param(scope: Scope, value: str) -> str:
    """A path parameter's value, with the ``%2F`` and ``%25`` that `EncodedSlashes` kept
    decoded."""
    if not scope.get(_ESCAPED):
        return value
    return re.sub(r"%(2F|25)", lambda m: "/" if m.group(1) == "2F" else "%", value)
