"""SVG building blocks the console's drawings share: status colours and glyphs, escaping,
text that fits a box, readable durations, and the status legend.

Colour is never the only cue: every status also has a glyph and its name is written out,
so the drawings read in greyscale and for colour-blind operators.
"""

from __future__ import annotations

import html
from datetime import timedelta
from typing import NamedTuple

__all__ = [
    "FONT",
    "STATUSES",
    "Palette",
    "attr",
    "duration",
    "esc",
    "fit",
    "legend",
    "palette",
    "rect",
    "text",
]

FONT = 'font-family="DejaVu Sans, Verdana, Arial, sans-serif"'
CHAR_WIDTH = 6.2  # mean width of an 11.5 px DejaVu Sans character, to cut labels that overflow


class Palette(NamedTuple):
    """How one status is drawn: box fill, outline and text colours, a glyph, dashed or not."""

    fill: str
    stroke: str
    text: str
    glyph: str
    dashed: bool = False


#: Statuses in the order the legend lists them, with how each is drawn.
STATUSES: dict[str, Palette] = {
    "completed": Palette("#e7f4ea", "#2e7d32", "#1b4d1f", "\u2713"),  # check mark
    "failed": Palette("#fde8e8", "#c62828", "#8e1616", "\u2717"),  # ballot x
    "running": Palette("#e3effd", "#1565c0", "#0d3f7a", "\u25b6"),  # play
    "retrying": Palette("#fff1df", "#e65100", "#8a3100", "\u21bb"),  # clockwise arrow
    "waiting": Palette("#f3e8f7", "#6a1b9a", "#4a126b", "\u25f7"),  # clock face
    "scheduled": Palette("#eef1f3", "#546e7a", "#37474f", "\u2026"),  # ellipsis
    "cancelled": Palette("#f4f4f4", "#8a8a8a", "#555555", "\u2298", dashed=True),  # circled /
}
_UNKNOWN = Palette("#ffffff", "#444444", "#222222", "?")


def palette(status: str) -> Palette:
    """How ``status`` is drawn (a neutral outline for a status this module does not know)."""
    return STATUSES.get(status, _UNKNOWN)


def esc(text: object) -> str:
    """``text`` safe inside SVG/HTML text and double-quoted attributes."""
    return html.escape(str(text), quote=True)


def attr(name: str, value: object) -> str:
    """`` name="value"`` with the value escaped."""
    return f' {name}="{esc(value)}"'


def fit(text: str, width: float) -> str:
    """``text`` cut with an ellipsis to fit ``width`` pixels (not escaped)."""
    most = max(1, int(width / CHAR_WIDTH))
    return text if len(text) <= most else text[: most - 1] + "\u2026"


def duration(delta: timedelta | float | None) -> str:
    """A duration as people read it: ``850 ms``, ``4.2 s``, ``3 min 5 s``, ``2 h 10 min``,
    ``3 d 4 h``; empty for ``None``."""
    if delta is None:
        return ""
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s" if sec else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def legend(x: float, y: float, statuses: list[str] | None = None) -> tuple[str, float]:
    """The status legend as one SVG group at (x, y): a swatch, glyph and name per status.
    Returns the markup and its width."""
    parts = [f'<g class="legend" transform="translate({x:.0f},{y:.0f})" {FONT} font-size="11">']
    cx = 0.0
    for status in statuses if statuses is not None else list(STATUSES):
        pal = palette(status)
        dash = ' stroke-dasharray="4 2"' if pal.dashed else ""
        parts.append(
            f'<rect x="{cx:.0f}" y="0" width="14" height="14" rx="3" fill="{pal.fill}" '
            f'stroke="{pal.stroke}" stroke-width="1.5"{dash}/>'
            f'<text x="{cx + 7:.0f}" y="11" text-anchor="middle" fill="{pal.text}">'
            f"{esc(pal.glyph)}</text>"
            f'<text x="{cx + 19:.0f}" y="11" fill="#333">{esc(status)}</text>'
        )
        cx += 19 + len(status) * CHAR_WIDTH + 14
    parts.append("</g>")
    return "".join(parts), cx


def rect(x: float, y: float, w: float, h: float, extra: str = "") -> str:
    """A ``<rect>`` at (x, y), ``w`` by ``h``, with ``extra`` attributes (trusted markup)."""
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"{extra}/>'


def text(x: float, y: float, content: str, extra: str = "") -> str:
    """A ``<text>`` at (x, y) whose ``content`` is escaped here."""
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{esc(content)}</text>'
