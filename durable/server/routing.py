"""The routes, defined once as data: `Endpoint` says method, path, parameters, body and
responses; `starlette_routes` serves them and `durable.server.openapi` documents them from
the same definitions, so the document cannot drift from what the server does.

A handler takes a `Call` (the request with its path and query parameters parsed and its
JSON body read, size-limited and checked against the endpoint's body schema) and returns a
`Response`. Parameters and bodies are checked here by the schema the document publishes
(`check`, a small subset of JSON Schema), and refused with a 400 problem that names the
field and says what it must be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .paths import path_param
from .problems import Problem

if TYPE_CHECKING:
    from .app import Service

__all__ = [
    "MAX_BODY_BYTES",
    "Call",
    "Endpoint",
    "Param",
    "check",
    "json_response",
    "starlette_routes",
]

MAX_BODY_BYTES = 4 * 1024 * 1024  # a request body past this is refused (413) unread


@dataclass(frozen=True)
class Param:
    """A path or query parameter: ``schema`` is its JSON Schema (string, integer, number,
    or an array of strings for a repeatable query parameter)."""

    name: str
    where: str  # "path" | "query"
    schema: dict[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    """One operation of the API. ``responses``: status -> (description, JSON Schema of the
    body or None, media type); every endpoint also documents its problems."""

    method: str
    path: str
    operation_id: str
    summary: str
    handler: Callable[[Call], Awaitable[Response]]
    responses: Mapping[int, tuple[str, dict[str, Any] | None]]
    params: Sequence[Param] = ()
    body: dict[str, Any] | None = None
    body_required: bool = False
    problems: Sequence[int] = (400,)
    media_type: str = "application/json"
    tags: Sequence[str] = ()


@dataclass
class Call:
    """A request as a handler sees it: path and query parameters parsed, body checked."""

    request: Request
    service: Service
    path: dict[str, str]
    query: dict[str, Any]
    body: Any = field(default=None)


def json_response(value: Any, status: int = 200) -> Response:
    """``value`` (plain JSON data) as a JSON response."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return Response(text, status, media_type="application/json")


# ---- checking values against the schemas the document publishes ------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    # JSON Schema's integer is any number without a fraction (1.0 too).
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def check(value: Any, schema: Mapping[str, Any], where: str) -> None:
    """Raise a 400 `Problem` naming ``where`` if ``value`` does not fit ``schema`` (the
    subset of JSON Schema the endpoints use: type, enum, properties, required,
    additionalProperties, items, minItems, maxItems, minimum, maximum, minLength)."""
    kinds = schema.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_TYPES[k](value) for k in names):
            got = "null" if value is None else type(value).__name__
            got = {"dict": "object", "list": "array", "str": "string", "bool": "boolean"}.get(
                got, got
            )
            raise Problem(400, f"{where} must be {' or '.join(names)}, not {got} {_show(value)}.")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(c) for c in schema["enum"])
        raise Problem(400, f"{where} must be one of {choices}, not {_show(value)}.")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise Problem(400, f"{where} must be at least {schema['minimum']}, not {value}.")
        if "maximum" in schema and value > schema["maximum"]:
            raise Problem(400, f"{where} must be at most {schema['maximum']}, not {value}.")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise Problem(400, f"{where} must not be empty.")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                raise Problem(400, f"{where} needs the member {name!r}.")
        for name, member in value.items():
            if name in properties:
                check(member, properties[name], f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                known = ", ".join(properties) or "none"
                raise Problem(400, f"{where} has an unknown member {name!r} (known: {known}).")
            elif isinstance(schema.get("additionalProperties"), dict):
                check(member, schema["additionalProperties"], f"{where}.{name}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            raise Problem(400, f"{where} is empty: it needs at least {schema['minItems']}.")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Problem(
                400, f"{where} has {len(value)} items: at most {schema['maxItems']} at once."
            )
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            check(item, schema["items"], f"{where}[{i}]")


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else "NaN"
    return text if len(text) <= 80 else text[:77] + "..."


def _query(request: Request, param: Param) -> Any:
    schema = param.schema
    if schema.get("type") == "array":
        values: Any = request.query_params.getlist(param.name)
        check(values, schema, f"query parameter {param.name!r}")
        return values
    text = request.query_params.get(param.name)
    if text is None:
        if param.required:
            raise Problem(400, f"The query parameter {param.name!r} is required.")
        return schema.get("default")
    value: Any = text
    kind = schema.get("type")
    if kind in ("integer", "number"):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (kind == "integer" and not value.is_integer()):
            raise Problem(
                400, f"The query parameter {param.name!r} must be a finite {kind}, not {text!r}."
            )
        if kind == "integer":
            value = int(value)
    check(value, schema, f"query parameter {param.name!r}")
    return value


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (by its declared length at
    once, or while it streams in)."""
    declared = request.headers.get("content-length")
    too_large = Problem(
        413,
        f"The request body is over {limit // (1024 * 1024)} MiB. Send less: pass a reference "
        "(a file path, an object-store key) rather than the data itself.",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, endpoint: Endpoint) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        if endpoint.body_required:
            raise Problem(400, "This endpoint needs a JSON object as its request body.")
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400,
            f"The request body is not valid JSON ({exc}). Send a JSON object with "
            "Content-Type: application/json.",
        ) from None
    assert endpoint.body is not None
    check(value, endpoint.body, "the request body")
    return value


def _handler(endpoint: Endpoint, service: Service) -> Callable[[Request], Awaitable[Response]]:
    known = {p.name for p in endpoint.params if p.where == "query"}

    async def handle(request: Request) -> Response:
        path = {k: path_param(request.scope, str(v)) for k, v in request.path_params.items()}
        for name in request.query_params:
            if name not in known:  # a typo (?stauts=) must not pass as "no filter"
                choices = ", ".join(sorted(known)) or "none"
                raise Problem(
                    400, f"Unknown query parameter {name!r} (this endpoint takes: {choices})."
                )
        query = {p.name: _query(request, p) for p in endpoint.params if p.where == "query"}
        body = await _body(request, endpoint) if endpoint.body is not None else None
        return await endpoint.handler(Call(request, service, path, query, body))

    handle.__name__ = endpoint.operation_id
    return handle


def starlette_routes(endpoints: Sequence[Endpoint], service: Service) -> list[Route]:
    """One Starlette route per path, dispatching on the method (another method: 405)."""
    by_path: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        by_path.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    routes = []
    for path, methods in by_path.items():
        handlers = {m: _handler(e, service) for m, e in methods.items()}

        async def dispatch(
            request: Request, handlers: dict[str, Callable[..., Any]] = handlers
        ) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await handlers[method](request)  # type: ignore[no-any-return]

        routes.append(Route(path, dispatch, methods=list(methods)))
    return routes
