"""Shared fixtures: every storage test runs against every backend, in one session.

``store_url`` is parametrised over the backends (ids ``sqlite`` and ``postgres``): SQLite
gets a fresh file in ``tmp_path``; PostgreSQL gets its own schema (``?schema=...``) in the
database named by ``DURABLE_TEST_POSTGRES``, dropped after the test. When that server is
unreachable the postgres cases skip, unless ``DURABLE_REQUIRE_POSTGRES`` is set (CI), in
which case they fail. ``store`` is an opened `Store` on ``store_url``, and ``client`` a
`durable.Client` of it.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import durable
from durable.store import Store, open_store

POSTGRES_URL = os.environ.get("DURABLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def _postgres_admin() -> Any:
    """An asyncpg connection to the test server, or skip/fail saying how to get one."""
    import asyncpg

    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL not reachable at {POSTGRES_URL} ({exc}); set DURABLE_TEST_POSTGRES"
        if os.environ.get("DURABLE_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(params=["sqlite", "postgres"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'durable.db'}"
        return
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await _postgres_admin()
    await admin.close()
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}schema={schema}"
    admin = await _postgres_admin()
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await admin.close()


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    """An opened store on a fresh database, closed after the test."""
    async with open_store(store_url) as opened:
        yield opened


class SchemaMeta:
    """Reads and overwrites the schema version recorded in a database, behind the store's
    back (to simulate a database written by a newer durable-flow)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def get(self) -> int:
        """The recorded schema version."""
        rows = await self._run("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0])

    async def set(self, version: int) -> None:
        """Record ``version`` as the schema version."""
        await self._run(f"UPDATE meta SET value = '{int(version)}' WHERE key = 'schema_version'")

    async def _run(self, sql: str) -> list[tuple[object, ...]]:
        parts = urlsplit(self.url)
        if parts.scheme == "sqlite":
            with closing(sqlite3.connect(parts.path[1:])) as db, db:
                return list(db.execute(sql))
        schema = dict(p.split("=", 1) for p in parts.query.split("&"))["schema"]
        admin = await _postgres_admin()
        try:
            await admin.execute(f'SET search_path TO "{schema}"')
            return [tuple(r) for r in await admin.fetch(sql)]
        finally:
            await admin.close()


@pytest.fixture
def schema_meta(store_url: str) -> SchemaMeta:
    """Access to the schema version recorded in ``store_url``'s database."""
    return SchemaMeta(store_url)


@pytest.fixture
async def client(store_url: str) -> AsyncIterator[durable.Client]:
    """A client of a fresh database of each backend (see ``store_url``)."""
    async with durable.connect(store_url) as c:
        yield c


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[Any]:
    """The HTTP API (a real uvicorn server on a free port) over a fresh database of each
    backend, with a worker serving tests/server_app.py (see tests/serverkit.py)."""
    from serverkit import running

    async with running(store_url) as served:
        yield served
