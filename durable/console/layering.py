"""Series-parallel layering of a run's steps into a `Graph` (see `durable.console.graph`).

Each branch becomes a sequence of items in journal order: its own steps, fan-outs (futures
it gathered, or the tasks it spawned together) and lone tasks. Items become blocks — a box,
a sequence, or columns between a fork and a join — which are measured bottom up and placed
top down. Fan-outs fold into one group box unless expanded; sequences and the node budget
fold what would not fit; every step is counted once as drawn, grouped or folded.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ..steps import Step
from . import svg
from .labels import step_detail, step_label
from .nodes import (
    FRAME_TOP,
    GROUP_H,
    GROUP_W,
    HEADER,
    HGAP,
    JUNCTION,
    MARGIN,
    MIN_WIDTH,
    PAD,
    VGAP,
    Edge,
    Frame,
    Graph,
    Node,
    expand_query,
    run_href,
)  # fmt: skip

__all__ = ["KEEP_MIDDLE", "MAX_ITEMS", "MAX_NODES", "SEQ_HEAD", "SEQ_LIMIT", "WRAP", "layout"]

MAX_NODES = 600  # most boxes one graph places; past it each sequence folds what is left
MAX_ITEMS = 200  # most items of an expanded fan-out drawn side by side, then "+N more"
SEQ_LIMIT = 200  # a longer sequence keeps its first SEQ_HEAD and last items, folds the middle
SEQ_HEAD = 40
KEEP_MIDDLE = 30  # steps in a folded middle that did not complete, still drawn each
WRAP = 6  # an expanded fan-out of more items than this is drawn as a grid of rows this wide

_STATUS = operator.attrgetter("status")
_NAME = operator.attrgetter("name")
_BRANCH = operator.attrgetter("branch")
_GROUP = operator.attrgetter("group")
_SEQ = operator.attrgetter("seq")

_FAN_OUT = object()  # the status of an `_Item`
_FEW_BRANCHES = 8  # up to this many branches, each one's steps are picked out in C

#: Steps still in flight, most urgent first: a group shows the first one it has.
_ACTIVE = ("running", "retrying", "scheduled", "waiting")

# -- the run's shape: which steps each branch issued, and the branches it spawned ----------


class _Index:
    """Steps by branch and the branch tree, ordered by each subtree's first step."""

    def __init__(self, steps: Sequence[Step]) -> None:
        own: dict[str, list[Step]] = {}
        children: dict[str, list[str]] = {}
        first: dict[str, Step] = {}  # first step of each branch's subtree
        roots: list[str] = []
        branches = list(map(_BRANCH, steps))
        named = dict.fromkeys(branches)  # in the order each first comes
        if len(named) <= _FEW_BRANCHES:  # each branch's steps picked out in C
            for branch in named:
                same = map(operator.eq, branches, itertools.repeat(branch))
                own[branch] = list(itertools.compress(steps, same))
        else:
            for step, branch in zip(steps, branches, strict=True):
                mine = own.get(branch)
                if mine is None:
                    own[branch] = [step]
                else:
                    mine.append(step)
        for branch, mine in own.items():  # as each branch's first step comes
            step = mine[0]
            path = branch
            while path not in first:
                first[path] = step
                parent = path.rpartition(".")[0]
                if not parent:
                    roots.append(path)
                    break
                kids = children.get(parent)
                if kids is None:
                    children[parent] = [path]
                else:
                    kids.append(path)
                path = parent
        self.own, self.children, self.first, self.roots = own, children, first, roots

    def key(self, branch: str) -> int | None:
        """The group a spawned branch belongs to: that of its own first step."""
        own = self.own.get(branch)
        return (own[0] if own else self.first[branch]).group

    def subtree(self, paths: Iterable[str], out: list[Step]) -> list[Step]:
        """Every step of the branches ``paths`` and the branches they spawned, onto ``out``."""
        own, children = self.own, self.children
        for branch in paths:
            mine = own.get(branch)
            if mine is not None:
                out.extend(mine)
            kids = children.get(branch)
            if kids is not None:
                self.subtree(kids, out)
        return out


