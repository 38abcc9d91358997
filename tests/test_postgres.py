"""PostgreSQL-specific behaviour of `durable_postgres.PostgresStore`.

The storage contract itself is tested for every backend by ``tests/test_store.py``; here is
what only PostgreSQL has: migrations racing across connections, LISTEN/NOTIFY between
processes, surviving terminated backends, SKIP LOCKED claims, and index-driven plans.
Each test gets its own PostgreSQL schema (``?schema=``), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

if os.environ.get("DURABLE_REQUIRE_POSTGRES"):
    import asyncpg  # required (CI): a missing driver fails here rather than skipping
else:
    asyncpg = pytest.importorskip("asyncpg")

from durable.errors import StoreError
from durable.limits import QueueLimits
from durable.notify import Hub
from durable.store import (
    TOPIC_RUNS,
    JournalEntry,
    NewRun,
    NewTask,
    NewTimer,
    StepCommit,
    TaskOutcome,
    run_topic,
)
from durable_postgres import SCHEMA_VERSION, PostgresStore
from durable_postgres import claims as pg_claims
from durable_postgres import connection as pg_connection
from durable_postgres import limits as pg_limits
from durable_postgres import store as pg_store
from durable_postgres.connection import parse_url

BASE_URL = os.environ.get("DURABLE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def _reachable() -> str | None:
    try:
        conn = await asyncpg.connect(BASE_URL, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        return repr(exc)
    await conn.close()
    return None


@pytest.fixture(scope="module")
def server() -> Iterator[None]:
    problem = asyncio.run(_reachable())
    if problem is not None:
        if os.environ.get("DURABLE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {BASE_URL} is required but unreachable: {problem}")
        pytest.skip(f"PostgreSQL at {BASE_URL} unreachable ({problem}); set DURABLE_TEST_POSTGRES")
    return


@pytest.fixture
async def schema(server: None) -> AsyncIterator[str]:
    name = "test_pg_" + uuid.uuid4().hex[:12]
    yield name
    conn = await asyncpg.connect(BASE_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def url(schema: str) -> str:
    return _with_schema(BASE_URL, schema)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(url) as s:
        yield s


@pytest.fixture
async def admin() -> AsyncIterator[Any]:
    conn = await asyncpg.connect(BASE_URL)
    yield conn
    await conn.close()


def _run(i: int, now: float, queue: str = "default", name: str = "wf") -> NewRun:
    return NewRun(f"wf-{i}", f"run-{i}", name, queue, b"input", now + i * 1e-6)


async def _terminate_store_backends(admin: Any, schema: str) -> int:
    """Kill every server connection of stores on ``schema`` (pool and listener alike)."""
    rows = await admin.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name = $1",
        f"durable[{schema}]",
    )
    return len(rows)


# ---- URLs and lifecycle --------------------------------------------------------------


def test_parse_url_strips_schema_and_password() -> None:
    info = parse_url("postgres://app:s3cret@db:5433/prod?schema=orders&sslmode=disable")
    assert info.schema == "orders"
    assert "schema=" not in info.dsn
    assert "sslmode=disable" in info.dsn
    assert "s3cret" in info.dsn
    assert info.public_url == "postgres://app:***@db:5433/prod?schema=orders&sslmode=disable"
    shown = parse_url("postgresql://app@db/x?password=s3cret&sslpassword=k3y&schema=s").public_url
    assert shown == "postgresql://app@db/x?password=***&sslpassword=***&schema=s"
    assert info.channel == "durable_orders"
    assert info.server_settings["search_path"] == '"orders"'
    assert parse_url("postgresql://db/x").schema == "durable"


@pytest.mark.parametrize("bad", ["postgresql://db/x?schema=a-b", "postgresql://db/x?schema=1a"])
def test_parse_url_refuses_bad_schema_names(bad: str) -> None:
    with pytest.raises(StoreError, match="Invalid schema name"):
        parse_url(bad)


@pytest.mark.parametrize(
    "schema", ["pg_catalog", "information_schema", "pg_toast", "pg_temp_3", "PG_Catalog", "pg_"]
)
def test_system_schemas_are_refused_before_connecting(schema: str) -> None:
    url = f"postgresql://app:s3cret@127.0.0.1:1/x?schema={schema}"  # nothing listens on port 1
    with pytest.raises(StoreError) as info:
        PostgresStore(url)
    message = str(info.value)
    assert f"Schema {schema!r} in 'postgresql://app:***@127.0.0.1:1/x?schema={schema}'" in message
    assert "belongs to PostgreSQL itself" in message
    assert "Name a schema of your own" in message
    assert parse_url("postgresql://db/x?schema=pgx_ok").schema == "pgx_ok"


async def test_store_must_be_open(url: str) -> None:
    store = PostgresStore(url)
    with pytest.raises(StoreError, match="not open yet"):
        await store.get_run("x")
    async with store:
        assert await store.get_run("x") is None
    with pytest.raises(StoreError, match="has been closed"):
        await store.list_runs()
    with pytest.raises(StoreError, match="has been closed"):
        await store.wait([TOPIC_RUNS], 0.01)
    with pytest.raises(StoreError, match="Cannot reopen"):
        await store.open()
    await store.aclose()  # idempotent


async def test_unreachable_server_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match="Cannot connect to PostgreSQL"):
        async with PostgresStore("postgresql://nobody@127.0.0.1:1/nothing"):
            pass
    assert time.monotonic() - started < 10


# ---- secrets -------------------------------------------------------------------------


def _with_secrets(url: str) -> str:
    """``url`` with a password in the userinfo and another in the query (the test server
    trusts local connections, so they are carried, and ignored)."""
    scheme, rest = url.split("://", 1)
    userinfo, at, hosts = rest.rpartition("@")
    user = userinfo.partition(":")[0] if at else "postgres"
    return _with_schema(f"{scheme}://{user}:secret1@{hosts}", "x").replace(
        "schema=x", "password=secret2"
    )


async def test_a_worker_logs_no_password(schema: str, caplog: pytest.LogCaptureFixture) -> None:
    import durable
    from tests.test_worker import add_one, count_to

    url = _with_schema(_with_secrets(BASE_URL), schema)
    caplog.set_level(logging.DEBUG)
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[count_to], activities=[add_one]) as worker:
            assert await client.execute(count_to, 2, timeout=10) == 2
            store = worker.store
            assert "secret" not in store.url
            assert "secret" not in repr(store)
        handle = client.get_handle("no-such-workflow")
        with pytest.raises(durable.WorkflowNotFound) as missing:
            await handle.describe()
    assert "Migrating postgresql://" in caplog.text  # the URL is logged, masked
    assert ":***@" in caplog.text
    assert "password=***" in caplog.text
    assert "secret" not in caplog.text
    assert "secret" not in str(missing.value)


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("127.0.0.1:1/test", "Cannot connect to PostgreSQL at postgresql://postgres:***@"),
        ("127.0.0.1:notaport/test", "Cannot use the PostgreSQL URL postgresql://postgres:***@"),
    ],
)
async def test_connection_errors_show_no_password(where: str, says: str) -> None:
    url = f"postgresql://postgres:secret1@{where}?password=secret2&sslpassword=secret3"
    with pytest.raises(StoreError) as info:
        async with PostgresStore(url):
            pass
    assert says in str(info.value)
    assert "password=***&sslpassword=***" in str(info.value)
    assert "secret" not in str(info.value)


# ---- migrations ----------------------------------------------------------------------


async def test_ten_concurrent_opens_of_an_empty_schema(url: str, schema: str, admin: Any) -> None:
    stores = [PostgresStore(url) for _ in range(10)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        version = await admin.fetchval(
            f"SELECT value FROM \"{schema}\".meta WHERE key = 'schema_version'"
        )
        assert version == str(SCHEMA_VERSION)
        # every store works, and they all see one another's writes
        now = time.time()
        await stores[0].create_run(_run(1, now), if_exists="error")
        for s in stores:
            run = await s.get_run("wf-1")
            assert run is not None
            assert run.run_id == "run-1"
    finally:
        await asyncio.gather(*(s.aclose() for s in stores))


async def test_newer_schema_is_refused_and_left_alone(url: str, schema: str, admin: Any) -> None:
    async with PostgresStore(url):
        pass
    newer = SCHEMA_VERSION + 1
    await admin.execute(
        f"UPDATE \"{schema}\".meta SET value = $1 WHERE key = 'schema_version'", str(newer)
    )
    tables = await admin.fetchval(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
    )
    with pytest.raises(StoreError) as info:
        await PostgresStore(url).open()
    message = str(info.value)
    assert f"schema version {newer}, newer than this durable-flow" in message
    assert f"supports up to {SCHEMA_VERSION}" in message
    assert "on every worker and client" in message
    assert await admin.fetchval(
        f"SELECT value FROM \"{schema}\".meta WHERE key = 'schema_version'"
    ) == str(newer)
    assert tables == await admin.fetchval(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema
    )


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("UPDATE meta SET value = 'two' WHERE key = 'schema_version'", "is 'two', not a whole"),
        ("DELETE FROM meta WHERE key = 'schema_version'", "has no schema_version row"),
        ("DROP TABLE meta", "it has durable's table(s) inbox, journal, published, runs, tasks"),
    ],
)
async def test_an_unreadable_schema_version_is_explained(
    url: str, schema: str, admin: Any, damage: str, says: str
) -> None:
    async with PostgresStore(url):
        pass
    await admin.execute(f'SET search_path TO "{schema}"')
    await admin.execute(damage)
    with pytest.raises(StoreError) as info:
        await PostgresStore(url).open()
    message = str(info.value)
    assert f"Cannot tell which schema version schema {schema!r} of {url} has" in message
    assert says in message
    assert "Restore the schema from a backup" in message


@pytest.fixture
async def reader(schema: str, admin: Any) -> AsyncIterator[str]:
    """A login role that may read ``schema`` and nothing more (a dashboard's, say); its URL."""
    role = "durable_reader_" + uuid.uuid4().hex[:8]
    await admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        yield role
    finally:
        await admin.execute(f"DROP OWNED BY {role}")  # and its privileges
        await admin.execute(f"DROP ROLE {role}")


async def test_a_role_that_cannot_create_the_schema_is_told_so(
    url: str, schema: str, admin: Any, reader: str
) -> None:
    """Opening an empty schema with a role without the right to create it: a `StoreError`
    that names the role and says how to fix it, not asyncpg's bare privilege error."""
    # A new role has CONNECT and TEMPORARY on the database (PUBLIC's), not CREATE.
    as_reader = url.replace("postgres@", f"{reader}@", 1)
    with pytest.raises(StoreError) as info:
        await PostgresStore(as_reader).open()
    message = str(info.value)
    assert f"role {reader!r} may not create or change durable's tables" in message
    assert "Open it once with a role that may" in message
    assert "password" not in message
    assert await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema) == 0


