"""Bearer-token authentication: with a token, every request must carry
``Authorization: Bearer TOKEN`` (compared in constant time); without one, none is asked.

The server refuses to listen beyond loopback without a token (`check_exposure`): the API
starts, steers and terminates workflows, so an open port on a network is a remote control
for anyone who finds it.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from .problems import Problem, send_problem

__all__ = ["BearerAuth", "check_exposure", "is_loopback"]


class BearerAuth:
    """ASGI middleware answering 401 (a problem) to any HTTP request without the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                given = value
                break
        if hmac.compare_digest(given, self._expected):
            await self.app(scope, receive, send)
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


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