@dataclass(slots=True)
class _Item:
    """An entry of a branch's sequence before it is drawn (a step in sequence is its own
    entry): ``futures`` one task gathered (``steps``), ``branches`` spawned together
    (``paths``), or a ``lone`` task."""

    kind: str
    group: int | None = None
    steps: list[Step] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: ClassVar[object] = _FAN_OUT  # not a step's: `_notable` tells them apart by it


def _notable(items: list[Step | _Item], lo: int, hi: int) -> list[int]:
    """Where the steps of ``items[lo:hi]`` that did not complete are (fan-outs aside)."""
    statuses = list(map(_STATUS, itertools.islice(items, lo, hi)))  # an item's: `_FAN_OUT`
    if statuses.count("completed") == len(statuses):
        return []
    return [
        lo + k
        for k, status in enumerate(statuses)
        if status != "completed" and status is not _FAN_OUT
    ]


def _own_steps(
    out: list[Step | _Item],
    at: dict[tuple[str, int], _Item],
    own: list[Step],
    groups: list[int | None],
    lo: int,
    hi: int,
    context: int | None,
) -> None:
    """A branch's own steps ``own[lo:hi]`` onto its sequence ``out``: in sequence, or
    into the fan-out item of their group (``at``). A big run's steps are mostly in
    sequence: those go over in slices."""
    grouped = [k for k in range(lo, hi) if groups[k] is not None and groups[k] != context]
    for k in grouped:
        out.extend(own[lo:k])
        lo = k + 1
        group = groups[k]
        assert group is not None
        item = at.get(("futures", group))
        if item is None:
            item = at[("futures", group)] = _Item("futures", group)
            out.append(item)
        item.steps.append(own[k])
    out.extend(own[lo:hi])


class _Leaf:
    __slots__ = ("h", "node", "w")
    w: float
    h: float

    def __init__(self, node: Node) -> None:
        self.node, self.w, self.h = node, node.w, node.h


class _Seq:
    __slots__ = ("h", "items", "w")
    w: float
    h: float

    def __init__(self, items: list[_Leaf | _Seq | _Par]) -> None:
        self.items = items
        self.w = max((b.w for b in items), default=0.0)
        self.h = sum(b.h for b in items) + VGAP * max(0, len(items) - 1)


class _Par:
    """Columns side by side between a fork and a join. An expanded fan-out of more than
    `WRAP` items is a grid instead (rows of `WRAP`), its lines drawn to its frame: fifty
    items in one row would be a page fifteen screens wide."""

    __slots__ = ("cell", "columns", "frame", "h", "rows", "w")
    w: float
    h: float

    def __init__(self, columns: list[_Seq], frame: tuple[int, str, str] | None) -> None:
        self.columns, self.frame = columns, frame
        pad = PAD if frame else 0.0
        if frame is not None and len(columns) > WRAP:
            self.cell = max(c.w for c in columns)
            self.rows = [
                max(c.h for c in columns[i : i + WRAP]) for i in range(0, len(columns), WRAP)
            ]
            self.w = self.cell * WRAP + HGAP * (WRAP - 1) + 2 * pad
            inner = sum(self.rows) + VGAP * (len(self.rows) - 1)
        else:
            self.cell, self.rows = 0.0, []
            self.w = sum(c.w for c in columns) + HGAP * (len(columns) - 1) + 2 * pad
            inner = max(c.h for c in columns)
        self.h = 2 * JUNCTION + 2 * VGAP + inner + (FRAME_TOP + 2 * pad if frame else 0.0)


_Block = _Leaf | _Seq | _Par


