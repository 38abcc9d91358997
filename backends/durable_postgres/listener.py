"""Cross-process wake-ups: a dedicated connection that LISTENs and feeds the in-process hub.

Every write transaction that changes something a waiter may care about ends with
``pg_notify(channel, payload)``; PostgreSQL delivers it at commit (never for a rolled-back
transaction) to every connection listening on the channel. The payload is
``"<origin> <topic>,<topic>,..."``: ``origin`` identifies the sending process's hub, so a
listener skips its own hub's notifications (already delivered in-process) and forwards
everyone else's to `Hub.notify`.

The listener uses its own connection, not one from the pool: it is held for the store's
whole life, and asyncpg drops a pooled connection's listeners when it is released. If that
connection drops (server restart, ``pg_terminate_backend``, network) a background task owned
by the `Listener` reconnects with backoff; while it is down `listening` is False and
`PostgresStore.wait` caps its timeouts at ``POLL_INTERVAL`` so callers poll. Both edges
notify ``*`` on the hub: on losing the connection so current waiters start polling, on
regaining it because notifications sent meanwhile are lost and everyone must re-query.
A half-open TCP connection (a peer that vanished without a FIN) is caught by a periodic
``SELECT 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from durable.notify import ALL, Hub
from durable.store import TOPIC_STEPS, steps_topic

__all__ = [
    "LISTENER_PING_SECONDS",
    "LISTENER_RETRY_MAX",
    "MAX_PAYLOAD_BYTES",
    "Listener",
    "encode_payload",
    "hub_origin",
    "listen",
    "unlisten",
]

logger = logging.getLogger(__name__)

LISTENER_PING_SECONDS = 15.0  # how often an idle listener checks that its connection lives
LISTENER_PING_TIMEOUT = 10.0  # a ping slower than this counts as a dead connection
LISTENER_RETRY_INITIAL = 0.1  # first reconnect delay after the listener lost its connection
LISTENER_RETRY_MAX = 5.0  # reconnect delays double up to this
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more

_origins: weakref.WeakKeyDictionary[Hub, str] = weakref.WeakKeyDictionary()


def hub_origin(hub: Hub) -> str:
    """A random token naming ``hub`` (one per process and database) in NOTIFY payloads."""
    origin = _origins.get(hub)
    if origin is None:
        origin = _origins.setdefault(hub, secrets.token_hex(8))
    return origin


_STEPS_PREFIX = steps_topic("")


def encode_payload(origin: str, topics: Iterable[str]) -> str:
    """The NOTIFY payload for ``topics``. When they do not fit, the workflows' step topics
    (live views only) give way to `TOPIC_STEPS`, which wakes those views to look for
    themselves; if that is still too long, or a topic contains the separator, ``*`` (wake
    everyone)."""
    ordered = sorted(set(topics))
    body = ",".join(ordered)
    if len(body.encode()) > MAX_PAYLOAD_BYTES:
        ordered = [t for t in ordered if not t.startswith(_STEPS_PREFIX)] + [TOPIC_STEPS]
        body = ",".join(ordered)
    if ALL in ordered or any("," in t for t in ordered) or len(body.encode()) > MAX_PAYLOAD_BYTES:
        body = ALL
    return f"{origin} {body}"


def decode_payload(payload: str) -> tuple[str, list[str]]:
    """``(origin, topics)`` from a payload; anything unexpected means ``*``."""
    origin, sep, body = payload.partition(" ")
    if not sep or not body:
        return origin, [ALL]
    return origin, body.split(",")


# The listeners in use, by (hub, channel, event loop), with how many stores use each.
_shared: dict[tuple[Hub, str, asyncio.AbstractEventLoop], tuple[Listener, int]] = {}


async def listen(connect: Callable[[], Awaitable[Any]], channel: str, hub: Hub) -> Listener:
    """The listener feeding ``hub`` from ``channel`` in the running event loop: started by
    the first store that asks (``connect`` makes its connection), shared by the stores
    opened after it (a worker's and its client's): one LISTEN connection, and each
    notification given to the hub once, not once per store (each a wake-up of every
    waiter, and a claim that finds nothing). Give it back with `unlisten`."""
    key = (hub, channel, asyncio.get_running_loop())
    if key not in _shared:
        listener = Listener(connect, channel, hub)
        await listener.start()
        if key not in _shared:
            _shared[key] = (listener, 0)
        else:  # another store started one meanwhile
            await listener.aclose()
    listener, users = _shared[key]
    _shared[key] = (listener, users + 1)
    return listener


async def unlisten(listener: Listener) -> None:
    """A store is done with ``listener`` (from `listen`): the last one closes it."""
    key = (listener._hub, listener._channel, asyncio.get_running_loop())
    entry = _shared.get(key)
    if entry is None or entry[0] is not listener:  # not shared (or from another loop)
        await listener.aclose()
        return
    if entry[1] > 1:
        _shared[key] = (listener, entry[1] - 1)
        return
    del _shared[key]
    await listener.aclose()


class Listener:
    """Owns a LISTEN connection and its reconnecting background task (shared by the stores
    of one process, database and event loop: `listen`)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], channel: str, hub: Hub) -> None:
        self._connect = connect
        self._channel = channel
        self._hub = hub
        self._origin = hub_origin(hub)
        self._conn: Any = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: True while notifications from other processes arrive; False means poll.
        self.listening = False

    @property
    def server_pid(self) -> int | None:
        """The backend pid of the listening connection (for tests and diagnostics)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    async def start(self) -> None:
        """Connect and LISTEN (raising if that fails), then watch the connection."""
        await self._attach()
        self._task = asyncio.create_task(self._watch(), name=f"durable listener {self._channel}")

    async def aclose(self) -> None:
        """Stop the watcher task and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._detach()

    def _on_notification(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        origin, topics = decode_payload(payload)
        if origin != self._origin:
            self._hub.notify(topics)

    async def _attach(self) -> None:
        conn = await self._connect()
        # One event per connection: a late callback of an old connection sets its own.
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(self._channel, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        self._conn, self._lost = conn, lost
        self.listening = True

    async def _detach(self) -> None:
        conn, self._conn = self._conn, None
        self.listening = False
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), LISTENER_PING_TIMEOUT)
            except Exception:  # best effort: it is being dropped anyway
                conn.terminate()

    async def _watch(self) -> None:
        while True:
            await self._wait_until_lost()
            logger.warning(
                "Lost the LISTEN connection on %r; polling every few seconds until it is back",
                self._channel,
            )
            await self._detach()
            self._hub.notify([ALL])  # current waiters switch to polling
            delay = LISTENER_RETRY_INITIAL
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._attach()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.debug("LISTEN reconnect failed: %r", exc)
                    delay = min(delay * 2, LISTENER_RETRY_MAX)
                    continue
                break
            logger.info("LISTEN connection on %r is back", self._channel)
            self._hub.notify([ALL])  # notifications sent while deaf are lost: re-query

    async def _wait_until_lost(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), LISTENER_PING_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                await self._conn.execute("SELECT 1", timeout=LISTENER_PING_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception:
                return
