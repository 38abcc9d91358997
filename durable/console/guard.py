"""The console's protections: the token login, cross-site request refusal, and headers.

- **Login.** When the server has a token, the API wants ``Authorization: Bearer TOKEN`` on
  every request. A browser cannot send that header on a link, so the console takes the
  token once (``/login``) and keeps it in a cookie (``HttpOnly``, ``SameSite=Strict``);
  `durable.server.auth.BearerAuth` accepts that cookie for the console's pages only.
- **Cross-site requests.** Every form that changes something (signal, cancel, terminate)
  carries a token that must equal the one in the visitor's ``durable_csrf`` cookie (the
  double-submit pattern: another site can make the browser send the cookie, but cannot
  read it to put it in the form), and a POST whose ``Origin`` names another site is refused
  even before that.
- **Headers.** A Content-Security-Policy that allows only the console's own scripts and
  styles (so even a value that escaped escaping could not run), no framing, no sniffing.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "CSRF_COOKIE",
    "SECURITY_HEADERS",
    "TOKEN_COOKIE",
    "check_csrf",
    "csrf_token",
    "remember_csrf",
    "same_origin",
    "same_secret",
]

TOKEN_COOKIE = "durable_token"  # the server's token, kept after /login
CSRF_COOKIE = "durable_csrf"  # the double-submit value forms must repeat

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def csrf_token(request: Request) -> str:
    """The visitor's CSRF value: from their cookie, or a new one (set by `remember_csrf`)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) >= 32:
        return existing
    fresh: str = request.state.__dict__.setdefault("csrf_fresh", secrets.token_urlsafe(32))
    return fresh


def remember_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie on ``response`` when `csrf_token` made a new value."""
    fresh = request.state.__dict__.get("csrf_fresh")
    if fresh is not None:
        response.set_cookie(
            CSRF_COOKIE, fresh, httponly=True, samesite="strict", path="/", max_age=86400 * 30
        )


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from this site: its ``Origin`` (or, lacking
    it, its ``Referer``) names this host, or neither header is there (not a browser
    following another site's form)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return source != "null"
    host = request.headers.get("host", "")
    return urlsplit(source).netloc == host


def same_secret(given: str, expected: str) -> bool:
    """Whether two secrets (a token, a CSRF value) are equal, compared in constant time."""
    return hmac.compare_digest(given.encode(), expected.encode())


def check_csrf(request: Request, submitted: str | None) -> bool:
    """Whether a form's CSRF value matches the visitor's cookie (constant time)."""
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not submitted:
        return False
    return same_secret(submitted, expected)