class _Layout:
    def __init__(
        self,
        steps: Sequence[Step],
        expand: set[str],
        link: Callable[[str], str],
        max_nodes: int,
    ) -> None:
        self.index = _Index(steps)
        self.expand = expand
        self.link = link
        self.budget = max_nodes
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.frames: list[Frame] = []
        self.drawn = self.grouped = self.folded = 0
        self._ids = 0

    # -- what each branch's sequence holds --

    def items(self, branch: str, context: int | None) -> list[Step | _Item]:
        """A branch's sequence: its steps and the branches it spawned, in journal order,
        fan-outs gathered into one item. ``context`` is the fan-out the branch is an item
        of: its steps carry that group because of where they are, not because they ran
        together, so they stay in sequence."""
        index = self.index
        own = index.own.get(branch, [])
        kids = index.children.get(branch, [])
        first = index.first
        out: list[Step | _Item] = []  # a step in sequence stands for itself
        own_of = index.own.get
        at: dict[tuple[str, int], _Item] = {}
        groups = list(map(_GROUP, own))
        seqs = list(map(_SEQ, own)) if kids else []
        i = 0
        for path in kids:
            k = bisect.bisect_left(seqs, first[path].seq, i)  # its own steps before the kid
            _own_steps(out, at, own, groups, i, k, context)
            i = k
            mine = own_of(path)
            key = (mine[0] if mine else first[path]).group
            if key is None or key == context:
                out.append(_Item("lone", None, [], [path]))
                continue
            item = at.get(("branches", key))
            if item is None:
                item = at[("branches", key)] = _Item("branches", key)
                out.append(item)
            item.paths.append(path)
        _own_steps(out, at, own, groups, i, len(own), context)
        return out

    def steps_of(self, item: Step | _Item) -> list[Step]:
        """Every step an item stands for."""
        if isinstance(item, Step):
            return [item]
        return self.index.subtree(item.paths, list(item.steps))

    # -- blocks --

    def sequence(self, items: list[Step | _Item], context: int | None) -> _Seq:
        """A branch's items as boxes: all of them if few; else the first `SEQ_HEAD`, the
        middle folded except the steps that did not complete (up to `KEEP_MIDDLE`: what
        an operator looks for), and the last ones. Out of budget, the rest folds."""
        n = len(items)
        tail_from = n
        if n > SEQ_LIMIT:
            tail_from = n - (SEQ_LIMIT - SEQ_HEAD - 2 * KEEP_MIDDLE)
        # The middle's steps still drawn: the first that did not complete.
        kept = iter(_notable(items, SEQ_HEAD, tail_from)[:KEEP_MIDDLE])
        keep = next(kept, tail_from)
        blocks: list[_Block] = []
        pending: list[Step | _Item] = []  # middle items waiting to be folded
        i = 0
        while i < n:
            if self.budget <= 0:
                pending.extend(items[i:])
                break
            if SEQ_HEAD <= i < tail_from:
                if i < keep:  # folded, up to the next kept step (or the tail)
                    pending.extend(items[i:keep])
                    i = keep
                    continue
                keep = next(kept, tail_from)
            if pending:
                blocks.append(self.fold(pending))
                pending = []
            blocks.append(self.block(items[i], context))
            i += 1
        if pending:
            blocks.append(self.fold(pending))
        return _Seq(blocks)

    def block(self, item: Step | _Item, context: int | None) -> _Block:
        if isinstance(item, Step):
            self.drawn += 1
            return self.leaf(_step_node(item, self.expand, self.link))
        if item.kind == "lone":
            return _Par([self.sequence(self.items(item.paths[0], context), context)], None)
        assert item.group is not None
        group, members = item.group, len(item.steps) + len(item.paths)
        if members == 1:  # a "fan-out" of one (a wait_for, a lone gather item) is that item
            if item.steps:
                return self.block(item.steps[0], context)
            return _Par([self.sequence(self.items(item.paths[0], group), group)], None)
        if str(group) not in self.expand:
            covered = self.steps_of(item)
            node = self.summary(f"g{group}", "group", covered)
            node.group = group
            node.w, node.h = GROUP_W, GROUP_H
            node.label = f"{_names(covered)} \u00d7{members:,}"
            if node.count != members:
                node.label += f" ({node.count:,} steps)"
            node.title = f"fan-out #{group}: {node.label}, {node.detail}; click to expand"
            node.href = expand_query(self.expand | {str(group)})
            self.grouped += node.count
            return self.leaf(node)
        columns = []
        chosen = self.worth_drawing(item, members)
        shown = len(chosen)
        for k, at in enumerate(chosen):
            if self.budget <= 0:  # out of boxes: the rest go into "+N more"
                shown = k
                break
            if item.steps:
                self.drawn += 1
                node = _step_node(item.steps[at], self.expand, self.link)
                columns.append(_Seq([self.leaf(node)]))
            else:
                path = item.paths[at]
                columns.append(self.sequence(self.items(path, group), group))
        if members > shown:
            drawn = set(chosen[:shown])
            rest = _Item(
                item.kind,
                group,
                [s for k, s in enumerate(item.steps) if k not in drawn],
                [p for k, p in enumerate(item.paths) if k not in drawn],
            )
            more = self.summary(f"m{group}", "more", self.steps_of(rest))
            more.w, more.h = GROUP_W, GROUP_H
            more.label = f"+{members - shown:,} more"
            self.folded += more.count
            columns.append(_Seq([self.leaf(more)]))
        title = f"{_names(self.steps_of(item))} \u00d7{members} \u2014 click to fold"
        return _Par(columns, (group, title, expand_query(self.expand - {str(group)})))

    def worth_drawing(self, item: _Item, members: int) -> list[int]:
        """Which of an expanded fan-out's members to draw, and in what order: all, in
        their order, if at most `MAX_ITEMS`; else those that did not complete, drawn first
        (top left: a failure among thousands is what an operator expanded the group to
        find, and it must not be the last of 200 cells), then the first that did."""
        if members <= MAX_ITEMS:
            return list(range(members))
        if item.steps:
            done = [s.status == "completed" for s in item.steps]
        else:
            done = [
                all(s.status == "completed" for s in self.index.subtree([path], []))
                for path in item.paths
            ]
        first = [k for k, ok in enumerate(done) if not ok][:MAX_ITEMS]
        first += [k for k, ok in enumerate(done) if ok][: MAX_ITEMS - len(first)]
        return first

    def fold(self, items: list[Step | _Item]) -> _Leaf:
        steps: list[Step]
        if set(map(type, items)) <= {Step}:  # steps only (checked in C): as they are
            steps = list(items)  # type: ignore[arg-type]
        else:
            steps = []
            for item in items:
                if isinstance(item, Step):
                    steps.append(item)
                else:
                    steps.extend(item.steps)
                    self.index.subtree(item.paths, steps)
        node = self.summary(f"f{steps[0].seq if steps else self._ids}", "fold", steps)
        node.w, node.h = GROUP_W, GROUP_H
        node.label = f"{len(steps):,} steps folded"
        if steps:
            node.label += f" (#{steps[0].seq}\u2013#{steps[-1].seq})"
        node.title = f"{node.label}: {node.detail}; the timeline lists them all"
        self.folded += node.count
        return self.leaf(node)

    def summary(self, node_id: str, kind: str, steps: list[Step]) -> Node:
        counts = Counter(map(_STATUS, steps))
        status = next((s for s in _ACTIVE if counts[s]), None)
        if status is None:
            status = (
                "failed"
                if counts["failed"]
                else "cancelled"
                if counts["cancelled"]
                else "completed"
            )
        ordered = {s: counts[s] for s in svg.STATUSES if counts[s]}
        ordered.update({s: n for s, n in counts.items() if s not in ordered})
        detail = " \u00b7 ".join(f"{n:,} {s}" for s, n in ordered.items())
        return Node(node_id, kind, status, "", count=len(steps), counts=ordered, detail=detail)

    def leaf(self, node: Node) -> _Leaf:
        self.budget -= 1
        return _Leaf(node)

    # -- placing --

    def place(self, block: _Block, x: float, y: float, width: float) -> tuple[Node, Node] | None:
        """Put ``block`` centred in ``[x, x + width]`` from ``y`` down; its first and last
        node (for the lines to and from it)."""
        if isinstance(block, _Leaf):
            node = block.node
            node.x, node.y = x + (width - node.w) / 2, y
            self.nodes.append(node)
            return node, node
        if isinstance(block, _Seq):
            ends = None
            prev: Node | None = None
            for item in block.items:
                placed = self.place(item, x, y, width)
                y += item.h + VGAP
                if placed is None:
                    continue
                if prev is not None:
                    self.edge(prev, placed[0])
                ends = (ends[0] if ends else placed[0], placed[1])
                prev = placed[1]
            return ends
        left = x + (width - block.w) / 2
        fork = self.dot("fork", left + block.w / 2, y)
        join = self.dot("join", left + block.w / 2, y + block.h - JUNCTION)
        top = y + JUNCTION + VGAP
        cx = left
        if block.frame is not None:
            group, label, href = block.frame
            frame = Frame(group, label, left, top, block.w, block.h - 2 * (JUNCTION + VGAP), href)
            self.frames.append(frame)
            top += FRAME_TOP + PAD
            cx += PAD
            if block.rows:
                self.grid(block, cx, top)
                mid = left + block.w / 2
                name = f"frame{group}"
                self.edges.append(Edge(fork.id, name, mid, fork.y + JUNCTION, mid, frame.y))
                self.edges.append(Edge(name, join.id, mid, frame.y + frame.h, mid, join.y))
                return fork, join
        for column in block.columns:
            placed = self.place(column, cx, top, column.w)
            cx += column.w + HGAP
            if placed is not None:
                self.edge(fork, placed[0])
                self.edge(placed[1], join)
        return fork, join

    def grid(self, block: _Par, x: float, y: float) -> None:
        """Place an expanded fan-out's items in rows of `WRAP`, each in a cell."""
        for row, height in enumerate(block.rows):
            for i, column in enumerate(block.columns[row * WRAP : (row + 1) * WRAP]):
                self.place(column, x + i * (block.cell + HGAP), y, block.cell)
            y += height + VGAP

    def dot(self, kind: str, cx: float, y: float) -> Node:
        self._ids += 1
        node = Node(
            f"{kind[0]}{self._ids}", kind, "", "", cx - JUNCTION / 2, y, JUNCTION, JUNCTION, count=0
        )
        self.nodes.append(node)
        return node

    def edge(self, a: Node, b: Node) -> None:
        self.edges.append(Edge(a.id, b.id, a.x + a.w / 2, a.y + a.h, b.x + b.w / 2, b.y))


