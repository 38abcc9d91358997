"""Connections: URL parsing, the asyncpg pool, and retrying across server restarts.

Every store operation is one function of a pooled connection, run by `Database.read` (a
query with no effects) or `Database.write` (one transaction). Both retry, with backoff for
up to ``RETRY_SECONDS``, when the connection fails: PostgreSQL restarting, an
administrator's ``pg_terminate_backend``, a network blip. The pool replaces dead
connections as they are released.

Retrying a read is always safe. Retrying a write is safe when it failed before ``COMMIT``
was sent: the server rolls back a transaction whose connection died. The hard case is a
connection lost *during* ``COMMIT``, when the outcome is unknown. Blindly re-running would
duplicate a signal (`send`) or an inbox item (`finish_task`); blindly giving up would leave
the caller unsure. So every write transaction first asks for its transaction id
(``txid_current()``), and after a lost ``COMMIT`` the store reconnects and asks the server
``txid_status(xid)``, which PostgreSQL provides for exactly this: ``committed`` → return
the result the transaction computed (and wake local waiters); ``aborted`` → run it again
from scratch; ``in progress`` → the old backend has not finished yet, ask again shortly.
Even without this, the fenced operations would stay safe: a `commit_steps` that did commit
and ran again is rejected by its own fence (``history_length`` moved on), and a rejected
step makes the worker rebuild that workflow by replay, so nothing is applied twice.

Transient conflicts (deadlock detected, serialization failure) roll back the whole
transaction, so those writes are simply retried too.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from durable.errors import StoreError
from durable.store import redact_url

from .listener import encode_payload
from .schema import quote_ident

__all__ = [
    "DEFAULT_SCHEMA",
    "IDLE_IN_TRANSACTION_SECONDS",
    "POOL_MAX_SIZE",
    "POOL_MIN_SIZE",
    "RELAXED",
    "RETRY_SECONDS",
    "ConnectInfo",
    "Database",
    "Fold",
    "is_connection_error",
    "parse_url",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SCHEMA = "durable"  # the PostgreSQL schema used when the URL has no ?schema=
POOL_MIN_SIZE = 1  # connections kept open while idle (a client needs few)
POOL_MAX_SIZE = 10  # concurrent statements per store; a worker batches, so 10 is plenty
POOL_IDLE_SECONDS = 300.0  # idle pooled connections above the minimum close after this
RETRY_SECONDS = 30.0  # how long an operation keeps retrying a lost connection before failing
RETRY_INITIAL = 0.05  # first delay between retries; doubles each time
RETRY_MAX = 2.0  # longest delay between retries
# The server ends a transaction left idle this long: its process froze (SIGSTOP, a VM
# pause) holding row locks, which would keep its runs from every other worker (claims
# skip locked rows) however long ago its leases expired. Well below the 30 s lease; our
# transactions are a few statements with no waiting between them.
IDLE_IN_TRANSACTION_SECONDS = 10.0
# In a claim's first statement: its commit does not wait for the WAL flush. A claim lost
# with the server (a crash before the flush) is only work handed out again (an activity
# may run twice, as when its worker dies), and any later commit that waits for the flush
# flushes the WAL up to it, claims included: a step or an attempt's end is never durable
# without the claim it came from.
RELAXED = "set_config('synchronous_commit', 'off', true)"
# A transaction of its own whose commit waits for the WAL flush: it takes a transaction id,
# so its commit writes a record, and the WAL is flushed in order, so every commit before
# it is durable once it returns (see `Database.write_announced`).
FLUSH = "SELECT txid_current()"

# What a dead or restarting server looks like from asyncpg. InterfaceError covers "the
# connection is closed" and ConnectionDoesNotExistError; the 57P0x errors are the
# server shutting down, crashing or not yet accepting connections.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A backend killed between two statements leaves asyncpg's protocol state machine
    # confused ("cannot switch to state ...; another operation is in progress").
    asyncpg.exceptions.InternalClientError,
)
# InterfaceError subclasses that are the caller's mistake, not a lost connection.
_NOT_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
    asyncpg.exceptions.UnsupportedServerFeatureError,
)
# The transaction was rolled back by the server: running it again is always safe.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}")


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What a ``postgresql://`` URL means to the store."""

    dsn: str  # for asyncpg: the URL without ``schema=``
    public_url: str  # the URL with its secrets masked (``Store.url``, the hub key)
    schema: str
    channel: str  # the LISTEN/NOTIFY channel of this schema
    server_settings: dict[str, str]


