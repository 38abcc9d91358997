"""The OpenAPI 3.1 document, generated from the endpoint definitions (`durable.server.
routing.Endpoint`): the same data the server routes and checks requests by."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import __version__
from .problems import PROBLEM_SCHEMA, PROBLEM_TYPE, TITLES
from .routing import MAX_BODY_BYTES, Endpoint

__all__ = ["document"]

_DESCRIPTION = f"""\
Start, steer and inspect durable workflows, and serve activities, from any language.

Values cross as JSON: datetimes, dates and times ISO 8601 strings, timedeltas seconds,
bytes base64 strings, Decimal and UUID strings, dataclasses objects, tuples and sets arrays;
a workflow's Python code rebuilds them from its type hints.

Every error is `application/problem+json` (RFC 9457) with a `detail` that says what to fix.
Request bodies are limited to {MAX_BODY_BYTES // (1024 * 1024)} MiB (413), and one value to
the payload limit of the journal (413)."""


def _operation(endpoint: Endpoint, secured: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": list(endpoint.tags),
    }
    if endpoint.params:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "description": p.description,
                "schema": p.schema,
                **({"style": "form", "explode": True} if p.schema.get("type") == "array" else {}),
            }
            for p in endpoint.params
        ]
    if endpoint.body is not None:
        op["requestBody"] = {
            "required": endpoint.body_required,
            "content": {"application/json": {"schema": endpoint.body}},
        }
    responses: dict[str, Any] = {}
    for status, (description, schema) in endpoint.responses.items():
        content = {endpoint.media_type: {"schema": schema}} if schema is not None else {}
        responses[str(status)] = {"description": description, "content": content}
        if not content:
            del responses[str(status)]["content"]
    problems = set(endpoint.problems) | {500, 503}
    if secured:
        problems.add(401)
    for status in sorted(problems):
        responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
    op["responses"] = responses
    return op


def document(endpoints: Sequence[Endpoint], *, secured: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``; ``secured``: every operation needs the
    bearer token."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint, secured)
    responses = {
        str(status): {
            "description": title,
            "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status, (title, _) in TITLES.items()
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "durable", "version": __version__, "description": _DESCRIPTION},
        "paths": paths,
        "components": {"schemas": {"Problem": PROBLEM_SCHEMA}, "responses": responses},
    }
    if secured:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