async def test_a_read_only_role_opens_a_migrated_schema_and_reads(
    url: str, schema: str, admin: Any, reader: str
) -> None:
    async with PostgresStore(url) as owner:
        await owner.create_run(_run(1, time.time()), if_exists="error")
    await admin.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO {reader}')
    await admin.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO {reader}')
    async with PostgresStore(url.replace("postgres@", f"{reader}@", 1)) as store:
        run = await store.get_run("wf-1")
        assert run is not None
        assert run.run_id == "run-1"


# ---- claims --------------------------------------------------------------------------


async def test_two_owners_racing_never_share_a_run(url: str) -> None:
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        now = time.time()
        for i in range(200):
            await a.create_run(_run(i, now), if_exists="error")

        async def claimer(store: PostgresStore, owner: str) -> list[str]:
            got: list[str] = []
            while True:
                claimed = await store.claim_runs(
                    owner, queues=["default"], names=["wf"], now=now, lease_until=now + 60,
                    limit=7,
                )  # fmt: skip
                if not claimed:
                    return got
                got.extend(c.run.run_id for c in claimed)

        results = await asyncio.gather(
            claimer(a, "owner-a"), claimer(b, "owner-b"), claimer(a, "owner-c")
        )
        everything = [r for got in results for r in got]
        assert len(everything) == len(set(everything)) == 200
        assert all(results), "every claimer got some runs (SKIP LOCKED, not waiting)"


async def test_claims_commit_without_waiting_for_the_wal_flush(store: PostgresStore) -> None:
    # A claim lost with the server is only work handed out again: its transaction sets
    # synchronous_commit off for itself alone; every other write waits for the flush.
    async def show(conn: Any) -> tuple[str, tuple[str, ...]]:
        return await conn.fetchval("SHOW synchronous_commit"), ()

    assert await store._db.write(show, relaxed=True) == ("off", ())
    for _ in range(3):  # on every pooled connection after it, too
        assert await store._db.write(show) == ("on", ())
    assert pg_connection.RELAXED in pg_limits.XID_AND_ANY_LIMITS  # claim_tasks' first statement
    # The claims that are statements of their own turn it off for their own transaction.
    now = time.time()
    claims = [
        (pg_claims.claim_runs_sql(1, alone=True), [["q"], ["wf"], now, "a", now + 60, 5, "q"]),
        (
            pg_claims.claim_tasks_sql(1, alone=True),
            [["q"], ["act"], now, "a", now + 60, 5, [], "q"],
        ),
        (pg_claims.claim_tasks_sql(None, alone=True), [None, None, now, "a", now + 60, 5, []]),
    ]
    async with store._db.pool.acquire() as conn:
        for sql, args in claims:
            async with conn.transaction():
                assert await conn.fetchval("SHOW synchronous_commit") == "on"
                await conn.fetch(sql, *args)
                assert await conn.fetchval("SHOW synchronous_commit") == "off"
            assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_claims_are_statements_of_their_own(store: PostgresStore) -> None:
    """Where no queue has limits, a claim of runs is two statements and a claim of tasks one,
    outside any transaction (a transaction costs BEGIN and COMMIT round trips); with a queue
    that has limits, tasks are claimed in a transaction again, and after its limits are
    gone, alone again."""
    seen: list[str] = []
    for name in ("write", "write_folded"):
        original = getattr(store._db, name)

        def spy(*args: Any, _original: Any = original, _name: str = name, **kw: Any) -> Any:
            seen.append(_name)
            return _original(*args, **kw)

        setattr(store._db, name, spy)
    now = time.time()
    await store.create_run(_run(1, now), if_exists="error")
    seen.clear()
    kw: dict[str, Any] = {"now": now, "lease_until": now + 60, "limit": 5}
    assert len(await store.claim_runs("a", queues=["default"], names=["wf"], **kw)) == 1
    assert await store.claim_tasks("a", queues=["default"], names=["act"], **kw) == []
    assert seen == []
    await store.set_queue_limits(QueueLimits("slow", concurrency=1), now)
    seen.clear()
    assert await store.claim_tasks("a", queues=["default"], names=["act"], **kw) == []
    assert await store.claim_tasks("a", queues=["default"], names=["act"], **kw) == []
    assert seen == ["write_folded", "write_folded"]  # the second goes straight there
    await store.set_queue_limits(QueueLimits("slow"), now)  # no limits: the row goes
    seen.clear()
    assert await store.claim_tasks("a", queues=["default"], names=["act"], **kw) == []
    assert await store.claim_tasks("a", queues=["default"], names=["act"], **kw) == []
    assert seen == ["write_folded"]  # learnt there that no queue has limits any more