def parse_url(url: str) -> ConnectInfo:
    """Split a ``postgresql://`` or ``postgres://`` URL into what the store needs.

    Raises `StoreError` for another scheme or an unusable ``schema=`` (not an identifier
    of up to 63 characters, or one of PostgreSQL's own schemas), before connecting.
    """
    public_url = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise StoreError(
            f"PostgresStore needs a 'postgresql://user@host/dbname' URL, got {public_url!r}."
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == "schema"]
    rest = [(key, value) for key, value in query if key != "schema"]
    schema = schemas[-1] if schemas else DEFAULT_SCHEMA
    if not _SCHEMA_NAME.fullmatch(schema):
        raise StoreError(
            f"Invalid schema name {schema!r} in {public_url!r}: use up to 63 letters, digits "
            "and underscores, starting with a letter or underscore."
        )
    if _is_system_schema(schema):
        raise StoreError(
            f"Schema {schema!r} in {public_url!r} belongs to PostgreSQL itself (pg_catalog, "
            "information_schema, and every name starting with pg_ are reserved): durable "
            "must not create its tables there. Name a schema of your own, e.g. ?schema=durable."
        )
    dsn = urlunsplit(parts._replace(query=urlencode(rest)))
    channel = f"durable_{schema}"
    if len(channel.encode()) > 63:  # NAMEDATALEN: longer channel names are refused
        channel = "durable_" + hashlib.sha256(schema.encode()).hexdigest()[:32]
    settings = {"search_path": quote_ident(schema)}
    if not any(key == "application_name" for key, _ in rest):
        settings["application_name"] = f"durable[{schema}]"[:63]
    if not any(key == "idle_in_transaction_session_timeout" for key, _ in rest):
        timeout_ms = int(IDLE_IN_TRANSACTION_SECONDS * 1000)
        settings["idle_in_transaction_session_timeout"] = f"{timeout_ms}ms"
    return ConnectInfo(dsn, public_url, schema, channel, settings)


