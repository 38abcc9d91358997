"""The console: durable's web pages, served by ``durable server`` beside the HTTP API at ``/``.

Layout:

- pages   the runs list and the run page (Jinja2 templates in ``templates/``), actions
- guard   the token login, cross-site request refusal, security headers

Assets (``static/``: one stylesheet, one small script) ship in the wheel: no CDN, no build.
"""

from .pages import routes

__all__ = ["routes"]
