"""The run graph's vocabulary: boxes (`Node`), lines (`Edge`), the frames of expanded
fan-outs (`Frame`), the laid-out `Graph`, their sizes, and the links the console reads
back (``?step=SEQ``, ``?expand=G1,G2``, ``/runs/{id}``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = ["Edge", "Frame", "Graph", "Node", "expand_query", "parse_expand", "run_href"]

STEP_W, STEP_H = 240.0, 46.0
GROUP_W, GROUP_H = 280.0, 64.0
JUNCTION = 8.0  # fork and join dots
VGAP, HGAP = 24.0, 18.0
PAD, FRAME_TOP = 10.0, 22.0  # an expanded fan-out's frame: padding, and its title's height
MARGIN, HEADER = 16.0, 78.0
MIN_WIDTH = 760.0  # wide enough for the legend


@dataclass(slots=True)
class Node:
    """One box of the graph. ``kind`` is a step's kind, or ``group`` (a folded fan-out),
    ``fold`` (folded steps of a sequence), ``more`` (items of an expanded fan-out not
    drawn), ``fork``/``join`` (the dots where branches part and meet). ``x, y`` is the top
    left corner. ``count`` is how many steps the box stands for, ``counts`` those by status."""

    id: str
    kind: str
    status: str
    label: str
    x: float = 0.0
    y: float = 0.0
    w: float = STEP_W
    h: float = STEP_H
    seq: int | None = None
    group: int | None = None
    count: int = 1
    counts: dict[str, int] = field(default_factory=dict)
    href: str | None = None
    detail: str = ""
    title: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    """A line from the bottom of node ``source`` to the top of node ``target``."""

    source: str
    target: str
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class Frame:
    """The outline of an expanded fan-out; its link folds the group back."""

    group: int
    label: str
    x: float
    y: float
    w: float
    h: float
    href: str


@dataclass(frozen=True)
class Graph:
    """A laid-out run: boxes, lines and frames, its size, and what it shows of the steps.

    ``total`` steps in the run: ``drawn`` as boxes of their own, ``grouped`` inside folded
    fan-outs, ``folded`` in fold and "+N more" boxes (always ``drawn + grouped + folded ==
    total``)."""

    nodes: list[Node]
    edges: list[Edge]
    frames: list[Frame]
    width: float
    height: float
    total: int
    drawn: int
    grouped: int
    folded: int

    def boxes(self) -> list[Node]:
        """The nodes that stand for steps (all but the fork and join dots)."""
        return [n for n in self.nodes if n.kind not in ("fork", "join")]


def run_href(workflow_id: str) -> str:
    """The console's page of a workflow run: ``/runs/{id}``, the id percent-encoded."""
    return "/runs/" + quote(workflow_id, safe="")


def parse_expand(value: str | None) -> set[str]:
    """The group ids of an ``expand`` query parameter (``"12,40"``); junk is dropped."""
    if not value:
        return set()
    return {part for part in (p.strip() for p in value.split(",")) if part.isdigit()}


def expand_query(expand: Collection[str], step: int | None = None) -> str:
    """A query string keeping ``expand`` (and naming ``step``): ``?expand=12,40&step=7``."""
    parts = []
    if expand:
        parts.append("expand=" + ",".join(sorted(expand, key=int)))
    if step is not None:
        parts.append(f"step={step}")
    return "?" + "&".join(parts)
