"""Traces of durable's work through ``opentelemetry-api`` (DESIGN §9).

An application that installs the OpenTelemetry SDK and a ``TracerProvider`` gets:

    StartWorkflow:place_order        client.start, inside whatever span was current
    ├─ RunWorkflow:place_order       each step of the run (a worker replaying or advancing it)
    ├─ RunActivity:charge            each activity attempt (an error status when it failed)
    └─ RunWorkflow:ship              a child workflow's steps, in the same trace

The start span's context is stored on the run (``runs.trace``, a W3C ``traceparent``), so
every span of the run — whichever worker takes it, after any crash, months later — joins
the same trace with the same parent. Children and continue-as-new successors inherit it.

Without an SDK nothing is recorded and nothing is stored: `enabled` is checked first (a
cached answer), and a span is then a shared no-op context manager.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["activity_span", "enabled", "fail", "start_span", "step_span"]

_TRACER = trace.get_tracer("durable")
_PROPAGATOR = TraceContextTextMapPropagator()
_NONE: AbstractContextManager[Any] = nullcontext()  # what a span is when tracing is off


_RECHECK = 1.0  # seconds between looks at the global tracer provider
_state = {"enabled": False, "next": 0.0}


def enabled() -> bool:
    """Whether a real ``TracerProvider`` is installed (spans would be recorded). Looked up
    at most once a second (the lookup costs more than a step can afford): a provider
    installed while workers run is seen within a second."""
    now = time.monotonic()
    if now < _state["next"]:
        return bool(_state["enabled"])
    on = not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)
    _state["enabled"], _state["next"] = on, now + _RECHECK
    return on


def _traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def _parent(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def start_span(workflow: str, workflow_id: str) -> AbstractContextManager[str | None]:
    """``StartWorkflow:<workflow>`` around a client's start; gives the ``traceparent`` to
    store on the run (``None`` when tracing is off)."""
    return _start_span(workflow, workflow_id) if enabled() else _NONE


@contextmanager
def _start_span(workflow: str, workflow_id: str) -> Iterator[str | None]:
    attributes = {"durable.workflow": workflow, "durable.workflow_id": workflow_id}
    with _TRACER.start_as_current_span(
        f"StartWorkflow:{workflow}", kind=SpanKind.PRODUCER, attributes=attributes
    ):
        yield _traceparent()


def step_span(
    workflow: str, workflow_id: str, run_id: str, parent: str | None
) -> AbstractContextManager[None]:
    """``RunWorkflow:<workflow>`` around one step of a run whose trace is ``parent``."""
    return _step_span(workflow, workflow_id, run_id, parent) if enabled() else _NONE


@contextmanager
def _step_span(workflow: str, workflow_id: str, run_id: str, parent: str | None) -> Iterator[None]:
    attributes = {
        "durable.workflow": workflow,
        "durable.workflow_id": workflow_id,
        "durable.run_id": run_id,
    }
    with _TRACER.start_as_current_span(
        f"RunWorkflow:{workflow}",
        context=_parent(parent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    ):
        yield


def activity_span(
    activity: str, info: Any, attempt: int, parent: str | None
) -> AbstractContextManager[Any]:
    """``RunActivity:<activity>`` around one attempt (``info``: its `ActivityInfo`); gives
    the span (``None`` when tracing is off) so the caller can mark a failure."""
    return _activity_span(activity, info, attempt, parent) if enabled() else _NONE


@contextmanager
def _activity_span(activity: str, info: Any, attempt: int, parent: str | None) -> Iterator[Any]:
    attributes = {
        "durable.activity": activity,
        "durable.workflow_id": info.workflow_id,
        "durable.run_id": info.run_id,
        "durable.attempt": attempt,
    }
    with _TRACER.start_as_current_span(
        f"RunActivity:{activity}",
        context=_parent(parent),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def fail(span: Any, message: str) -> None:
    """Mark ``span`` (from `activity_span`) as failed with ``message``."""
    if span is not None:
        span.set_status(Status(StatusCode.ERROR, message))