async def test_a_claim_whose_answer_was_lost_hands_its_runs_out_again(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies after a claim of runs committed, before its answer arrived: the
    retried claim takes the same runs at once instead of leaving them leased, unseen, until
    the lease expires."""
    now = time.time()
    for i in range(3):
        await store.create_run(_run(i, now), if_exists="error")
    real = pg_claims.claim_runs
    calls, losses = 0, 1

    async def lost(conn: Any, *args: Any, **kw: Any) -> Any:
        nonlocal calls, losses
        calls += 1
        claimed = await real(conn, *args, **kw)
        if losses:
            losses -= 1
            assert claimed  # committed: leased to the claimer, not ready
            raise ConnectionResetError("the answer was lost")
        return claimed

    monkeypatch.setattr(pg_claims, "claim_runs", lost)
    kw: dict[str, Any] = {"now": now, "lease_until": now + 60, "limit": 5}
    claimed = await store.claim_runs("a", queues=["default"], names=["wf"], **kw)
    assert calls == 2
    assert sorted(c.run.run_id for c in claimed) == ["run-0", "run-1", "run-2"]
    # The recovery takes back only what the lost claim leased: not the runs the same owner
    # holds from an earlier claim, nor another owner's.
    await store.create_run(_run(3, now), if_exists="error")
    other = await store.claim_runs("b", queues=["default"], names=["wf"], **kw)
    assert [c.run.run_id for c in other] == ["run-3"]
    await store.create_run(_run(4, now), if_exists="error")
    calls, losses = 0, 1
    kw["lease_until"] = now + 61
    claimed = await store.claim_runs("a", queues=["default"], names=["wf"], **kw)
    assert calls == 2
    assert [c.run.run_id for c in claimed] == ["run-4"]


async def test_a_task_claim_whose_answer_was_lost_hands_its_tasks_out_again(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for runs: a claim of tasks committed, its answer lost with the connection. The
    retried claim takes the same tasks, as fresh ones, at once: left leased and unseen,
    each would wait for its lease to expire and then count as a lost attempt."""
    now = time.time()
    await store.create_run(_run(0, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=1
    )
    new = [NewTask(f"run-0:{i}", "run-0", "wf-0", i, "a", "default", b"", now) for i in (2, 3)]
    step = StepCommit("run-0", "w", 0, [JournalEntry(1, "m", now, b"")], new_tasks=new)
    assert await store.commit_steps([step], now) == [True]
    kw: dict[str, Any] = {"now": now, "lease_until": now + 60, "limit": 1}
    [held] = await store.claim_tasks("x", queues=["default"], names=["a"], **kw)
    real = pg_claims.claim_tasks_alone
    calls, losses = 0, 1

    async def lost(conn: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls, losses
        calls += 1
        claimed = await real(conn, *args, **kwargs)
        if losses:
            losses -= 1
            assert claimed  # committed: leased to "x"
            raise ConnectionResetError("the answer was lost")
        return claimed

    monkeypatch.setattr(pg_claims, "claim_tasks_alone", lost)
    kw["lease_until"] = now + 61  # another claim of the same owner: its own lease
    kw["limit"] = 5
    claimed = await store.claim_tasks("x", queues=["default"], names=["a"], **kw)
    assert calls == 2
    other = ({"run-0:2", "run-0:3"} - {held.task_id}).pop()
    assert [(t.task_id, t.status) for t in claimed] == [(other, "queued")]
    # The task held by the same owner's earlier claim was left alone.
    task = await store.read_task(held.task_id)
    assert task is not None
    assert (task.status, task.lease_expires_at) == ("running", now + 60)


async def test_send_during_claims_never_strands_an_item(store: PostgresStore, admin: Any) -> None:
    """Sends racing claims and step commits: afterwards every run holding inbox items is
    ready (or still leased), so some claim will pick them up."""
    now = time.time()
    for i in range(20):
        await store.create_run(_run(i, now), if_exists="error")
    lengths: dict[str, int] = {}
    stop = asyncio.Event()

    async def sender() -> None:
        for n in range(300):
            await store.send(f"wf-{n % 20}", "signal", str(n).encode(), now)
        stop.set()

    async def worker() -> None:
        while not stop.is_set():
            claimed = await store.claim_runs(
                "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=5
            )
            steps = []
            for c in claimed:
                n = lengths.get(c.run.run_id, 0)
                entries = [
                    JournalEntry(n + i + 1, "signal_received", now, item.data)
                    for i, item in enumerate(c.inbox)
                ]
                lengths[c.run.run_id] = n + len(entries)
                steps.append(
                    StepCommit(c.run.run_id, "w", n, entries,
                               consumed_inbox=[item.id for item in c.inbox], release_lease=True)
                )  # fmt: skip
            assert all(await store.commit_steps(steps, now))
            await asyncio.sleep(0)

    await asyncio.gather(sender(), worker())
    prefix = f'"{store.schema}".'
    stranded = await admin.fetchval(
        f"SELECT count(*) FROM {prefix}runs r WHERE NOT r.ready AND r.lease_owner IS NULL "
        f"AND EXISTS (SELECT 1 FROM {prefix}inbox i WHERE i.run_id = r.run_id)"
    )
    journaled = await admin.fetchval(f"SELECT count(*) FROM {prefix}journal")
    queued = await admin.fetchval(f"SELECT count(*) FROM {prefix}inbox")
    assert stranded == 0
    assert journaled + queued == 300


# ---- notifications -------------------------------------------------------------------


async def test_notify_from_another_process_wakes_wait(store: PostgresStore, url: str) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, time
        from durable.store import NewRun
        from durable_postgres import PostgresStore

        async def main():
            async with PostgresStore({url!r}) as s:
                await s.create_run(NewRun("other", "other-1", "wf", "default", b"", time.time()),
                                   if_exists="error")

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "backends")])}
    mark = store.watermark()
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script, env=env)
    started = time.monotonic()
    await store.wait([TOPIC_RUNS], timeout=30, since=mark)
    woke_after = time.monotonic() - started
    assert await child.wait() == 0
    assert await store.get_run("other") is not None
    assert woke_after < 20, "woken by the other process's NOTIFY, not by the timeout"


