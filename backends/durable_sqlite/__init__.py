"""The SQLite backend of durable: the embedded default, one file shared by local processes.

Layout: ``store`` is `SQLiteStore` itself (URL options, concurrency model, wake-ups);
``schema`` the tables, indexes and migrations; ``steps`` the fenced group commit of
workflow steps; ``claims`` the worker's polling queries (claims, task outcomes, timers).
Users never import this package: ``durable.connect("sqlite:///app.db")`` picks it.
"""

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
