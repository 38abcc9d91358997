"""Bearer-token authentication: with a token, every request must carry
``Authorization: Bearer TOKEN`` (compared in constant time); without one, none is asked.

The server refuses to listen beyond loopback without a token (`check_exposure`): the API
starts, steers and terminates workflows, so an open port on a network is a remote control
for anyone who finds it.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ..urls import is_loopback
from .problems import Problem, send_problem

__all__ = ["BearerAuth", "check_exposure", "is_loopback"]


# The console's own ways in: its sign-in page and its assets need no token.
_OPEN_PATHS = ("/login", "/static/")


class BearerAuth:
    """ASGI middleware answering 401 (a problem) to any HTTP request without the token.

    The console's browser sessions carry the token in the ``durable_token`` cookie
    (``SameSite=Strict``, so no other site's page can make the browser send it), set by
    its ``/login``; a console page asked for without it redirects there.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        given = b""
        cookie = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
            elif name == b"cookie":
                cookie = value
        if hmac.compare_digest(given, self._expected) or path.startswith(_OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        if not given and hmac.compare_digest(_cookie(cookie, b"durable_token"), self._token):
            await self.app(scope, receive, send)
            return
        if not given and _is_page(path) and scope.get("method") == "GET":
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [(b"location", b"/login"), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        detail = (
            "This server needs a token: send the header 'Authorization: Bearer TOKEN' with "
            "the token it was started with (--token or $DURABLE_TOKEN)."
            if not given
            else "The bearer token is wrong: send the token the server was started with."
        )
        problem = Problem(401, detail)
        problem.headers["WWW-Authenticate"] = 'Bearer realm="durable"'
        await send_problem(send, problem)


def _cookie(header: bytes, name: bytes) -> bytes:
    """The value of cookie ``name`` in a ``Cookie`` header (empty if absent)."""
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name:
            return value
    return b""


def _is_page(path: str) -> bool:
    """Whether ``path`` is one of the console's pages (not the API or its document)."""
    return not (path.startswith("/v1/") or path in ("/openapi.json", "/metrics"))


def check_exposure(host: str, token: str | None) -> None:
    """Refuse (`ValueError`, saying how to fix it) to serve ``host`` beyond loopback
    without a token."""
    if token or is_loopback(host):
        return
    raise ValueError(
        f"Refusing to listen on {host!r} without a token: anyone who can reach it could "
        "start, signal and terminate workflows. Give one with --token TOKEN or "
        "$DURABLE_TOKEN (clients then send 'Authorization: Bearer TOKEN'), or listen on "
        "127.0.0.1."
    )
