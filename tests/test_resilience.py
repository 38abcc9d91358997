"""Workflows keep going through PostgreSQL losing every connection, end to end."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

import durable
from durable.errors import StoreError
from durable.store import open_store

if os.environ.get("DURABLE_REQUIRE_POSTGRES"):
    import asyncpg  # required (CI): a missing driver fails here rather than skipping
else:
    asyncpg = pytest.importorskip("asyncpg")

BASE_URL = os.environ.get("DURABLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    try:
        admin = await asyncpg.connect(BASE_URL, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        if os.environ.get("DURABLE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {BASE_URL} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {BASE_URL} unreachable ({exc})")
    name = "test_res_" + uuid.uuid4().hex[:12]
    yield name
    await admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    await admin.close()


@durable.activity
async def square(x: int) -> int:
    await asyncio.sleep(0.01)
    return x * x


@durable.workflow
async def sum_of_squares(n: int) -> int:
    total = 0
    for i in range(n):
        total += await square(i)
        await asyncio.sleep(0.01)  # a durable timer between steps
    return total


async def _terminate_backends(schema: str) -> int:
    admin = await asyncpg.connect(BASE_URL)
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND application_name = $1",
            f"durable[{schema}]",
        )
        return len(rows)
    finally:
        await admin.close()


@pytest.mark.slow
async def test_100_workflows_survive_all_backends_terminated(pg_schema: str) -> None:
    url = f"{BASE_URL}{'&' if '?' in BASE_URL else '?'}schema={pg_schema}"
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[sum_of_squares], activities=[square]):
            handles = [await client.start(sum_of_squares, 4 + i % 4) for i in range(100)]
            killed = 0
            for _ in range(5):
                await asyncio.sleep(0.3)
                killed += await _terminate_backends(pg_schema)
            results = await asyncio.gather(*(h.result(timeout=90) for h in handles))
    assert killed >= 5, "the test must really have cut connections"
    assert results == [sum(i * i for i in range(4 + k % 4)) for k in range(100)]
    async with durable.connect(url) as client:
        for handle, k in zip(handles, range(100), strict=True):
            events = await client.get_handle(handle.id).history()
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            kinds = Counter(e.kind for e in events)
            steps = 4 + k % 4
            assert kinds["activity_scheduled"] == steps
            assert kinds["activity_completed"] == steps
            assert kinds["workflow_completed"] == 1


def test_missing_asyncpg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    for name in [m for m in sys.modules if m.split(".")[0] == "durable_postgres"]:
        monkeypatch.delitem(sys.modules, name)  # as in a process where it never loaded
    with pytest.raises(StoreError, match=r"pip install 'durable-flow\[postgres\]'"):
        open_store("postgresql://localhost/app")


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="sqlite:///") as info:
        open_store("mysql://localhost/app")
    assert "mysql://localhost/app" in str(info.value)