def layout(
    steps: Sequence[Step],
    expand: Collection[str | int] = (),
    *,
    link: Callable[[str], str] = run_href,
    max_nodes: int = MAX_NODES,
) -> Graph:
    """Lay out a run's steps (as `durable.WorkflowHandle.steps` returns them).

    ``expand`` names the fan-out groups (their ids, as in ``Step.group``) drawn item by item;
    ``link`` makes a child workflow's link from its id; ``max_nodes`` bounds the boxes
    placed. Linear in ``len(steps)``."""
    seqs = list(map(_SEQ, steps))
    if seqs != sorted(seqs):  # in C: a sorted list is one run to timsort
        steps = sorted(steps, key=_SEQ)
    builder = _Layout(steps, {str(g) for g in expand}, link, max_nodes)
    roots = builder.index.roots
    blocks: list[_Block] = []
    for root in roots:
        blocks.extend(builder.sequence(builder.items(root, None), None).items)
    body = _Seq(blocks)
    width = max(body.w + 2 * MARGIN, MIN_WIDTH)
    builder.place(body, MARGIN, HEADER, width - 2 * MARGIN)
    return Graph(
        builder.nodes,
        builder.edges,
        builder.frames,
        width,
        HEADER + body.h + MARGIN,
        len(steps),
        builder.drawn,
        builder.grouped,
        builder.folded,
    )


# -- what a step's box says --


def _step_node(step: Step, expand: set[str], link: Callable[[str], str]) -> Node:
    label, detail = step_label(step), step_detail(step)
    href = (
        link(step.child_id)
        if step.kind == "child" and step.child_id
        else expand_query(expand, step.seq)
    )
    title = f"#{step.seq} {step.kind} {step.name} ({step.status}), branch {step.branch}"
    if step.error is not None:
        title += f"\n{step.error.type}: {step.error.message}"
    return Node(
        f"s{step.seq}",
        step.kind,
        step.status,
        label,
        seq=step.seq,
        group=step.group,
        counts={step.status: 1},
        href=href,
        detail=detail,
        title=title,
    )


def _names(steps: Iterable[Step]) -> str:
    common = Counter(map(_NAME, steps)).most_common()
    common = [(n or "step", c) for n, c in common]
    if not common:
        return "(nothing)"
    names = ", ".join(n for n, _ in common[:2])
    return names + (f" +{len(common) - 2}" if len(common) > 2 else "")
