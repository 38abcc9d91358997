"""Box shapes of the run graph, one per kind of step, so that the shape says what a step
is without colour: activities are rounded boxes, child runs double boxes, timers pills,
signal and external waits hexagons, published values and patch markers slanted, fan-out
groups stacked boxes, folded steps dashed, a saga's compensations rounded boxes with a solid
band down their left side.
"""

from __future__ import annotations

from .svg import Palette, palette, rect

__all__ = ["SHAPE_LEGEND", "shape", "status_bar"]

#: The shapes the legend explains: (kind, words).
SHAPE_LEGEND = (
    ("activity", "activity"),
    ("child", "child run"),
    ("timer", "timer"),
    ("signal", "signal / external wait"),
    ("group", "fan-out (click to expand)"),
    ("fold", "folded"),
)


def _polygon(points: list[tuple[float, float]], paint: str) -> str:
    return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in points)}" {paint}/>'


def shape(kind: str, x: float, y: float, w: float, h: float, pal: Palette) -> str:
    """The outline of a box of ``kind``: its shape is the cue that does not need colour."""
    paint = f'fill="{pal.fill}" stroke="{pal.stroke}" stroke-width="1.6"'
    if pal.dashed or kind in ("fold", "more"):
        paint += ' stroke-dasharray="5 3"'
    if kind in ("timer", "condition"):
        return rect(x, y, w, h, f' rx="{h / 2:.1f}" {paint}')
    if kind in ("signal", "external"):
        d = min(14.0, h / 2)
        m = y + h / 2
        return _polygon(
            [(x + d, y), (x + w - d, y), (x + w, m), (x + w - d, y + h), (x + d, y + h), (x, m)],
            paint,
        )
    if kind in ("publish", "marker", "tags"):
        d = min(10.0, h / 3)
        return _polygon([(x + d, y), (x + w, y), (x + w - d, y + h), (x, y + h)], paint)
    box = rect(x, y, w, h, f' rx="6" {paint}')
    if kind == "child":
        inner = f' rx="4" fill="none" stroke="{pal.stroke}" stroke-width="1"'
        return box + rect(x + 3, y + 3, w - 6, h - 6, inner)
    if kind == "group":
        return "".join(rect(x + d, y - d, w, h, f' rx="6" {paint}') for d in (6.0, 3.0)) + box
    if kind == "compensation":  # an undo: the band marks it apart from the steps it undoes
        return box + rect(x, y, 5, h, f' rx="2" fill="{pal.stroke}"')
    if kind == "damaged":
        return box.replace('stroke-width="1.6"', 'stroke-width="3"')
    return box


def status_bar(x: float, y: float, w: float, counts: dict[str, int]) -> str:
    """Counts by status as one bar of status-coloured segments, ``w`` wide at (x, y)."""
    out = [rect(x, y, w, 7, ' fill="#fff" stroke="#999" stroke-width="0.5"')]
    total = sum(counts.values()) or 1
    for status, n in counts.items():
        part = w * n / total
        out.append(rect(x, y, part, 7, f' fill="{palette(status).stroke}"'))
        x += part
    return "".join(out)
