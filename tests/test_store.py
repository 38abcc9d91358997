"""The storage contract (`durable.testing.store_contract`) on both shipped backends, and the
schema-version checks that need to write behind a store's back (``schema_meta``).

Every test runs against every backend through the ``store_url`` fixture
(tests/conftest.py); its other parts run from tests/test_store_work.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from durable.errors import StoreError
from durable.store import StepCommit, open_store
from durable.testing.store_contract.kit import entries, new_run, new_task, start, store, worker
from durable.testing.store_contract.listing import *  # noqa: F403
from durable.testing.store_contract.routing import *  # noqa: F403
from durable.testing.store_contract.runs import *  # noqa: F403
from durable.testing.store_contract.tagging import *  # noqa: F403

__all__ = ["store"]  # the contract's fixture, used by the tests imported above


async def test_newer_schema_is_refused_and_nothing_changes(
    store_url: str, schema_meta: Any
) -> None:
    async with open_store(store_url) as s:
        run, _ = await s.create_run(new_run("kept"), if_exists="error")
    current = await schema_meta.get()
    await schema_meta.set(current + 6)
    with pytest.raises(StoreError) as info:
        await open_store(store_url).open()
    message = str(info.value)
    assert f"schema version {current + 6}" in message
    assert f"supports up to {current}" in message
    assert "pip install -U durable-flow" in message
    assert await schema_meta.get() == current + 6  # not "migrated" down
    await schema_meta.set(current)
    async with open_store(store_url) as s:
        kept = await s.get_run("kept")
        assert kept is not None
        assert kept.run_id == run.run_id


async def test_an_index_added_since_the_schema_shipped_is_built_on_open(
    store_url: str, schema_meta: Any
) -> None:
    """A database created before the runs-by-name index existed gets it when opened, its
    runs intact and its schema version unchanged: processes of the same schema version
    without that index keep working beside it (no rolling deploy is refused)."""
    async with open_store(store_url) as s:
        run, _ = await s.create_run(new_run("old", name="report"), if_exists="error")
    version = await schema_meta.get()
    index = "runs_name" if store_url.startswith("sqlite") else "runs_name_idx"
    await schema_meta._run(f"DROP INDEX {index}")
    async with open_store(store_url) as s:
        [listed] = await s.list_runs(name="report")
        assert listed.run_id == run.run_id
    assert await schema_meta.get() == version
    await schema_meta._run(f"DROP INDEX {index}")  # it was built again: dropping works


async def test_a_column_added_since_the_schema_shipped_is_added_on_open(
    store_url: str, schema_meta: Any
) -> None:
    """A database created before workers recorded their signatures gets the column when
    opened, its schema version unchanged; its workers' rows are read without one."""
    async with open_store(store_url) as s:
        await s.register_worker(worker("old"))
    version = await schema_meta.get()
    await schema_meta._run("ALTER TABLE workers DROP COLUMN signatures")
    async with open_store(store_url) as s:
        [old] = await s.list_workers()
        assert old.signatures == {}
        await s.register_worker(worker("new", signatures={"wf": "{}"}))
        described = {w.worker_id: w.signatures for w in await s.list_workers()}
        assert described == {"old": {}, "new": {"wf": "{}"}}
    assert await schema_meta.get() == version