async def test_notify_reaches_a_store_with_another_hub(url: str) -> None:
    """Two stores in one process with different hubs behave like two processes: the
    second hears the first's commits only through LISTEN/NOTIFY."""
    async with (
        PostgresStore(url) as a,
        PostgresStore(url.replace("postgresql", "postgres", 1)) as b,
    ):
        assert a.hub is not b.hub
        mark = b.watermark()
        waiter = asyncio.create_task(b.wait([TOPIC_RUNS], timeout=30, since=mark))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await a.create_run(_run(1, time.time()), if_exists="error")
        await asyncio.wait_for(waiter, 5)
        assert time.monotonic() - started < 5


async def test_own_notifications_are_not_forwarded_twice(url: str) -> None:
    """A store notifies its own hub when it commits; its NOTIFY coming back over LISTEN
    must not notify it again. Rather than sleeping and hoping the echo has arrived, wait
    for a later commit of another hub: a listener gets notifications in commit order, so
    once it has heard the other's, it has heard its own echo too."""
    async with (
        PostgresStore(url) as a,
        PostgresStore(url.replace("postgresql", "postgres", 1)) as b,
    ):
        hub: Hub = a.hub
        assert hub is not b.hub
        before = hub.generation
        await a.create_run(_run(1, time.time()), if_exists="error")
        assert hub.generation == before + 1  # its own commit, told at once
        await b.create_run(_run(2, time.time()), if_exists="error")
        deadline = time.monotonic() + 10
        while not hub.notified_since([run_topic("wf-2")], before + 1):
            assert time.monotonic() < deadline, "the other store's NOTIFY never came"
            await asyncio.sleep(0.01)
        assert hub.generation == before + 2


async def test_the_stores_of_a_process_share_one_listener(url: str, admin: Any) -> None:
    """A worker and its client each open a store on the same database: one LISTEN
    connection serves both, so a notification from another process reaches their hub once
    (it woke every waiter once per store, and each wake-up cost a claim that found
    nothing). The listener lives until the last of them closes."""
    async with PostgresStore(url) as a, PostgresStore(url) as b:
        assert a.hub is b.hub
        assert a._listener is b._listener
        pid = a._listener.server_pid if a._listener is not None else None
        listening = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'LISTEN%'", pid
        )
        assert listening == 1
        async with PostgresStore(url.replace("postgresql", "postgres", 1)) as other:
            assert other.hub is not a.hub
            before = a.hub.generation
            await other.create_run(_run(1, time.time()), if_exists="error")
            deadline = time.monotonic() + 10
            while not a.hub.notified_since([run_topic("wf-1")], before):
                assert time.monotonic() < deadline, "the other process's NOTIFY never came"
                await asyncio.sleep(0.01)
            # A later commit of the other hub: once heard, any second copy of the first
            # would have been heard too (a connection gets notifications in commit order).
            await other.create_run(_run(2, time.time()), if_exists="error")
            while not a.hub.notified_since([run_topic("wf-2")], before + 1):
                assert time.monotonic() < deadline, "the other process's NOTIFY never came"
                await asyncio.sleep(0.01)
            assert a.hub.generation == before + 2  # each once, not once per store
        await a.aclose()
        assert b.listening  # still served after the first store closed
        before = b.hub.generation
        async with PostgresStore(url.replace("postgresql", "postgres", 1)) as other:
            await other.create_run(_run(3, time.time()), if_exists="error")
            deadline = time.monotonic() + 10
            while not b.hub.notified_since([run_topic("wf-3")], before):
                assert time.monotonic() < deadline, "the other process's NOTIFY never came"
                await asyncio.sleep(0.01)
    closed = await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid)
    assert closed == 0  # the last store closed it


