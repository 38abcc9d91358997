"""The storage contract suite: pytest tests every `durable.store.Store` backend must pass.

Its parts: `runs` (runs, the inbox, claims, commits), `listing` (filters, paging, counts,
tags, queue figures), `routing` (continue-as-new, children,
items for other workflows), `work` (tasks, timers, termination, workers, wake-ups, several
processes), `boundaries` (lease expiry at exactly ``now``, payloads at the size limit),
`remote` (what remote tasks and external waits need), `logs` (step logs), `schedules` (a
schedule's compare-and-set with its runs, what is due), `repair` (re-opening a run and
forking one: `durable.repair`), `tagging` (tags a step sets, searching by tag),
`retention` (pruning closed runs), `limits` (queue limits and priorities), `queries`
(queries left for workers and their answers: `durable.querybox`), `updates` (outcomes of
updates); `kit` holds
the helpers and the
``store`` fixture. The two backends shipped with durable-flow run it (tests/test_store.py,
tests/test_store_work.py); a third backend runs it the same way. In its test module:

    import pytest

    from durable.testing.store_contract import *  # noqa: F403  (the tests and `store`)

    @pytest.fixture
    async def store_url(tmp_path):
        # the URL of a fresh, empty database of your backend for each test;
        # drop it afterwards if it lives on a server
        yield f"mystore:///{tmp_path}/db"

Requirements:

- ``open_store(store_url)`` must reach your store: register it under the entry-point group
  ``durable.backends`` (``mystore = "my_package:MyStore"`` in your pyproject.toml's
  ``[project.entry-points."durable.backends"]``). Some tests open the URL in a child
  process, so it must work there too (an installed package, not a test-only class).
- pytest-asyncio with ``asyncio_mode = "auto"`` (the tests and the ``store`` fixture are
  ``async def`` without marks).
- ``store_url`` may be parametrised, to run the suite against several databases.

The suite imports `store` (an opened store on ``store_url``, closed after each test) and
only test functions besides. It uses real databases and explicit times, never a mock or a
wall clock, so a backend that passes it behaves as the worker and the client expect.
"""

from __future__ import annotations

from .boundaries import *  # noqa: F403
from .boundaries import __all__ as _boundaries
from .kit import store
from .limits import *  # noqa: F403
from .limits import __all__ as _limits
from .listing import *  # noqa: F403
from .listing import __all__ as _listing
from .logs import *  # noqa: F403
from .logs import __all__ as _logs
from .queries import *  # noqa: F403
from .queries import __all__ as _queries
from .remote import *  # noqa: F403
from .remote import __all__ as _remote
from .repair import *  # noqa: F403
from .repair import __all__ as _repair
from .retention import *  # noqa: F403
from .retention import __all__ as _retention
from .routing import *  # noqa: F403
from .routing import __all__ as _routing
from .runs import *  # noqa: F403
from .runs import __all__ as _runs
from .schedules import *  # noqa: F403
from .schedules import __all__ as _schedules
from .tagging import *  # noqa: F403
from .tagging import __all__ as _tagging
from .updates import *  # noqa: F403
from .updates import __all__ as _updates
from .work import *  # noqa: F403
from .work import __all__ as _work

__all__ = [
    "store",
    *_runs,
    *_listing,
    *_routing,
    *_work,
    *_boundaries,
    *_remote,
    *_logs,
    *_schedules,
    *_repair,
    *_tagging,
    *_retention,
    *_limits,
    *_queries,
    *_updates,
]
