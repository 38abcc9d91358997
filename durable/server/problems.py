"""Errors as RFC 9457 problems: every error the server answers is ``application/problem+json``.

A problem is ``{"type", "title", "status", "detail"}`` (plus members a kind adds, such as
``outcome`` on a stale task): ``type`` a URN naming the kind (``urn:durable:problem:
not-found``), ``title`` its short name, ``detail`` what was wrong and how to fix it. A handler
raises `Problem`; `ProblemMiddleware` turns it, Starlette's routing errors (unknown path,
wrong method) and anything unexpected into one. An unexpected exception is logged here,
with its traceback, and the client gets a 500 problem without one.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "PROBLEM_SCHEMA",
    "PROBLEM_TYPE",
    "TITLES",
    "Problem",
    "ProblemMiddleware",
    "handle_http",
    "handle_problem",
    "handle_store_error",
    "problem_body",
    "problem_response",
    "send_problem",
]

logger = logging.getLogger(__name__)

PROBLEM_TYPE = "application/problem+json"

#: The kinds of problem, by status: their ``title`` and the tail of their ``type`` URN.
TITLES: dict[int, tuple[str, str]] = {
    400: ("Bad Request", "bad-request"),
    401: ("Unauthorized", "unauthorized"),
    404: ("Not Found", "not-found"),
    405: ("Method Not Allowed", "method-not-allowed"),
    409: ("Conflict", "conflict"),
    413: ("Content Too Large", "too-large"),
    415: ("Unsupported Media Type", "unsupported-media-type"),
    422: ("Unprocessable Content", "unprocessable"),
    500: ("Internal Server Error", "internal"),
    503: ("Service Unavailable", "unavailable"),
    504: ("Gateway Timeout", "timeout"),
}

#: The JSON Schema of a problem, as the OpenAPI document publishes it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error (RFC 9457). `detail` says what was wrong and how to fix it.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "urn:durable:problem:<kind>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "outcome": {"description": "409 on a task: the outcome already stored"},
        "reason": {"description": "on a query: why it got no value (durable.QueryError)"},
        "cause": {
            "description": "409 on an update: the recorded error that refused it; 422 on a "
            "query: the error its function raised"
        },
    },
}


class Problem(Exception):
    """An error answered as a problem: ``status`` and a ``detail`` that says how to fix it;
    ``extra`` members go into the body as they are (JSON-able)."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}


def problem_body(status: int, detail: str, **extra: Any) -> dict[str, Any]:
    """The body of a problem of ``status``."""
    title, kind = TITLES.get(status, ("Error", "error"))
    return {
        "type": f"urn:durable:problem:{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }


def problem_response(problem: Problem) -> Response:
    """``problem`` as a response."""
    body = json.dumps(problem_body(problem.status, problem.detail, **problem.extra))
    return Response(body, problem.status, problem.headers, media_type=PROBLEM_TYPE)


async def send_problem(send: Send, problem: Problem) -> None:
    """Answer ``problem`` on a raw ASGI ``send`` (from a middleware, outside routing)."""
    response = problem_response(problem)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


async def handle_problem(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler for `Problem`."""
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def handle_store_error(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler for `durable.errors.StoreError`: the database cannot
    be used (unreachable, closed, a newer schema); 503, saying why (URLs come redacted)."""
    logger.warning("%s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        Problem(503, f"The database cannot be used right now: {exc} Retry later.")
    )


async def handle_http(request: Request, exc: Exception) -> Response:
    """Starlette's exception handler for its own `HTTPException` (404, 405)."""
    assert isinstance(exc, HTTPException)
    return problem_response(_from_http(exc, request.scope))


def _from_http(exc: HTTPException, scope: Scope) -> Problem:
    """Starlette's routing errors, said usefully."""
    path = scope.get("path", "")
    method = scope.get("method", "")
    if exc.status_code == 404:
        detail = (
            f"No endpoint at {path!r}. The API lives under /v1 (see /openapi.json for every "
            "path), e.g. GET /v1/workflows."
        )
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        detail = f"{method} is not allowed on {path!r}; use {allowed or 'another method'}."
    else:
        detail = str(exc.detail)
    problem = Problem(exc.status_code, detail)
    if exc.headers:
        problem.headers.update(exc.headers)
    return problem


class ProblemMiddleware:
    """The outermost layer of the app: a `Problem` raised by a middleware, or any
    unexpected exception raised before the response started, becomes a problem response
    (`handle_problem` and `handle_http` answer those raised in routing)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Problem as exc:
            if started:
                raise
            await send_problem(send, exc)
        except HTTPException as exc:
            if started:
                raise
            await send_problem(send, _from_http(exc, scope))
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                return  # the response is under way: the connection ends short
            await send_problem(
                send,
                Problem(
                    500,
                    "The server failed to answer this request; the error is in its log. "
                    "Retrying may help if it was transient.",
                ),
            )