async def test_listener_loss_falls_back_to_polling(
    store: PostgresStore, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = store._listener
    assert listener is not None
    assert store.listening
    monkeypatch.setattr(pg_store, "POLL_INTERVAL", 0.2)
    waiter = asyncio.create_task(store.wait(["nothing-happens"], timeout=60))
    await asyncio.sleep(0.05)
    await admin.execute("SELECT pg_terminate_backend($1)", listener.server_pid)
    await asyncio.wait_for(waiter, 5)  # woken when the connection dropped
    # Reconnects with backoff; meanwhile (or after) waits are capped, never 60 s.
    started = time.monotonic()
    await store.wait(["nothing-happens"], timeout=60)
    assert time.monotonic() - started < 2
    for _ in range(100):
        if store.listening:
            break
        await asyncio.sleep(0.05)
    assert store.listening


# ---- reconnects ----------------------------------------------------------------------


async def test_operations_continue_while_backends_are_terminated(
    store: PostgresStore, admin: Any, schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every server connection of the store is killed, again and again, while senders and
    a worker run: operations retry, nothing is lost or applied twice, and every step
    commit is accepted (a commit replayed after a lost COMMIT would be rejected)."""
    caplog.set_level("INFO", logger="durable_postgres")
    now = time.time()
    n_runs = 30
    for i in range(n_runs):
        await store.create_run(_run(i, now), if_exists="error")
    stop = asyncio.Event()
    sent = 0
    lengths = dict.fromkeys((f"run-{i}" for i in range(n_runs)), 0)

    async def sender(k: int) -> None:
        nonlocal sent
        n = 0
        while not stop.is_set():
            await store.send(f"wf-{(n * 7 + k) % n_runs}", "signal", f"{k}:{n}".encode(), now)
            sent += 1
            n += 1

    async def step_all() -> None:
        claimed = await store.claim_runs(
            "w", queues=["default"], names=["wf"], now=now, lease_until=now + 600, limit=n_runs
        )
        steps = []
        for c in claimed:
            n = lengths[c.run.run_id]
            entries = [
                JournalEntry(n + k + 1, "signal_received", now, item.data)
                for k, item in enumerate(c.inbox)
            ]
            consumed = [item.id for item in c.inbox]
            steps.append(StepCommit(c.run.run_id, "w", n, entries, consumed_inbox=consumed))
        accepted = await store.commit_steps(steps, now)
        assert all(accepted), "a step commit was lost or applied twice"
        for step in steps:
            lengths[step.run_id] = step.expected_length + len(step.entries)

    async def worker() -> None:
        while not stop.is_set():
            await step_all()
            await asyncio.sleep(0.005)

    async def killer() -> int:
        kills = 0
        for _ in range(25):
            await asyncio.sleep(0.1)
            kills += await _terminate_store_backends(admin, schema)
        stop.set()
        return kills

    results = await asyncio.wait_for(
        asyncio.gather(killer(), worker(), *(sender(k) for k in range(3))), 90
    )
    assert results[0] >= 25
    retried = [r for r in caplog.records if "retrying" in r.getMessage()]
    assert retried, "the test killed no connection in use"
    await step_all()  # drain what the last sends left
    journaled = 0
    for i in range(n_runs):
        entries = await store.read_journal(f"run-{i}")
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        journaled += len(entries)
    assert await admin.fetchval(f'SELECT count(*) FROM "{schema}".inbox') == 0
    assert journaled == sent, "every signal journaled exactly once"
    for _ in range(100):  # and the listener came back
        if store.listening:
            break
        await asyncio.sleep(0.05)
    assert store.listening


async def test_commit_outcome_lost_in_flight_is_looked_up(
    store: PostgresStore, admin: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection lost during COMMIT: the store asks txid_status and neither loses nor
    repeats the write (a send here, which has no fence to catch a repeat)."""
    now = time.time()
    await store.create_run(_run(1, now), if_exists="error")
    original = asyncpg.transaction.Transaction.__aexit__
    mode = {"fail": "after"}

    async def flaky_exit(self: Any, et: Any, e: Any, tb: Any) -> Any:
        if et is None and mode["fail"] == "after":
            mode["fail"] = ""
            await original(self, et, e, tb)  # committed, then the "connection drops"
            raise asyncpg.exceptions.ConnectionDoesNotExistError("lost during COMMIT")
        if et is None and mode["fail"] == "before":
            mode["fail"] = ""
            await original(self, RuntimeError, RuntimeError(), None)  # rolled back
            raise asyncpg.exceptions.ConnectionDoesNotExistError("lost during COMMIT")
        return await original(self, et, e, tb)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "__aexit__", flaky_exit)
    monkeypatch.setattr(pg_connection, "RETRY_INITIAL", 0.01)
    assert await store.send("wf-1", "signal", b"once", now) == "run-1"
    mode["fail"] = "before"
    assert await store.send("wf-1", "signal", b"twice", now) == "run-1"
    items = await admin.fetch(f'SELECT data FROM "{schema}".inbox ORDER BY id')
    assert [r["data"] for r in items] == [b"once", b"twice"]


async def test_a_group_commit_notifies_other_processes_from_its_own_statements(
    url: str,
) -> None:
    """The commit's NOTIFY rides on its run update, or on its last statement when a lease
    goes back with items waiting: either way another hub hears it."""
    async with (
        PostgresStore(url) as a,
        PostgresStore(url.replace("postgresql", "postgres", 1)) as b,
    ):
        now = time.time()
        for i in range(2):
            await a.create_run(_run(i, now), if_exists="error")
        kw: dict[str, Any] = {"queues": ["default"], "names": ["wf"], "limit": 10}
        assert len(await a.claim_runs("w", now=now, lease_until=now + 60, **kw)) == 2

        async def heard(topic: str, commit: Any) -> float:
            mark = b.watermark()
            waiter = asyncio.create_task(b.wait([topic], timeout=30, since=mark))
            await asyncio.sleep(0.05)
            started = time.monotonic()
            await commit()
            await asyncio.wait_for(waiter, 10)
            return time.monotonic() - started

        closing = StepCommit(
            "run-0", "w", 0, [JournalEntry(1, "workflow_completed", now, b"")],
            status="completed",
        )  # fmt: skip
        assert await heard(run_topic("wf-0"), lambda: _ok(a, closing, now)) < 10
        await a.send("wf-1", "signal_received", b"came during the step", now)
        released = StepCommit(
            "run-1", "w", 0, [JournalEntry(1, "workflow_started", now, b"")],
            release_lease=True,
        )  # fmt: skip
        assert await heard(TOPIC_RUNS, lambda: _ok(a, released, now)) < 10
        [claimed] = await b.claim_runs("w2", now=now, lease_until=now + 60, **kw)
        assert [i.data for i in claimed.inbox] == [b"came during the step"]


async def _ok(store: PostgresStore, step: StepCommit, now: float) -> None:
    assert await store.commit_steps([step], now) == [True]


async def test_a_group_commit_whose_commit_was_lost_is_looked_up(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch reads its transaction id in its locking statement: after a COMMIT cut off
    it asks the server, and reports the step accepted (run again, the fence would have
    said rejected); a COMMIT that did not happen is run again and accepted."""
    now = time.time()
    for i in range(2):
        await store.create_run(_run(i, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=2
    )
    original = asyncpg.transaction.Transaction.__aexit__
    mode = {"fail": "after"}

    async def flaky_exit(self: Any, et: Any, e: Any, tb: Any) -> Any:
        if et is None and mode["fail"] == "after":
            mode["fail"] = ""
            await original(self, et, e, tb)  # committed, then the "connection drops"
            raise asyncpg.exceptions.ConnectionDoesNotExistError("lost during COMMIT")
        if et is None and mode["fail"] == "before":
            mode["fail"] = ""
            await original(self, RuntimeError, RuntimeError(), None)  # rolled back
            raise asyncpg.exceptions.ConnectionDoesNotExistError("lost during COMMIT")
        return await original(self, et, e, tb)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "__aexit__", flaky_exit)
    monkeypatch.setattr(pg_connection, "RETRY_INITIAL", 0.01)
    for run_id, fail in (("run-0", "after"), ("run-1", "before")):
        mode["fail"] = fail
        step = StepCommit(run_id, "w", 0, [JournalEntry(1, "workflow_started", now, b"")])
        assert await store.commit_steps([step], now) == [True]
        assert [e.seq for e in await store.read_journal(run_id)] == [1]


async def test_a_group_commit_takes_no_separate_round_trip_for_xid_or_notify(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    await store.create_run(_run(0, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=1
    )
    sent: list[str] = []
    for method in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, method)

        def spy(original: Any = original) -> Any:
            async def call(self: Any, query: str, *args: Any, **kw: Any) -> Any:
                sent.append(query)
                return await original(self, query, *args, **kw)

            return call

        monkeypatch.setattr(asyncpg.Connection, method, spy())
    step = StepCommit(
        "run-0", "w", 0, [JournalEntry(1, "workflow_started", now, b"")], status="running"
    )
    assert await store.commit_steps([step], now) == [True]
    statements = [q for q in sent if "pg_notify" in q or "txid_current" in q]
    assert len(statements) == 2  # the locking SELECT and the run update
    assert not any(q.strip().startswith("SELECT pg_notify") for q in sent)
    assert "SELECT txid_current()" not in [q.strip() for q in sent]
    work = [q for q in sent if q.strip().rstrip(";") not in ("BEGIN", "COMMIT")]
    assert len(work) == 3  # lock the run, insert the journal row, update the run


async def test_a_child_id_taken_by_a_racing_create_still_tells_the_parent(
    store: PostgresStore, admin: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child id with no run when the batch looks (nothing to lock) but taken by a
    concurrent create_run before the insert: the parent gets child_failed, not silence."""
    from durable import journal
    from durable_postgres import commit as pg_commit

    now = time.time()
    await store.create_run(_run(0, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=1
    )
    original = pg_commit.lock_tasks

    async def racing(conn: Any, task_ids: Any, closing: Any) -> Any:
        await admin.execute(
            f'INSERT INTO "{schema}".runs (workflow_id, run_id, is_current, name, queue, '
            "status, input, created_at, updated_at, history_length, ready, parked) VALUES "
            "('kid', 'kid-other', true, 'wf', 'default', 'pending', '', 0, 0, 0, true, false)"
        )
        return await original(conn, task_ids, closing)

    monkeypatch.setattr(pg_commit, "lock_tasks", racing)
    child = NewRun("kid", "kid-mine", "wf", "default", b"", now, "wf-0", "run-0")
    step = StepCommit(
        "run-0", "w", 0, [JournalEntry(1, "child_started", now, b"")], new_runs=[child]
    )
    assert await store.commit_steps([step], now) == [True]
    monkeypatch.setattr(pg_commit, "lock_tasks", original)
    current = await store.get_run("kid")
    assert current is not None
    assert current.run_id == "kid-other"
    run = await store.get_run("wf-0")
    assert run is not None
    assert run.ready
    rows = await admin.fetch(f'SELECT kind, data FROM "{schema}".inbox WHERE run_id = $1', "run-0")
    [(kind, data)] = [(r["kind"], r["data"]) for r in rows]
    record = journal.decode(kind, data)
    assert isinstance(record, journal.ChildFailed)
    assert (record.status, record.run_id) == ("already_exists", "kid-mine")
    assert "'kid-other'" in record.error.message


# ---- lock order ----------------------------------------------------------------------


@pytest.mark.parametrize("table", ["runs", "tasks"])
async def test_heartbeat_locks_rows_in_id_order(
    store: PostgresStore, admin: Any, schema: str, table: str
) -> None:
    """Writers that lock several rows take them in id order, as the group commit does;
    a heartbeat that took them in table order deadlocked with a commit (one of the two
    stalled for ``deadlock_timeout``, then retried). Here a "commit" holds row 0 and then
    wants row 1, stored first, while a heartbeat waits for row 0: row 1 must be free."""
    now = time.time()
    for i in (1, 0):  # stored in this order: a table-order scan meets row 1 first
        await store.create_run(_run(i, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=10
    )
    ids = ["run-1", "run-0"]
    if table == "tasks":
        new = [NewTask(f"run-0:{i}", "run-0", "wf-0", i, "a", "default", b"", now,
                       lease_owner="w", lease_expires_at=now + 60) for i in (1, 0)]  # fmt: skip
        step = StepCommit("run-0", "w", 0, [JournalEntry(1, "workflow_started", now, b"")],
                          new_tasks=new)  # fmt: skip
        assert await store.commit_steps([step], now) == [True]
        ids = ["run-0:1", "run-0:0"]
    key = "run_id" if table == "runs" else "task_id"
    lock = f'SELECT 1 FROM "{schema}".{table} WHERE {key} = $1 FOR UPDATE'
    async with admin.transaction():
        await admin.execute("SET LOCAL lock_timeout = '500ms'")
        await admin.execute(lock, ids[1])
        beat = asyncio.create_task(
            store.heartbeat(
                "w",
                runs=ids if table == "runs" else [],
                tasks=dict.fromkeys(ids, (1, None)) if table == "tasks" else {},
                now=now,
                lease_until=now + 120,
            )
        )
        await asyncio.sleep(0.3)  # the heartbeat is waiting for row 0 now
        assert not beat.done()
        await admin.execute(lock, ids[0])  # LockNotAvailableError if the heartbeat took it
    lost, _ = await beat
    assert not lost & set(ids)  # every lease renewed ("w" itself never registered)


async def test_group_commit_locks_its_tasks_in_id_order(
    store: PostgresStore, admin: Any, schema: str
) -> None:
    """A step that finishes task 7 and cancels task 3 locks both in one statement in id
    order, like a heartbeat renewing them: it used to lock 7 (finished) and then 3
    (cancelled), so a heartbeat holding 3 and waiting for 7 deadlocked with it. Here the
    "heartbeat" holds task 3 and then wants 7: 7 must still be free."""
    now = time.time()
    await store.create_run(_run(0, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=1
    )
    new = [NewTask(f"run-0:{i}", "run-0", "wf-0", i, "a", "default", b"", now,
                   lease_owner="w", lease_expires_at=now + 60) for i in (3, 7)]  # fmt: skip
    first = StepCommit("run-0", "w", 0, [JournalEntry(1, "workflow_started", now, b"")],
                       new_tasks=new)  # fmt: skip
    assert await store.commit_steps([first], now) == [True]
    step = StepCommit(
        "run-0", "w", 1, [JournalEntry(2, "activity_completed", now, b"")],
        finished_tasks={"run-0:7": 1}, cancelled_tasks=["run-0:3"],
    )  # fmt: skip
    lock = f'SELECT 1 FROM "{schema}".tasks WHERE task_id = $1 FOR UPDATE'
    async with admin.transaction():
        await admin.execute("SET LOCAL lock_timeout = '500ms'")
        await admin.execute(lock, "run-0:3")
        commit = asyncio.create_task(store.commit_steps([step], now))
        await asyncio.sleep(0.3)  # the commit is waiting for task 3 now
        assert not commit.done()
        await admin.execute(lock, "run-0:7")  # LockNotAvailableError if the commit took it
    assert await commit == [True]


async def test_a_frozen_transaction_does_not_strand_its_runs(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process frozen (SIGSTOP, a VM pause) in the middle of a transaction holds
    its row locks, and claims skip locked rows: the server must end that transaction, so
    the runs go to another worker once their leases expire."""
    monkeypatch.setattr(pg_connection, "IDLE_IN_TRANSACTION_SECONDS", 0.5)
    info = parse_url(url)
    now = time.time()
    async with PostgresStore(url) as store:
        await store.create_run(_run(0, now), if_exists="error")
        await store.claim_runs(
            "frozen", queues=["default"], names=["wf"], now=now, lease_until=now + 1, limit=1
        )
        # The frozen worker's connection, as the store opens it, stopped inside a commit.
        frozen = await asyncpg.connect(info.dsn, server_settings=info.server_settings)
        try:
            await frozen.execute("BEGIN")
            await frozen.execute("SELECT 1 FROM runs WHERE run_id = 'run-0' FOR UPDATE")
            await asyncio.sleep(1.5)  # frozen past its lease and the server's patience
            later = time.time()
            [claimed] = await store.claim_runs(
                "other", queues=["default"], names=["wf"], now=later, lease_until=later + 30,
                limit=1,
            )  # fmt: skip
            assert claimed.run.lease_owner == "other"
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await frozen.execute("COMMIT")  # its session was ended
        finally:
            frozen.terminate()


# ---- group commit --------------------------------------------------------------------


async def test_group_commit_fences_each_step(store: PostgresStore) -> None:
    now = time.time()
    for i in range(3):
        await store.create_run(_run(i, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=2
    )
    steps = [
        StepCommit("run-0", "w", 0, [JournalEntry(1, "workflow_started", now, b"")],
                   new_tasks=[NewTask("run-0:2", "run-0", "wf-0", 2, "a", "default", b"", now)]),
        StepCommit("run-1", "w", 5, [JournalEntry(6, "workflow_started", now, b"")],
                   new_timers=[NewTimer("run-1", 7, now, b"")]),  # wrong length
        StepCommit("run-2", "w", 0, [JournalEntry(1, "workflow_started", now, b"")]),  # no lease
        StepCommit("run-0", "w", 1, [JournalEntry(2, "activity_scheduled", now, b"")],
                   status="running"),  # second step of run-0 in the same batch
    ]  # fmt: skip
    assert await store.commit_steps(steps, now) == [True, False, False, True]
    assert [e.seq for e in await store.read_journal("run-0")] == [1, 2]
    assert await store.read_journal("run-1") == []
    assert await store.fire_timers(now + 1, 10) is None  # run-1's timer was not written
    tasks = await store.claim_tasks(
        "x", queues=["default"], names=["a"], now=now, lease_until=now + 60, limit=10
    )
    assert [t.task_id for t in tasks] == ["run-0:2"]
    done = TaskOutcome("done", "activity_completed")
    assert await store.finish_task("run-0:2", "x", 1, done, now)


async def _one_claimed_task(store: PostgresStore, now: float) -> int:
    """Run 0 with one task ``run-0:2`` leased to worker "x"; its attempt number."""
    await store.create_run(_run(0, now), if_exists="error")
    await store.claim_runs(
        "w", queues=["default"], names=["wf"], now=now, lease_until=now + 60, limit=1
    )
    task = NewTask("run-0:2", "run-0", "wf-0", 2, "a", "default", b"", now)
    step = StepCommit(
        "run-0", "w", 0, [JournalEntry(1, "workflow_started", now, b"")], new_tasks=[task]
    )
    assert await store.commit_steps([step], now) == [True]
    [claimed] = await store.claim_tasks(
        "x", queues=["default"], names=["a"], now=now, lease_until=now + 60, limit=1
    )
    return claimed.attempt


async def test_an_attempt_ending_while_its_run_closes_sees_the_run_closed(
    store: PostgresStore, admin: Any, schema: str
) -> None:
    """A retry waits for its run's lock while a commit closes the run: once it has the
    lock it must see the run closed and drop the task, not queue another attempt for a run
    that is over (the lock, not the statement's older snapshot, says whether it is)."""
    now = time.time()
    attempt = await _one_claimed_task(store, now)
    retry = TaskOutcome("retry", visible_at=now, last_error=b"boom")
    async with admin.transaction():
        await admin.execute(f'SELECT 1 FROM "{schema}".runs WHERE run_id = $1 FOR UPDATE', "run-0")
        finishing = asyncio.create_task(store.finish_task("run-0:2", "x", attempt, retry, now))
        await asyncio.sleep(0.3)  # the finish waits for the run's lock
        assert not finishing.done()
        await admin.execute(
            f"UPDATE \"{schema}\".runs SET status = 'completed', closed_at = $2 WHERE run_id = $1",
            "run-0",
            now,
        )
    assert await asyncio.wait_for(finishing, 10)
    assert await store.read_task("run-0:2") is None  # dropped, not queued again
    assert await store.read_inbox("run-0") == []


def _flush_cut_off(
    monkeypatch: pytest.MonkeyPatch, on_flush: Any = None, lost: bool = True
) -> list[str]:
    """Make the first `FLUSH` after an attempt's end call ``on_flush()`` and then, if
    ``lost``, lose its answer (the connection drops after it ran); returns a log."""
    original = asyncpg.connection.Connection.execute
    log: list[str] = []

    async def execute(self: Any, query: str, *args: Any, **kw: Any) -> Any:
        if query == pg_connection.FLUSH and "flush" not in log:
            log.append("flush")
            if on_flush is not None:
                on_flush()
            result = await original(self, query, *args, **kw)
            if lost:
                raise asyncpg.exceptions.ConnectionDoesNotExistError("lost after the flush")
            return result
        return await original(self, query, *args, **kw)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", execute)
    monkeypatch.setattr(pg_connection, "RETRY_INITIAL", 0.01)
    return log


async def test_an_attempts_end_is_announced_before_its_flush(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker a result wakes need not wait for the disk: the end is committed without
    waiting for the WAL flush and this process's waiters are told then; `finish_task`
    returns only after a commit that waits for the flush (which covers the end's)."""
    now = time.time()
    attempt = await _one_claimed_task(store, now)
    mark = store.watermark()
    heard: list[bool] = []
    log = _flush_cut_off(
        monkeypatch, lambda: heard.append(TOPIC_RUNS in (store.hub.topics_since(mark) or ())), False
    )
    done = TaskOutcome("done", "activity_completed", b"result")
    assert await store.finish_task("run-0:2", "x", attempt, done, now)
    assert log == ["flush"]
    assert heard == [True]
    assert [i.data for i in await store.read_inbox("run-0")] == [b"result"]


async def test_an_attempts_end_whose_flush_answer_is_lost_is_written_once(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after the flush ran: the outcome is asked by transaction id
    (committed), and the end is neither lost nor written twice."""
    now = time.time()
    attempt = await _one_claimed_task(store, now)
    log = _flush_cut_off(monkeypatch)
    done = TaskOutcome("done", "activity_completed", b"result")
    assert await store.finish_task("run-0:2", "x", attempt, done, now)
    assert log == ["flush"]
    assert await store.read_task("run-0:2") is None
    assert [i.data for i in await store.read_inbox("run-0")] == [b"result"]


async def test_an_attempts_end_the_server_lost_before_its_flush_is_written_again(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that crashes between the end's commit and its flush forgets the end (it
    was never on disk): the flush's answer is lost with it, the transaction id is unknown
    or aborted on the restarted server, and the end is written again. Simulated by rolling
    the end back where its commit would have been, then losing the flush's answer."""
    now = time.time()
    attempt = await _one_claimed_task(store, now)
    original = asyncpg.transaction.Transaction.__aexit__
    forgotten: list[bool] = []

    async def forget_once(self: Any, et: Any, e: Any, tb: Any) -> Any:
        if et is None and not forgotten:
            forgotten.append(True)  # the first commit after this: the end's
            return await original(self, RuntimeError, RuntimeError(), None)
        return await original(self, et, e, tb)

    log = _flush_cut_off(
        monkeypatch,
        lambda: monkeypatch.setattr(asyncpg.transaction.Transaction, "__aexit__", original),
    )
    monkeypatch.setattr(asyncpg.transaction.Transaction, "__aexit__", forget_once)
    done = TaskOutcome("done", "activity_completed", b"result")
    assert await store.finish_task("run-0:2", "x", attempt, done, now)
    assert forgotten == [True]
    assert log == ["flush"]
    assert await store.read_task("run-0:2") is None
    assert [i.data for i in await store.read_inbox("run-0")] == [b"result"]


async def test_the_outcome_of_an_unflushed_commit_is_read_off_the_server(
    store: PostgresStore, admin: Any
) -> None:
    """`Database._flushed` after a lost answer: a committed transaction is durable once a
    flush commits after it; an aborted one, or an id a restarted server never reached (it
    lost the WAL that took it), is lost and must be written again."""
    committed = await admin.fetchval("SELECT txid_current()")
    tx = admin.transaction()
    await tx.start()
    aborted = await admin.fetchval("SELECT txid_current()")
    await tx.rollback()
    db = store._db
    assert await db._flushed(committed, interrupted=True) is True
    assert await db._flushed(aborted, interrupted=True) is False
    assert await db._flushed(committed + 10_000_000, interrupted=True) is False


# ---- indexes -------------------------------------------------------------------------

_PLANS = {
    "claim_runs": (pg_claims.claim_runs_sql(2, alone=True), ["runs_ready_idx", "runs_lease_idx"]),
    "claim_tasks": (
        pg_claims.claim_tasks_sql(2, alone=True),
        ["tasks_ready_idx", "tasks_lease_idx"],
    ),
    "fire_timers": (pg_claims._FIRE_TIMERS, ["timers_due_idx"]),
    "next_due": (pg_claims._NEXT_DUE, ["timers_due_idx", "tasks_visible_idx"]),
    "list_runs": (
        "SELECT * FROM runs ORDER BY created_at DESC LIMIT 100",
        ["runs_created_idx"],
    ),
    "list_runs_by_name": (
        "SELECT * FROM runs WHERE name = 'wf-rare' ORDER BY created_at DESC LIMIT 100",
        ["runs_name_idx"],
    ),
    "list_runs_by_status": (
        "SELECT * FROM runs WHERE status = 'running' ORDER BY created_at DESC LIMIT 100",
        ["runs_status_idx"],
    ),
    "claim_inbox": (
        "SELECT id, run_id, kind, time, data FROM inbox WHERE run_id = ANY($1::text[]) ORDER BY id",
        ["inbox_run_idx"],
    ),
    "read_journal": (
        "SELECT seq, kind, time, data FROM journal WHERE run_id = $1 AND seq > $2 ORDER BY seq",
        ["journal_pkey"],
    ),
    "current_run": (
        "SELECT * FROM runs WHERE workflow_id = 'wf-77' AND is_current",
        ["runs_current_key"],
    ),
}
_ARGS = {
    "claim_runs": (["q0", "q10"], ["wf"], 1000.0, "w", 2000.0, 10, "q0", "q10"),
    "claim_tasks": (["q0", "q1"], ["act"], 1000.0, "w", 2000.0, 10, ["run-3:1"], "q0", "q1"),
    "fire_timers": (1000.0, 10),
    "next_due": (1000.0,),
    "claim_inbox": (["run-50", "run-100"],),
    "read_journal": ("run-77", 0),
}


async def _seed(conn: Any, n: int) -> None:
    """``n`` runs (mostly closed, some ready, some leased), as many tasks, timers and inbox
    items, and five journal entries per run. Task visibility times are shuffled against
    insertion order, as retries and delays make them."""
    await conn.execute(
        """
        INSERT INTO runs (workflow_id, run_id, is_current, name, queue, status, input,
                          created_at, updated_at, closed_at, history_length, ready,
                          lease_owner, lease_expires_at)
        SELECT 'wf-' || i, 'run-' || i, true, 'wf', 'q' || (i % 20), s.status, '\\x00',
               i, i, CASE WHEN s.status = 'completed' THEN i END, 10, i % 50 = 0,
               CASE WHEN i % 97 = 0 THEN 'w' END, CASE WHEN i % 97 = 0 THEN i + 30 END
        FROM generate_series(1, $1) i,
             LATERAL (SELECT CASE WHEN i % 10 = 0 THEN 'running' ELSE 'completed' END) s(status)
        """,
        n,
    )
    await conn.execute(
        """
        INSERT INTO tasks (task_id, run_id, workflow_id, seq, name, queue, data, attempt,
                           status, visible_at, lease_owner, lease_expires_at, created_at)
        SELECT 'run-' || i || ':1', 'run-' || i, 'wf-' || i, 1, 'act', 'q' || (i % 20),
               '\\x00', 1, CASE WHEN i % 3 = 0 THEN 'running' ELSE 'queued' END,
               (i::bigint * 7919) % $1,
               CASE WHEN i % 3 = 0 THEN 'w' END, CASE WHEN i % 3 = 0 THEN i + 30 END, i
        FROM generate_series(1, $1) i
        """,
        n,
    )
    await conn.execute(
        "INSERT INTO timers (run_id, seq, due_at, data) "
        "SELECT 'run-' || i, 2, i, '\\x00' FROM generate_series(1, $1) i",
        n,
    )
    await conn.execute(
        "INSERT INTO journal (run_id, seq, kind, time, data) "
        "SELECT 'run-' || (i % $1), i, 'x', i, '\\x00' FROM generate_series(1, $1 * 5) i",
        n,
    )
    await conn.execute(
        "INSERT INTO inbox (run_id, kind, time, data) "
        "SELECT 'run-' || (i % $1), 'signal', i, '\\x00' FROM generate_series(1, $1) i",
        n,
    )
    await conn.execute("ANALYZE")


async def test_queries_are_index_driven(store: PostgresStore, schema: str) -> None:
    conn = await asyncpg.connect(BASE_URL, server_settings={"search_path": f'"{schema}"'})
    try:
        await _seed(conn, 20_000)
        for name, (sql, indexes) in _PLANS.items():
            args = _ARGS.get(name, ())
            rows = await conn.fetch(f"EXPLAIN (COSTS OFF) {sql}", *args)
            plan = "\n".join(r[0] for r in rows)
            for index in indexes:
                assert index in plan, f"{name} does not use {index}:\n{plan}"
            for table in ("runs", "tasks", "timers", "inbox", "journal"):
                assert f"Seq Scan on {table}" not in plan, plan
    finally:
        await conn.close()


async def test_an_item_for_a_run_continuing_as_new_meanwhile_reaches_the_successor(
    store: PostgresStore, schema: str, admin: Any
) -> None:
    """A batch looks up the current run of an item's workflow without a lock, then locks
    it. If that run continued as new in between, the batch saw it closed, with no current
    run locked: the item (a signal, a parent's cancellation) was dropped. It looks again."""
    from durable.journal import Kind
    from durable.store import Outgoing, StepCommit
    from durable.testing.store_contract.kit import entries, peek, start

    target = await start(store, "t", owner="p")
    sender = await start(store, "s", owner="c", at=2.0)
    assert sender < target  # the batch locks the sender's row first, then waits for t's
    tx = admin.transaction()
    await tx.start()
    await admin.execute(f'SET LOCAL search_path TO "{schema}"')
    await admin.fetch("SELECT run_id FROM runs WHERE run_id = $1 FOR UPDATE", target)
    step = StepCommit(
        sender, "c", 1, entries(2, "marker"), outgoing=[Outgoing("t", Kind.SIGNAL_RECEIVED, b"hi")]
    )
    commit = asyncio.ensure_future(store.commit_steps([step], 6.0))
    for _ in range(100):  # until the batch waits for the target's row lock
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND application_name = $1",
            f"durable[{schema}]",
        )
        if waiting:
            break
        await asyncio.sleep(0.02)
    assert waiting
    # Another worker continues the target as new, in the transaction holding its lock.
    await admin.execute(
        "UPDATE runs SET status = 'continued_as_new', is_current = false, closed_at = 5.0, "
        "continued_to = 't-next', lease_owner = NULL, lease_expires_at = NULL "
        "WHERE run_id = $1",
        target,
    )
    await admin.execute(
        "INSERT INTO runs (workflow_id, run_id, is_current, name, queue, status, input, "
        "created_at, updated_at, history_length, ready, parked) "
        "SELECT workflow_id, 't-next', true, name, queue, 'pending', input, 5.0, 5.0, 0, "
        "true, false FROM runs WHERE run_id = $1",
        target,
    )
    await tx.commit()
    assert await asyncio.wait_for(commit, 10) == [True]
    assert await peek(store, "t-next") == [(Kind.SIGNAL_RECEIVED, b"hi")]
