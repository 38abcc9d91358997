"""Server time of the console's run page drawings: graph layout + SVG, timeline + SVG.

    .venv/bin/python benchmarks/bench_console.py

Runs of 1,000, 10,000 and 100,000 steps shaped like real ones: a few steps in sequence, a
``durable.map`` fan-out holding most of the steps (2% failed, one item retrying), then a
long loop of sequential steps. Each drawing is timed as the server would make it: the graph
folded (the default) and with the fan-out expanded, the timeline's first page. Issue 9's
target for a run page of 100,000 steps is 500 ms of server time (reported, not asserted).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from durable.console import graph, timeline
from durable.errors import RemoteError
from durable.steps import Attempt, Step

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def run_of(n: int) -> list[Step]:
    """``n`` steps: 5 in sequence, 70% in one map, the rest a sequential loop."""
    fan_out = int(n * 0.7)
    out = []
    for seq in range(1, n + 1):
        at = T0 + timedelta(milliseconds=20 * seq)
        mapped = 5 < seq <= 5 + fan_out
        status = "failed" if seq % 50 == 0 else "completed"
        if seq == n // 2:
            status = "retrying"
        error = (
            RemoteError("ValueError", f"row {seq} is malformed") if status != "completed" else None
        )
        attempts = [
            Attempt(1, at + timedelta(milliseconds=5), at + timedelta(milliseconds=60), "w1", error)
        ]
        out.append(
            Step(
                seq=seq,
                kind="activity",
                name="process" if mapped else "load",
                branch=f"0.{seq}" if mapped else "0",
                group=6 if mapped else None,
                status=status,
                attempts=attempts,
                input=[seq],
                scheduled_at=at,
                closed_at=None if status == "retrying" else at + timedelta(milliseconds=60),
                error=error,
            )
        )
    return out


def best_ms(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best and median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return min(times), statistics.median(times)


def calibrate(steps: list[Step]) -> float:
    """Milliseconds a bare Python pass over the steps takes (one dict lookup each), to
    read the numbers against: the drawings do a few such passes on a large run."""
    seen: dict[str, int] = {}

    def one_pass() -> None:
        for step in steps:
            seen.get(step.branch)

    return best_ms(one_pass, 5)[0]


def draw_graph(steps: list[Step], expand: set[str]) -> str:
    return graph.render_svg(graph.layout(steps, expand))


def draw_timeline(steps: list[Step]) -> str:
    return timeline.render_svg(timeline.build(steps))


def main() -> None:
    print(f"{'steps':>8} {'drawing':<34} {'best ms':>9} {'median ms':>10} {'SVG KB':>8}")
    for n in (1_000, 10_000, 100_000):
        steps = run_of(n)
        repeat = 5 if n <= 10_000 else 3
        cases: list[tuple[str, Callable[[], str]]] = [
            ("graph (fan-out folded)", partial(draw_graph, steps, set())),
            ("graph (fan-out expanded)", partial(draw_graph, steps, {"6"})),
            ("timeline, first page", partial(draw_timeline, steps)),
        ]
        total = 0.0
        for name, fn in cases:
            size = len(fn()) / 1024
            best, median = best_ms(fn, repeat)
            if name != "graph (fan-out expanded)":
                total += median
            print(f"{n:>8} {name:<34} {best:>9.1f} {median:>10.1f} {size:>8.0f}")
        print(f"{n:>8} {'run page (graph + timeline)':<34} {'':>9} {total:>10.1f}")
        print(f"{n:>8} {'(a bare pass over the steps)':<34} {calibrate(steps):>9.1f}")


if __name__ == "__main__":
    main()
