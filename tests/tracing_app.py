"""Run by tests/test_tracing.py in a process of its own (an OpenTelemetry tracer provider is
process-global): records the spans of a traced run that changes workers half-way, and
prints them as JSON lines.

    python tracing_app.py DATABASE_URL
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import durable

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)

FLAKY: dict[str, int] = {}


@durable.activity(retry=durable.RetryPolicy(initial_interval=timedelta(milliseconds=10)))
async def pack(order: str) -> str:
    """Fail the first attempt, then pack."""
    FLAKY[order] = FLAKY.get(order, 0) + 1
    if FLAKY[order] == 1:
        raise ConnectionError("scanner offline")
    return f"packed {order}"


@durable.workflow
async def label(order: str) -> str:
    """A child: print a label."""
    return f"label {order}"


@durable.workflow
async def ship(order: str) -> list[str]:
    """Pack, wait for the go signal, then a child."""
    packed = await pack(order)
    await durable.wait_signal("go")
    return [packed, await label(order)]


async def until_waiting(handle: durable.WorkflowHandle[list[str]]) -> None:
    for _ in range(800):
        if any(p.kind == "signal" for p in (await handle.describe()).pending):
            return
        await asyncio.sleep(0.025)
    raise SystemExit("the run never waited for its signal")


async def main(url: str) -> None:
    tracer = trace.get_tracer("tracing_app")
    async with durable.connect(url) as client:
        with tracer.start_as_current_span("http request"):
            handle = await client.start(ship, "o-1", id="o-1")
        async with durable.Worker(client, workflows=[ship, label], activities=[pack]):
            await until_waiting(handle)
        # A new worker (an empty cache: it rebuilds the run by replay) takes it from here.
        async with durable.Worker(client, workflows=[ship, label], activities=[pack]):
            await handle.signal("go", True)
            await handle.result()
        stored = await (await client._open()).get_run("o-1")
        assert stored is not None
        print(json.dumps({"stored": stored.trace}))
    for span in EXPORTER.get_finished_spans():
        ctx = span.get_span_context()
        assert ctx is not None
        print(
            json.dumps(
                {
                    "name": span.name,
                    "trace": f"{ctx.trace_id:032x}",
                    "span": f"{ctx.span_id:016x}",
                    "parent": f"{span.parent.span_id:016x}" if span.parent else None,
                    "status": span.status.status_code.name,
                    "description": span.status.description,
                    "attributes": dict(span.attributes or {}),
                }
            )
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
