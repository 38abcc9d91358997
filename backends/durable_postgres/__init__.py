"""PostgreSQL backend for durable: `PostgresStore` implements `durable.store.Store`.

Users never import this package: ``durable.connect("postgresql://user@host/db")`` picks it.
Module layout: `store` (the class), `commit` (group commit), `finish` (grouped task ends),
`connection` (pool, retries), `listener` (LISTEN/NOTIFY wake-ups), `schema` (tables,
indexes, migrations).
"""

try:
    import asyncpg  # noqa: F401  (checked first, to say how to install it)
except ImportError as exc:  # durable.store.open_store turns this into a StoreError
    raise ImportError(
        "PostgreSQL support needs asyncpg: pip install 'durable-flow[postgres]'", name="asyncpg"
    ) from exc

from .schema import SCHEMA_VERSION
from .store import POLL_INTERVAL, PostgresStore

__all__ = ["POLL_INTERVAL", "SCHEMA_VERSION", "PostgresStore"]
