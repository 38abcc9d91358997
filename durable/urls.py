"""Database URLs as they may be shown: secrets masked, everything else as written; and
whether an address to listen on is reachable only from this machine (`is_loopback`).

Logs, error messages, reprs, the worker's banner and the CLI show a database URL only
through `redact_url`: the password of the userinfo and the values of `SECRET_PARAMETERS`
become ``***``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import unquote_plus, urlsplit

__all__ = ["SECRET_PARAMETERS", "is_loopback", "is_secret_parameter", "redact_url"]


#: Query parameters whose values are secrets (compared in lower case): libpq's
#: ``password`` and ``sslpassword``, and the ``token`` of token-authenticated services.
#: ``passfile`` and ``sslkey`` name files, not secrets, and are shown.
SECRET_PARAMETERS = frozenset({"password", "sslpassword", "token"})


def is_secret_parameter(key: str) -> bool:
    """Whether a URL query parameter named ``key`` carries a secret (see `redact_url`)."""
    return key.lower() in SECRET_PARAMETERS


def redact_url(url: str) -> str:
    """``url`` as it may be shown: in logs, error messages, reprs and the CLI's output.

    The password of the userinfo and the values of `SECRET_PARAMETERS` become ``***``;
    everything else is kept as written, so the URL still says which database it is::

        >>> redact_url("postgresql://app:s3cret@db/prod?sslmode=require&password=s3cret")
        'postgresql://app:***@db/prod?sslmode=require&password=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        # Too malformed to take apart: keep the scheme and hide the rest.
        scheme, sep, _ = url.partition("://")
        return f"{scheme}://***" if sep else "***"
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    query = parts.query
    if query:
        pieces = []
        for piece in query.split("&"):
            key, equals, _ = piece.partition("=")
            secret = equals and is_secret_parameter(unquote_plus(key))
            pieces.append(f"{key}=***" if secret else piece)
        query = "&".join(pieces)
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide: the URL exactly as given
    # Put it back by hand: urlunsplit would drop the empty authority of "scheme:///path".
    scheme = url[: len(parts.scheme) + 1] if parts.scheme else ""
    authority = f"//{netloc}" if url[len(scheme) :].startswith("//") else ""
    query = f"?{query}" if query else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{scheme}{authority}{parts.path}{query}{fragment}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) is reachable only from this machine:
    servers bind beyond it only with a token."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
