"""The shape of a workflow, drawn from its recent runs: the console's workflow page.

durable workflows are code, not diagrams; this is the code-first answer to "a visual
interface to define workflows": the steps its runs took, merged, with how each step fares.

A step of a run is known across runs by its *key* — its branch, kind and name, whether it
was an item of a fan-out (a ``gather``/``map`` group, whose items of one name count as one
key), and which occurrence of those it is in its run (the second ``publish stage`` is
not the first).
`merge` lines the runs' keys up into one sequence (a key first seen after another is
placed after it, so branches and optional steps keep their place) and `Shape` holds, per
key, the figures over every run that took it: how many runs, how many ended in each
status, and p50/p95 of the time it took. `synthetic_steps` turns the merged keys back into
steps the graph layout draws (`durable.console.graph`), coloured by success.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..steps import Step

__all__ = ["Key", "Shape", "StepFigures", "merge", "synthetic_steps"]

Key = tuple[str, str, str, bool, int]  # branch, kind, name, fan-out item, occurrence


@dataclass
class StepFigures:
    """How one key of the shape fared over the runs that took it."""

    key: Key
    runs: int = 0  # runs that took this step (at least once)
    items: int = 0  # steps counted (a fan-out counts each item)
    most_items: int = 0  # the largest fan-out of this key in one run
    statuses: dict[str, int] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)  # seconds, of closed steps
    retries: int = 0  # attempts beyond the first
    leader: Key | None = None  # a fan-out item's: the key its group began with

    @property
    def closed(self) -> int:
        """Steps that ended (completed, failed or cancelled)."""
        return sum(self.statuses.get(s, 0) for s in ("completed", "failed", "cancelled"))

    @property
    def success(self) -> float | None:
        """Completed over ended, or ``None`` when none ended."""
        return self.statuses.get("completed", 0) / self.closed if self.closed else None

    def percentile(self, q: float) -> float | None:
        """The ``q`` quantile (0.5, 0.95) of the closed steps' durations, in seconds."""
        if not self.durations:
            return None
        if len(self.durations) == 1:
            return self.durations[0]
        cuts = statistics.quantiles(self.durations, n=100, method="inclusive")
        return cuts[min(98, max(0, round(q * 100) - 1))]


@dataclass
class Shape:
    """The merged steps of ``runs`` runs of one workflow, in order, with their figures."""

    name: str
    runs: int
    keys: list[Key]
    figures: dict[Key, StepFigures]


def merge(name: str, runs: Iterable[Sequence[Step]]) -> Shape:
    """Merge the steps of ``runs`` (each a run's steps, newest run first or in any order)."""
    keys: list[Key] = []
    figures: dict[Key, StepFigures] = {}
    count = 0
    for steps in runs:
        count += 1
        previous: Key | None = None
        per_run: dict[Key, int] = {}
        seen: dict[tuple[str, str, str, bool], int] = {}  # occurrences so far in this run
        in_group: dict[tuple[int, str, str, str], Key] = {}  # (group, base) -> its key
        leaders: dict[int, Key] = {}  # this run's group -> the key it began with
        for step in steps:
            base = (step.branch, step.kind, step.name)
            grouped = step.group is not None
            known = in_group.get((step.group, *base)) if step.group is not None else None
            if known is not None:
                key = known
            else:
                n = seen.get((*base, grouped), 0) + 1
                seen[(*base, grouped)] = n
                key = (*base, grouped, n)
                if step.group is not None:
                    in_group[(step.group, *base)] = key
                    leaders.setdefault(step.group, key)
            if key not in figures:
                figures[key] = StepFigures(key)
                if step.group is not None:
                    figures[key].leader = leaders[step.group]
                # right after this run's previous step: a step some runs take (a branch,
                # a retry path) keeps its place among those all runs take
                keys.insert(keys.index(previous) + 1 if previous is not None else 0, key)
            fig = figures[key]
            per_run[key] = per_run.get(key, 0) + 1
            fig.items += 1
            fig.statuses[step.status] = fig.statuses.get(step.status, 0) + 1
            fig.retries += max(0, len(step.attempts) - 1)
            began = step.started_at or step.scheduled_at
            if step.closed_at is not None and began is not None:
                fig.durations.append(max(0.0, (step.closed_at - began).total_seconds()))
            previous = key
        for key, n in per_run.items():
            figures[key].runs += 1
            figures[key].most_items = max(figures[key].most_items, n)
    return Shape(name, count, keys, figures)


def synthetic_steps(shape: Shape) -> list[Step]:
    """Steps standing for the shape's keys, for the graph layout: a fan-out key as a group
    of as many items as its largest fan-out (at most 50), each step's status its worst
    outcome (failed if any ended failed, else completed if any completed, else what it
    was last seen as)."""
    out: list[Step] = []
    seq = 1
    first: dict[Key, int] = {}  # key -> the seq of its first synthetic step
    for key in shape.keys:
        branch, kind, name, grouped, _ = key
        fig = shape.figures[key]
        if fig.statuses.get("failed"):
            status = "failed"
        elif fig.statuses.get("completed"):
            status = "completed"
        else:
            status = max(fig.statuses, key=lambda s: fig.statuses[s])
        copies = min(fig.most_items, 50) if grouped else 1
        first[key] = seq
        group = first.get(fig.leader, seq) if grouped and fig.leader is not None else None
        for _ in range(copies):
            out.append(
                Step(seq=seq, kind=kind, name=name, branch=branch, group=group, status=status)
            )
            seq += 1
    return out
