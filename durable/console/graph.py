"""The run as a graph, laid out on the server: `layout(steps) -> Graph`, then
`render_svg(graph) -> str`.

The layout is series-parallel, read from each step's ``branch`` and ``group`` (DESIGN §6,
`durable.branches`): a branch's steps go top to bottom in journal order; the tasks a branch
spawned together (``asyncio.gather``, ``durable.map``) stand side by side between a fork and
a join; futures gathered by one task likewise. A fan-out is drawn as ONE group node with its
counts by status unless its id is in ``expand``; then its items are drawn (at most
`MAX_ITEMS`: those that did not complete first, then a "+N more" node) inside a frame
that folds it back. A lone
``create_task`` is a one-column fork.

The drawing stays bounded however large the run: fan-outs fold by default, a sequence
longer than `SEQ_LIMIT` keeps its head and tail and folds its middle into one node, and once
`MAX_NODES` boxes are placed every further sequence folds what is left. The graph says how
many steps it folded; the work is linear in the number of steps.

Links, as the server reads them: a step ``?step=SEQ``, a child workflow ``/runs/{id}``, a
group ``?expand=G1,G2`` (`expand_query` writes it, `parse_expand` reads it back).
"""

from __future__ import annotations

from . import svg
from .layering import KEEP_MIDDLE, MAX_ITEMS, MAX_NODES, SEQ_HEAD, SEQ_LIMIT, WRAP, layout
from .nodes import (
    GROUP_H,
    JUNCTION,
    MARGIN,
    VGAP,
    Edge,
    Frame,
    Graph,
    Node,
    expand_query,
    parse_expand,
    run_href,
)  # fmt: skip
from .shapes import SHAPE_LEGEND, shape, status_bar

__all__ = [
    "KEEP_MIDDLE",
    "MAX_ITEMS",
    "MAX_NODES",
    "SEQ_HEAD",
    "SEQ_LIMIT",
    "WRAP",
    "Edge",
    "Frame",
    "Graph",
    "Node",
    "expand_query",
    "layout",
    "parse_expand",
    "render_svg",
    "run_href",
]


# -- drawing --


def _box(node: Node) -> str:
    pal = svg.palette(node.status)
    data = svg.attr("data-kind", node.kind) + svg.attr("data-status", node.status)
    if node.seq is not None:
        data += svg.attr("data-seq", node.seq)
    if node.kind in ("group", "fold", "more"):
        data += svg.attr("data-count", node.count)
    if node.group is not None and node.kind == "group":
        data += svg.attr("data-group", node.group)
    title = node.title or f"{node.label}: {node.detail}"
    text_w = node.w - 16
    line1 = svg.fit(node.label, (text_w - 16) / BOLD)
    line2 = svg.fit(
        f"{pal.glyph} {node.detail}" if node.kind not in ("fold", "more", "group") else node.detail,
        text_w,
    )
    top = node.y + (19 if node.h >= GROUP_H else 18)
    body = (
        f"<title>{svg.esc(title)}</title>"
        + shape(node.kind, node.x, node.y, node.w, node.h, pal)
        + svg.text(node.x + 10, top, line1, ' font-weight="600" fill="#1d1d1d"')
        + svg.text(node.x + 10, top + 17, line2, f' fill="{pal.text}"')
    )
    corner = f' text-anchor="end" fill="{pal.text}"'
    if node.kind in ("group", "fold", "more") and node.h >= GROUP_H:
        body += status_bar(node.x + 10, node.y + node.h - 14, node.w - 20, node.counts)
        sign = f"{pal.glyph} \u229e" if node.kind == "group" else pal.glyph
        body += svg.text(node.x + node.w - 10, top, sign, corner)
    elif node.kind == "child":
        body += svg.text(node.x + node.w - 10, top, "\u2197", corner)
    elif node.kind == "compensation":  # undoes an earlier step of a failed saga
        body += svg.text(node.x + node.w - 10, top, "\u21ba", corner)
    if node.href is None:
        return f'<g class="node"{data}>{body}</g>'
    return f'<a class="node"{svg.attr("href", node.href)}{data}>{body}</a>'


def _header(graph: Graph) -> str:
    summary = f"{graph.total:,} steps"
    if graph.total:
        summary += f": {graph.drawn:,} drawn"
        if graph.grouped:
            summary += f", {graph.grouped:,} in fan-out groups (click one to expand)"
        if graph.folded:
            summary += f", {graph.folded:,} folded"
    legend, _ = svg.legend(MARGIN, 22)
    shapes = []
    x = MARGIN
    for kind, word in SHAPE_LEGEND:
        shapes.append(shape(kind, x, 46, 22, 11, svg.palette("scheduled")))
        gap = 33 if kind == "group" else 27
        shapes.append(svg.text(x + gap, 55, word, ' fill="#333"'))
        x += 27 + len(word) * svg.CHAR_WIDTH + 14 + (6 if kind == "group" else 0)
    return (
        svg.text(MARGIN, 14, summary, ' font-weight="600" fill="#333"') + legend + "".join(shapes)
    )


BOLD = 1.12  # how much wider a bold label runs than svg.CHAR_WIDTH
_FRAME = ' rx="8" fill="#fafafa" stroke="#9e9e9e" stroke-dasharray="6 3"'


def render_svg(graph: Graph) -> str:
    """The graph as one standalone ``<svg>`` element: a legend, then every box wrapped in a
    link (``data-seq``, ``data-kind``, ``data-status``; groups also ``data-group`` and
    ``data-count``), every user-supplied string escaped."""
    width = graph.width
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="run-graph" width="{width:.0f}" '
        f'height="{graph.height:.0f}" viewBox="0 0 {width:.0f} {graph.height:.0f}" '
        f'{svg.FONT} font-size="11.5" aria-label="graph of the run">',
        f'<rect width="{width:.0f}" height="{graph.height:.0f}" fill="#ffffff"/>',
        _header(graph),
    ]
    for frame in graph.frames:
        fold = "\u229f " + svg.fit(frame.label, frame.w - 30)
        out.append(
            f'<a class="frame"{svg.attr("href", frame.href)}{svg.attr("data-group", frame.group)}>'
            f"<title>{svg.esc(frame.label)}</title>"
            + svg.rect(frame.x, frame.y, frame.w, frame.h, _FRAME)
            + svg.text(frame.x + 8, frame.y + 15, fold, ' fill="#444"')
            + "</a>"
        )
    out.append('<g class="edges" fill="none" stroke="#8a8a8a" stroke-width="1.3">')
    for e in graph.edges:
        if abs(e.x1 - e.x2) < 0.5:
            out.append(f'<path d="M{e.x1:.1f} {e.y1:.1f}V{e.y2:.1f}"/>')
        else:  # straight down, then bend in the last gap: never across a column's boxes
            top = max(e.y1, e.y2 - VGAP)
            m = (top + e.y2) / 2
            curve = f"{e.x1:.1f} {m:.1f} {e.x2:.1f} {m:.1f} {e.x2:.1f} {e.y2:.1f}"
            out.append(f'<path d="M{e.x1:.1f} {e.y1:.1f}V{top:.1f}C{curve}"/>')
    out.append("</g>")
    for node in graph.nodes:
        if node.kind in ("fork", "join"):
            out.append(
                f'<circle cx="{node.x + node.w / 2:.1f}" cy="{node.y + node.h / 2:.1f}" '
                f'r="{JUNCTION / 2:.1f}" fill="#8a8a8a"/>'
            )
        else:
            out.append(_box(node))
    out.append("</svg>")
    return "".join(out)