def _is_system_schema(schema: str) -> bool:
    # Refused whatever the case: a quoted "PG_x" would be legal, and confusing.
    lowered = schema.lower()
    return lowered.startswith("pg_") or lowered == "information_schema"


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the connection (or the server) went away."""
    return isinstance(exc, CONNECTION_ERRORS) and not isinstance(exc, _NOT_CONNECTION_ERRORS)


@dataclass(frozen=True, slots=True)
class Fold:
    """What an operation run by `Database.write_folded` needs to send its own NOTIFY."""

    channel: str
    origin: str

    def payload(self, topics: Collection[str]) -> str:
        """The NOTIFY payload announcing ``topics`` (see `durable_postgres.listener`)."""
        return encode_payload(self.origin, topics)


class Database:
    """The pool of one store, with `read` and `write` that survive lost connections."""

    def __init__(self, info: ConnectInfo, origin: str, is_open: Callable[[], None]) -> None:
        self.info = info
        self._origin = origin
        self._check_open = is_open  # raises StoreError once the store is closed
        self.pool: Any = None

    async def connect(self) -> Any:
        """A new connection outside the pool (the listener's)."""
        return await asyncpg.connect(self.info.dsn, server_settings=self.info.server_settings)

    async def open(self) -> None:
        """Create the pool (fails at once, as `StoreError`, if the server is unreachable)."""
        try:
            self.pool = await asyncpg.create_pool(
                self.info.dsn,
                min_size=POOL_MIN_SIZE,
                max_size=POOL_MAX_SIZE,
                max_inactive_connection_lifetime=POOL_IDLE_SECONDS,
                server_settings=self.info.server_settings,
                reset=_keep_session,
            )
        except Exception as exc:
            if isinstance(exc, ValueError | asyncpg.exceptions.ClientConfigurationError):
                # asyncpg's word on a malformed URL (a port that is not a number, an
                # unknown sslmode); the URL shown is masked, the driver's message has none.
                raise StoreError(
                    f"Cannot use the PostgreSQL URL {self.info.public_url}: {exc}"
                ) from exc
            if not is_connection_error(exc) and not isinstance(
                exc, asyncpg.exceptions.PostgresError
            ):
                raise
            raise StoreError(
                f"Cannot connect to PostgreSQL at {self.info.public_url}: {exc}"
            ) from exc

    async def close(self) -> None:
        """Close the pool, waiting briefly for operations in flight."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), 10.0)
        except Exception as exc:
            if not isinstance(exc, TimeoutError) and not is_connection_error(exc):
                raise
            pool.terminate()

    async def read(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``op(conn)``, a query without effects, retrying lost connections."""
        retry = _Backoff(self.info.public_url)
        while True:
            self._check_open()
            try:
                async with self.pool.acquire() as conn:
                    return await op(conn)
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                await retry.wait(exc)

    async def write(
        self, op: Callable[[Any], Awaitable[tuple[T, Collection[str]]]], *, relaxed: bool = False
    ) -> tuple[T, Collection[str]]:
        """Run ``op(conn)`` in one transaction that commits exactly once.

        ``op`` returns ``(result, topics)``; the topics are sent with ``pg_notify`` inside
        the transaction (so other processes hear of it only if it commits). The caller
        notifies its own hub after this returns. A ``relaxed`` transaction (a claim) does
        not wait for the WAL flush at commit (see `RELAXED`).
        """
        first = f"SELECT txid_current(), {RELAXED}" if relaxed else "SELECT txid_current()"

        async def run(conn: Any) -> tuple[int | None, T, Collection[str]]:
            xid = await conn.fetchval(first)
            result, topics = await op(conn)
            if topics:
                await conn.execute(
                    "SELECT pg_notify($1, $2)",
                    self.info.channel,
                    encode_payload(self._origin, topics),
                )
            return xid, result, topics

        return await self._transact(run)

    async def write_folded(
        self, op: Callable[[Any, Fold], Awaitable[tuple[int | None, T, Collection[str]]]]
    ) -> tuple[T, Collection[str]]:
        """`write` for an ``op`` that saves two round trips: it reads ``txid_current()`` in
        its first statement and sends its own ``pg_notify`` (``fold.payload(topics)`` on
        ``fold.channel``) in one of its writes, and returns ``(xid, result, topics)``.
        ``xid`` may be ``None`` only if the transaction wrote nothing."""
        fold = Fold(self.info.channel, self._origin)
        return await self._transact(lambda conn: op(conn, fold))

    async def write_announced(
        self,
        op: Callable[[Any, Fold], Awaitable[tuple[int | None, T, Collection[str]]]],
        announce: Callable[[Collection[str]], None],
    ) -> tuple[T, Collection[str]]:
        """`write_folded` for an ``op`` that others act on before its own caller hears back:
        ``op``'s first statement sets `RELAXED`, so its commit is seen and its NOTIFY sent
        without waiting for the WAL flush, and ``announce(topics)`` tells this process's
        waiters at once; then a `FLUSH` commit waits for the disk before this returns. An
        attempt's end takes this way: the worker its result wakes claims and steps the run
        while the disk writes (its own step's commit waits for the flush, so it is never
        durable before the result it consumed), and the remote worker hears that its result
        is stored only once it is durable.

        Were the server to lose the transaction (a crash before the flush), the flush's
        answer is lost with it, the outcome is asked by transaction id as after a lost
        COMMIT, and a lost transaction is written again."""
        fold = Fold(self.info.channel, self._origin)
        while True:
            xid, result, topics = await self._transact_xid(lambda conn: op(conn, fold))
            if topics:
                announce(topics)
            if xid is None or await self._flushed(xid):
                return result, topics

    async def _flushed(self, xid: int, *, interrupted: bool = False) -> bool:
        """Wait until transaction ``xid``, committed without waiting for the WAL flush, is
        durable (`FLUSH`). False if the server lost it: it crashed before the flush.
        ``interrupted``: an answer was lost since the commit, so ask the outcome too."""
        retry = _Backoff(self.info.public_url)
        while True:
            self._check_open()
            try:
                async with self.pool.acquire() as conn:
                    if not interrupted:
                        await conn.execute(FLUSH)
                        return True
                    # Asked in the flush's own statement: what it says is durable once
                    # that commits. A transaction lost in a crash is unknown to the server
                    # (aborted, or an id in the future of a server that restarted).
                    try:
                        status = await conn.fetchval(
                            f"SELECT txid_status($1) FROM ({FLUSH}) AS flush", xid
                        )
                    except asyncpg.exceptions.InvalidParameterValueError:
                        status = "aborted"  # "transaction ID ... is in the future"
                    if status is None:
                        raise StoreError(
                            f"Lost the connection to {self.info.public_url} before a commit "
                            "was flushed, and the server no longer knows that transaction."
                        )
                    if status == "in progress":
                        await retry.wait(StoreError("the transaction is still in progress"))
                        continue
                    return bool(status == "committed")
            except Exception as exc:
                if not is_connection_error(exc):
                    raise
                interrupted = True
                await retry.wait(exc)

    async def _transact(
        self, run: Callable[[Any], Awaitable[tuple[int | None, T, Collection[str]]]]
    ) -> tuple[T, Collection[str]]:
        _, result, topics = await self._transact_xid(run)
        return result, topics

    async def _transact_xid(
        self, run: Callable[[Any], Awaitable[tuple[int | None, T, Collection[str]]]]
    ) -> tuple[int | None, T, Collection[str]]:
        retry = _Backoff(self.info.public_url)
        while True:
            self._check_open()
            committing = False
            xid: int | None = None
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    xid, result, topics = await run(conn)
                    committing = True
                return xid, result, topics
            except Exception as exc:
                if isinstance(exc, TRANSIENT_ERRORS):
                    await retry.wait(exc)
                    continue
                if not is_connection_error(exc):
                    raise
                if committing and xid is not None:
                    status = await self._outcome(xid, retry, exc)
                    if status == "committed":
                        return xid, result, topics
                await retry.wait(exc)

    async def _outcome(self, xid: int, retry: _Backoff, exc: BaseException) -> str:
        """Whether transaction ``xid``, whose COMMIT was cut off, committed after all."""
        logger.warning("Connection lost during COMMIT (%r); asking the server the outcome", exc)
        while True:
            await retry.wait(exc)
            self._check_open()
            try:
                async with self.pool.acquire() as conn:
                    status = await conn.fetchval("SELECT txid_status($1)", xid)
            except Exception as again:
                if not is_connection_error(again):
                    raise
                exc = again
                continue
            if status in ("committed", "aborted"):
                logger.info("The interrupted transaction %d was %s", xid, status)
                return str(status)
            if status is None:  # too old to know: cannot happen seconds after the fact
                raise StoreError(
                    f"Lost the connection to {self.info.public_url} while committing, and "
                    "the server no longer knows whether that transaction committed."
                ) from exc
            # "in progress": the old backend is still finishing; ask again.


async def _keep_session(conn: Any) -> None:
    """The pool's reset on release, instead of asyncpg's default ``RESET ALL; UNLISTEN *;
    CLOSE ALL; SELECT pg_advisory_unlock_all()``: one round trip saved per operation. The
    store leaves no session state behind (settings only with ``SET LOCAL``, advisory locks
    only transaction-scoped, LISTEN only on the listener's own connection); asyncpg still
    rolls back a transaction left open."""


class _Backoff:
    """Exponential delays until ``RETRY_SECONDS`` have passed, then `StoreError`."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._delay = RETRY_INITIAL
        self._deadline = asyncio.get_running_loop().time() + RETRY_SECONDS

    async def wait(self, exc: BaseException) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() + self._delay > self._deadline:
            raise StoreError(
                f"PostgreSQL at {self._url} has been unreachable for {RETRY_SECONDS:.0f}s "
                f"(last error: {exc!r}). Check that the server is running."
            ) from exc
        logger.info("Database operation failed (%r); retrying in %.2fs", exc, self._delay)
        await asyncio.sleep(self._delay)
        self._delay = min(self._delay * 2, RETRY_MAX)
