"""The console's rendering core: a run's steps drawn on the server, with no web framework.

- svg       SVG building blocks the drawings share: status colours and glyphs, escaping,
            text that fits, durations, the legend
- graph     the run as a graph: `layout(steps) -> Graph` (series-parallel, fan-outs folded
            into group nodes, bounded) and `render_svg(graph) -> str`
- timeline  the run in time: attempts as bars (queue wait apart from run time), timers and
            waits as spans, zoom, paging and an overview for runs of any size

Everything here is pure (steps in, data or markup out) and escapes every string that came
from a user, so the server and the tests call it alike.
"""
