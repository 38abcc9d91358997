"""Metrics of durable's work, for dashboards and alerts (DESIGN §9).

Every process keeps its figures here: a worker its workflows and activity attempts, the
server what it reads from the database at scrape time (queue depth, oldest waiting task).
They are published two ways:

- **Prometheus:** `REGISTRY` (a `prometheus_client.CollectorRegistry` of durable's own,
  so nothing clashes with an application's metrics), served by ``durable worker
  --metrics-port 9464`` and by ``GET /metrics`` on `durable server`.
- **OpenTelemetry:** instruments of the meter ``durable`` (observable counters and
  histograms). Through ``opentelemetry-api`` alone they do nothing; an application that
  installs the SDK and a ``MeterProvider`` gets them in its pipeline.

The names (Prometheus spelling; OpenTelemetry uses dots: ``durable.workflows.started``)
and their labels, all of low cardinality (names of workflows, activities and queues,
statuses — never ids):

    durable_workflows_started_total{workflow}          runs this worker took a first step of
    durable_workflows_closed_total{workflow,status}    runs it closed: completed, failed,
                                                       cancelled, continued_as_new
    durable_workflow_steps_total{workflow}             durable operations journaled (activity,
                                                       timer, child, signal wait, publish...):
                                                       the cost unit
    durable_workflow_cache_total{result}               steps that found their run in the
                                                       worker's cache (hit) or replayed (miss)
    durable_activity_attempts_total{activity,outcome}  attempts: completed, failed, cancelled
    durable_activity_schedule_to_start_seconds{activity,queue}   histogram: scheduled -> first
                                                       attempt started
    durable_activity_execution_seconds{activity,outcome}         histogram: one attempt's run
    durable_queue_tasks_waiting{queue}                 activity tasks due, waiting for a worker
    durable_queue_oldest_task_age_seconds{queue}       how long the oldest of them has waited
    durable_queue_runs_waiting{queue}                  open runs a worker could step now

Recording costs a dictionary update (no lock, no label lookup): the step loop pays next to
nothing for it. The Prometheus collector reads a copy at scrape time.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import hmac
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from opentelemetry import metrics as otel
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from .rows import QueueStats
from .urls import is_loopback

__all__ = [
    "BUCKETS",
    "FIGURES",
    "REGISTRY",
    "Figures",
    "refresh_queues",
    "serve",
]

logger = logging.getLogger(__name__)

#: Histogram bucket bounds (seconds): from a millisecond to an hour.
BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip


class _Histogram:
    """Bucket counts per label tuple, Prometheus-style (cumulative when read)."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        # labels -> [count per bucket (+Inf last), sum]
        self.data: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        row = self.data.get(labels)
        if row is None:
            row = self.data[labels] = [0.0] * (len(BUCKETS) + 2)
        row[bisect.bisect_left(BUCKETS, value)] += 1
        row[-1] += value

    def family(self, name: str, doc: str, label_names: Sequence[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=list(label_names))
        for labels, row in list(self.data.items()):
            counts = row[:-1]
            cumulative, total = [], 0.0
            for bound, n in zip((*BUCKETS, float("inf")), counts, strict=True):
                total += n
                cumulative.append((_bound(bound), total))
            family.add_metric(list(labels), cumulative, sum_value=row[-1])
        return family


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


class Figures:
    """This process's figures. The worker records into `FIGURES`; tests may read them."""

    def __init__(self) -> None:
        self.started: collections.Counter[str] = collections.Counter()
        self.closed: collections.Counter[tuple[str, str]] = collections.Counter()
        self.steps: collections.Counter[str] = collections.Counter()
        self.cache: collections.Counter[str] = collections.Counter()
        self.attempts: collections.Counter[tuple[str, str]] = collections.Counter()
        self.schedule_to_start = _Histogram()
        self.execution = _Histogram()
        self.queues: list[QueueStats] = []
        self.queues_at = 0.0  # when `queues` was read (the database's clock)

    # -- recording (called by the worker) ----------------------------------------------

    def step(self, workflow: str, *, first: bool, cached: bool, commands: int) -> None:
        """A step of a run of ``workflow`` committed: its first if ``first``, found in the
        cache if ``cached``, journaling ``commands`` durable operations."""
        if first:
            self.started[workflow] += 1
        self.cache["hit" if cached else "miss"] += 1
        if commands:
            self.steps[workflow] += commands

    def closed_run(self, workflow: str, status: str) -> None:
        """A run of ``workflow`` closed with ``status``."""
        self.closed[(workflow, status)] += 1

    def attempt(
        self,
        activity: str,
        queue: str,
        outcome: str,
        execution: float,
        schedule_to_start: float | None,
    ) -> None:
        """An attempt of ``activity`` ended with ``outcome`` after ``execution`` seconds;
        ``schedule_to_start``: for a first attempt, how long it waited to start."""
        self.attempts[(activity, outcome)] += 1
        self.execution.observe((activity, outcome), execution)
        if _listened(_EXECUTION):
            _EXECUTION.record(execution, {"activity": activity, "outcome": outcome})
        if schedule_to_start is not None:
            wait = max(0.0, schedule_to_start)
            self.schedule_to_start.observe((activity, queue), wait)
            if _listened(_SCHEDULE_TO_START):
                _SCHEDULE_TO_START.record(wait, {"activity": activity, "queue": queue})

    def set_queues(self, stats: Iterable[QueueStats], now: float) -> None:
        """The queues as last read from the database, at ``now``."""
        self.queues = list(stats)
        self.queues_at = now


#: The figures of this process.
FIGURES = Figures()


class _Collector(Collector):
    """Publishes `FIGURES` to Prometheus at scrape time."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        f = self.figures
        yield _counter(
            "durable_workflows_started",
            "Runs this process took a first step of.",
            ["workflow"],
            [((k,), v) for k, v in list(f.started.items())],
        )
        yield _counter(
            "durable_workflows_closed",
            "Runs this process closed, by status.",
            ["workflow", "status"],
            list(f.closed.items()),
        )
        yield _counter(
            "durable_workflow_steps",
            "Durable operations journaled (the cost unit), by workflow.",
            ["workflow"],
            [((k,), v) for k, v in list(f.steps.items())],
        )
        yield _counter(
            "durable_workflow_cache",
            "Steps that found their run cached (hit) or replayed its journal (miss).",
            ["result"],
            [((k,), v) for k, v in list(f.cache.items())],
        )
        yield _counter(
            "durable_activity_attempts",
            "Activity attempts, by outcome.",
            ["activity", "outcome"],
            list(f.attempts.items()),
        )
        yield f.schedule_to_start.family(
            "durable_activity_schedule_to_start_seconds",
            "From an activity's scheduling to the start of its first attempt.",
            ["activity", "queue"],
        )
        yield f.execution.family(
            "durable_activity_execution_seconds",
            "One activity attempt, start to end.",
            ["activity", "outcome"],
        )
        waiting = GaugeMetricFamily(
            "durable_queue_tasks_waiting", "Activity tasks due and waiting.", labels=["queue"]
        )
        oldest = GaugeMetricFamily(
            "durable_queue_oldest_task_age_seconds",
            "How long the oldest waiting task has waited.",
            labels=["queue"],
        )
        runs = GaugeMetricFamily(
            "durable_queue_runs_waiting", "Open runs a worker could step now.", labels=["queue"]
        )
        for q in f.queues:
            waiting.add_metric([q.queue], q.tasks_waiting)
            age = 0.0 if q.oldest_task_at is None else max(0.0, f.queues_at - q.oldest_task_at)
            oldest.add_metric([q.queue], age)
            runs.add_metric([q.queue], q.runs_waiting)
        yield waiting
        yield oldest
        yield runs


def _counter(
    name: str,
    doc: str,
    labels: list[str],
    rows: Iterable[tuple[tuple[str, ...], float]],
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, count in rows:
        family.add_metric(list(values), count)
    return family


#: durable's Prometheus registry (not the global default one).
REGISTRY = CollectorRegistry(auto_describe=True)
REGISTRY.register(_Collector(FIGURES))

# -- OpenTelemetry: no-ops until the application installs an SDK MeterProvider ------------

_METER = otel.get_meter("durable")
_EXECUTION = _METER.create_histogram(
    "durable.activity.execution", unit="s", description="One activity attempt, start to end."
)
_SCHEDULE_TO_START = _METER.create_histogram(
    "durable.activity.schedule_to_start",
    unit="s",
    description="From an activity's scheduling to the start of its first attempt.",
)


def _listened(instrument: Any) -> bool:
    """Whether recording into ``instrument`` reaches anything: not while it is the API's
    proxy with no SDK behind it (then a record is a no-op, and its attributes' dict and
    the call are saved on every attempt). An instrument that is not a proxy (an SDK
    installed before this module was imported) always is."""
    return getattr(instrument, "_real_instrument", True) is not None


def _observe(
    counter: collections.Counter[Any], names: Sequence[str]
) -> Any:  # an OpenTelemetry callback
    def callback(_options: otel.CallbackOptions) -> Iterator[otel.Observation]:
        for key, value in list(counter.items()):
            values = key if isinstance(key, tuple) else (key,)
            yield otel.Observation(value, dict(zip(names, values, strict=True)))

    return callback


for _name, _counter_of, _labels in (
    ("durable.workflows.started", FIGURES.started, ["workflow"]),
    ("durable.workflows.closed", FIGURES.closed, ["workflow", "status"]),
    ("durable.workflow.steps", FIGURES.steps, ["workflow"]),
    ("durable.workflow.cache", FIGURES.cache, ["result"]),
    ("durable.activity.attempts", FIGURES.attempts, ["activity", "outcome"]),
):
    _METER.create_observable_counter(_name, callbacks=[_observe(_counter_of, _labels)])


# -- serving ---------------------------------------------------------------------------------


def serve(port: int, host: str = "127.0.0.1", token: str | None = None) -> threading.Thread:
    """Serve `REGISTRY` at ``http://host:port/metrics`` from a daemon thread; the thread.

    Binds loopback unless told otherwise (metrics say what runs; keep them private). With
    ``token``, every scrape must send ``Authorization: Bearer TOKEN`` (Prometheus:
    ``authorization: {credentials: TOKEN}`` in the scrape config); a host beyond loopback
    without a token is refused with a `ValueError` saying how to fix it.
    """
    if token is None and not is_loopback(host):
        raise ValueError(
            f"Refusing to serve metrics on {host!r} without a token: they name the "
            "workflows, activities and queues this worker runs. Give one with "
            "--metrics-token TOKEN or $DURABLE_TOKEN (scrapers then send 'Authorization: "
            "Bearer TOKEN'), or serve them on 127.0.0.1."
        )
    app = make_wsgi_app(REGISTRY)
    if token is not None:
        app = _bearer(app, token)
    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, name="durable-metrics", daemon=True)
    thread.start()
    return thread


class _Quiet(WSGIRequestHandler):
    """Logs no line per scrape on stderr (wsgiref's default)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _bearer(app: Any, token: str) -> Any:
    """``app`` behind a bearer token, compared in constant time."""
    expected = f"Bearer {token}".encode()

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        given = environ.get("HTTP_AUTHORIZATION", "").encode()
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response(
            "401 Unauthorized",
            [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="durable"')],
        )
        return [b"These metrics need a token: send 'Authorization: Bearer TOKEN'.\n"]

    return guarded


async def refresh_queues(store: Any, now: Any, every: float = 5.0) -> None:
    """Read the queues' state from ``store`` every ``every`` seconds into `FIGURES` (for a
    worker's metrics endpoint; the server reads it at each scrape). Runs until cancelled;
    a failed read is logged and tried again."""
    while True:
        try:
            FIGURES.set_queues(await store.queue_stats(now()), now())
        except Exception:
            logger.warning("Could not read queue figures for the metrics", exc_info=True)
        await asyncio.sleep(every)
