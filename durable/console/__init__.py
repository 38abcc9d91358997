"""The console: durable's web pages, served by ``durable server`` beside the HTTP API at ``/``.

Pages (they need the web stack: Starlette, Jinja2):

- pages     the runs list, the run page, queues and workers; the actions (Jinja2
            templates in ``templates/``; ``static/``: one stylesheet, one small script,
            shipped in the wheel: no CDN, no build step)
- guard     the token login, cross-site request refusal, security headers

The rendering core, pure (steps in, data or markup out; every user string escaped), so
the server and the tests call it alike:

- svg       SVG building blocks the drawings share: status colours and glyphs, escaping,
            text that fits, durations, the legend
- graph     the run as a graph: `layout(steps) -> Graph` (series-parallel, fan-outs folded
            into group nodes, bounded) and `render_svg(graph) -> str`
- timeline  the run in time: attempts as bars (queue wait apart from run time), timers and
            waits as spans, zoom, paging and an overview for runs of any size
"""