async def test_a_table_added_since_the_schema_shipped_is_created_on_open(
    store_url: str, schema_meta: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table in ``EXTRA_TABLES`` (schedules, queue limits, ...) is created, with its
    index, when an existing database is opened, its schema version unchanged and its runs
    intact; opening again finds it and changes nothing."""
    from durable_postgres import schema as pg_schema
    from durable_sqlite import schema as sqlite_schema

    async with open_store(store_url) as s:
        await s.create_run(new_run("old"), if_exists="error")
    version = await schema_meta.get()
    probe = (
        "probe_extra",
        [
            "CREATE TABLE IF NOT EXISTS probe_extra (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS probe_extra_v ON probe_extra (v)",
        ],
    )
    monkeypatch.setattr(sqlite_schema, "EXTRA_TABLES", (probe,))
    monkeypatch.setattr(pg_schema, "EXTRA_TABLES", [probe])
    for _ in range(2):
        async with open_store(store_url) as s:
            assert await s.get_run("old") is not None
    await schema_meta._run("INSERT INTO probe_extra (k, v) VALUES ('a', 1)")
    await schema_meta._run("DROP INDEX probe_extra_v")  # it was built with the table
    await schema_meta._run("DROP TABLE probe_extra")
    assert await schema_meta.get() == version


async def test_a_database_from_before_queue_limits_gets_them_on_open(
    store_url: str, schema_meta: Any
) -> None:
    """Queue limits' columns (tasks.key, tasks.priority), index (on priority: added after
    the columns) and tables are added to a database that predates them, its version and
    rows kept; its old tasks have no key and priority 0."""
    from durable.limits import QueueLimits

    async with open_store(store_url) as s:
        run_id = await start(s, "old")
        step = StepCommit(run_id, "w1", 1, entries(2, "activity_scheduled"),
                          new_tasks=[new_task(run_id, "old", 2, queue="q")])  # fmt: skip
        assert await s.commit_steps([step], 4.0) == [True]
    version = await schema_meta.get()
    index = "tasks_ready" if store_url.startswith("sqlite") else "tasks_ready_idx"
    await schema_meta._run(f"DROP INDEX {index}")
    for statement in (
        "DROP TABLE queue_limits",
        "DROP TABLE queue_starts",
        "ALTER TABLE tasks DROP COLUMN key",
        "ALTER TABLE tasks DROP COLUMN priority",
    ):
        await schema_meta._run(statement)
    async with open_store(store_url) as s:
        await s.set_queue_limits(QueueLimits("q", concurrency=1), 5.0)
        [task] = await s.claim_tasks(
            "x", queues=["q"], names=None, now=10.0, lease_until=50.0, limit=5
        )
        assert (task.task_id, task.key, task.priority) == (f"{run_id}:2", None, 0)
    await schema_meta._run(f"DROP INDEX {index}")  # it was built again
    assert await schema_meta.get() == version


def test_the_contract_suite_exports_every_test_it_defines() -> None:
    """A test missing from a part's ``__all__`` would silently not run for any backend."""
    import inspect

    from durable.testing import store_contract
    from durable.testing.store_contract import boundaries, limits, logs, routing, runs, work

    for part in (runs, routing, work, boundaries, logs, limits):
        defined = {
            n for n, f in inspect.getmembers(part, inspect.isfunction) if n.startswith("test_")
        }
        assert defined == set(part.__all__) - {"store"}, part.__name__
        assert defined <= set(store_contract.__all__)
    assert "store" in store_contract.__all__


def test_open_store_finds_backends_by_entry_point_and_lists_them_when_unknown() -> None:
    from durable_postgres import PostgresStore
    from durable_sqlite import SQLiteStore

    assert type(open_store("sqlite:///x.db")) is SQLiteStore
    assert type(open_store("postgresql://localhost/app")) is PostgresStore
    assert type(open_store("postgres://localhost/app")) is PostgresStore
    with pytest.raises(StoreError) as info:
        open_store("mysql://app:hunter2@localhost/app")
    message = str(info.value)
    assert "no installed backend serves mysql://" in message
    assert "installed: postgres://, postgresql://, sqlite://" in message
    assert "hunter2" not in message
    assert "mysql://app:***@localhost/app" in message


async def test_concurrent_opens_of_an_empty_database_run_each_migration_once(
    store_url: str, schema_meta: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The shipped backends log each migration they run: of six stores opened at once on
    an empty database, exactly one migrates it, and reopening it migrates nothing."""
    import asyncio
    import logging

    caplog.set_level(logging.INFO)
    stores = [open_store(store_url) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    await asyncio.gather(*(s.aclose() for s in stores))
    migrations = [r for r in caplog.records if r.getMessage().startswith("Migrating ")]
    versions = [int(r.getMessage().rsplit(" ", 1)[1]) for r in migrations]
    assert versions == list(range(1, len(versions) + 1))
    assert versions[-1] == await schema_meta.get()
    caplog.clear()
    async with open_store(store_url):
        pass
    assert not [r for r in caplog.records if r.getMessage().startswith("Migrating ")]
