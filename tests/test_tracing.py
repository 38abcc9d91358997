"""Spans (DESIGN §9) with the OpenTelemetry SDK's in-memory exporter, in a process of its
own (tests/tracing_app.py): their parentage across a change of worker, a child workflow
and a failed attempt, and the trace context stored on the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from clikit import TESTS, env


def test_a_runs_spans_descend_from_its_start_across_workers(store_url: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(TESTS / "tracing_app.py"), store_url],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    stored = lines[0]["stored"]
    spans = lines[1:]
    [request] = [s for s in spans if s["name"] == "http request"]
    [start] = [s for s in spans if s["name"] == "StartWorkflow:ship"]
    assert start["parent"] == request["span"]
    # the run keeps the start span's context: W3C traceparent 00-<trace>-<span>-<flags>
    assert stored.startswith(f"00-{start['trace']}-{start['span']}-")
    assert {s["trace"] for s in spans} == {request["trace"]}  # one trace, every span

    steps = [s for s in spans if s["name"] == "RunWorkflow:ship"]
    assert len(steps) >= 3  # the first step, the one after the signal (by the second worker)
    assert {s["parent"] for s in steps} == {start["span"]}
    assert {s["attributes"]["durable.workflow_id"] for s in steps} == {"o-1"}
    children = [s for s in spans if s["name"] == "RunWorkflow:label"]
    assert children
    assert {s["parent"] for s in children} == {start["span"]}

    attempts = sorted(
        (s for s in spans if s["name"] == "RunActivity:pack"),
        key=lambda s: s["attributes"]["durable.attempt"],
    )
    assert [s["attributes"]["durable.attempt"] for s in attempts] == [1, 2]
    assert {s["parent"] for s in attempts} == {start["span"]}
    assert attempts[0]["status"] == "ERROR"
    assert attempts[0]["description"] == "ConnectionError: scanner offline"
    assert attempts[1]["status"] == "UNSET"
