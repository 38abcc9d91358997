"""Metrics (DESIGN §9): a real worker process's Prometheus endpoint, the server's
``/metrics``, and the OpenTelemetry instruments through the SDK's in-memory reader."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
from clikit import WAIT, Cli, env, stop

import durable
from durable import telemetry
from durable.server import create_app
from durable.testing import WorkflowEnvironment


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` of a Prometheus text page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if found == labels:
            return float(match.group(3))
    return 0.0


def test_metrics_beyond_loopback_need_a_token(store_url: str, tmp_path: Path) -> None:
    """Secure by default: ``--metrics-host 0.0.0.0`` without a token is refused before the
    worker starts, saying how to fix it."""
    cli = Cli(db=store_url, cwd=tmp_path)
    port = str(_free_port())
    done = cli("worker", "cli_app", "--metrics-port", port, "--metrics-host", "0.0.0.0")
    assert done.returncode == 1
    assert "Refusing to serve metrics on '0.0.0.0' without a token" in done.stderr
    assert "--metrics-token" in done.stderr


def test_a_metrics_token_is_asked_of_every_scrape() -> None:
    port = _free_port()
    telemetry.serve(port, "127.0.0.1", token="s3cret")
    url = f"http://127.0.0.1:{port}/metrics"
    refused = httpx.get(url)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="durable"'
    assert "durable_" not in refused.text
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    page = httpx.get(url, headers={"Authorization": "Bearer s3cret"})
    assert page.status_code == 200
    assert "durable_workflows_started_total" in page.text


def test_a_worker_serves_its_figures_to_prometheus(store_url: str, tmp_path: Path) -> None:
    cli = Cli(db=store_url, cwd=tmp_path)
    port = _free_port()
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            cli.command("worker", "cli_app", "--metrics-port", str(port)),
            cwd=tmp_path,
            env=env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + WAIT
        while f"Metrics at http://127.0.0.1:{port}/metrics" not in out.read_text():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "no metrics banner"
            time.sleep(0.05)
        before = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert _value(before, "durable_workflows_started_total", workflow="fail_with") == 0
        cli.ok("start", "greet_when_told", "--input", '"ada"', "--id", "g1")
        cli.ok("signal", "g1", "go", "true")
        cli.ok("result", "g1", "--wait", "20")
        cli.ok("start", "fail_with", "--input", '"nope"', "--id", "f1")
        assert cli("result", "f1", "--wait", "20").returncode == 1
        page = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        assert stop(proc) == 0, err.read_text()

    assert _value(page, "durable_workflows_started_total", workflow="greet_when_told") == 1
    assert _value(page, "durable_workflows_started_total", workflow="fail_with") == 1
    closed = "durable_workflows_closed_total"
    assert _value(page, closed, workflow="greet_when_told", status="completed") == 1
    assert _value(page, closed, workflow="fail_with", status="failed") == 1
    attempts = "durable_activity_attempts_total"
    assert _value(page, attempts, activity="greet", outcome="completed") == 1
    assert _value(page, attempts, activity="explode", outcome="failed") == 2  # two attempts
    execution = "durable_activity_execution_seconds_count"
    assert _value(page, execution, activity="explode", outcome="failed") == 2
    waited = "durable_activity_schedule_to_start_seconds_count"
    assert _value(page, waited, activity="greet", queue="default") == 1  # first attempts only
    # greet_when_told: its activity, its publish? no: greet and the signal wait
    assert _value(page, "durable_workflow_steps_total", workflow="greet_when_told") >= 2
    hits = _value(page, "durable_workflow_cache_total", result="hit")
    misses = _value(page, "durable_workflow_cache_total", result="miss")
    assert hits + misses >= 4


@durable.activity(queue="gpu")
async def render(frame: int) -> int:
    """Served by no worker of these tests: its task waits on queue ``gpu``."""
    return frame


@durable.workflow
async def renders(frames: int) -> list[int]:
    """Render frames on the gpu queue."""
    return await durable.map(render, list(range(frames)))


async def test_the_server_serves_queue_figures_read_at_scrape_time(store_url: str) -> None:
    async with durable.connect(store_url) as client:
        app = create_app(client, token="s3cret")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://durable") as http:
            refused = await http.get("/metrics")
            assert refused.status_code == 401
            auth = {"Authorization": "Bearer s3cret"}
            empty = (await http.get("/metrics", headers=auth)).text
            assert "durable_queue_tasks_waiting" in empty  # described, with no queue yet
            assert _value(empty, "durable_queue_tasks_waiting", queue="gpu") == 0
            async with durable.Worker(client, workflows=[renders]):  # and no activity
                handle = await client.start(renders, 3)
                for _ in range(400):
                    page = await http.get("/metrics", headers=auth)
                    if _value(page.text, "durable_queue_tasks_waiting", queue="gpu") == 3:
                        break
                    await asyncio.sleep(0.025)
                await handle.terminate("done looking")
    assert page.headers["content-type"].startswith("text/plain")
    assert _value(page.text, "durable_queue_tasks_waiting", queue="gpu") == 3
    assert _value(page.text, "durable_queue_oldest_task_age_seconds", queue="gpu") >= 0
    assert 'durable_queue_oldest_task_age_seconds{queue="gpu"}' in page.text


async def test_opentelemetry_instruments_report_through_an_sdk() -> None:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    @durable.activity
    async def double(x: int) -> int:
        return 2 * x

    @durable.workflow
    async def otel_doubles(n: int) -> int:
        return sum(await durable.map(double, list(range(n))))

    async with WorkflowEnvironment(workflows=[otel_doubles], activities=[double]) as env:
        assert await env.client.execute(otel_doubles, 3) == 6

    points: dict[str, list[object]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)

    def attrs(name: str) -> list[dict[str, object]]:
        return [dict(p.attributes or {}) for p in points.get(name, [])]  # type: ignore[attr-defined]

    assert {"workflow": "otel_doubles"} in attrs("durable.workflows.started")
    assert {"workflow": "otel_doubles", "status": "completed"} in attrs("durable.workflows.closed")
    execution = [
        p for p in points["durable.activity.execution"]
        if dict(p.attributes or {}) == {"activity": "double", "outcome": "completed"}  # type: ignore[attr-defined]
    ]  # fmt: skip
    assert execution
    assert execution[0].count == 3  # type: ignore[attr-defined]
    assert telemetry.FIGURES.attempts[("double", "completed")] == 3
