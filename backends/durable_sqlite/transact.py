"""One thread hop per operation: running a whole read or transaction on the database thread.

An `aiosqlite.Connection` runs every call on its own thread, and each call is a hop: the
event loop queues it, the thread runs it, the loop is woken with the result. Awaiting
``BEGIN``, each statement and ``COMMIT`` in turn made a step cost a dozen hops, each
paying a thread switch and a loop wake-up while holding the write lock, so latency was
many times the disk's. Here an operation is one plain function on the `sqlite3.Connection`
(the helpers of `durable_sqlite.steps`, `claims` and `workers` are such functions) that
`call` runs on the connection's thread in one hop, whole.

**Cancellation.** `transaction` begins, runs the body and commits, or rolls back on any
error, all inside that one function: once queued it runs to the end whatever the caller
does, so the connection is never left inside a transaction (which would also keep other
processes' writers waiting on the lock). A cancelled caller cannot tell whether its
transaction committed, as before, when a cancellation could land during ``COMMIT``.
Operations of one connection run in the order they were queued, one at a time: no lock is
needed to keep concurrent coroutines' statements from interleaving.

**Snapshots.** The function runs later, on another thread, while the event loop goes on:
whatever it reads must not change meanwhile. Callers pass it copies of the collections
they were given (a worker's set of running tasks changes as they end).

The hook is aiosqlite's ``Connection._execute`` (queue a function for its thread): it is
what every aiosqlite method is made of. A dedicated thread of our own (a queue and
``call_soon_threadsafe``) was measured beside it on the same machine: the same CPU per hop
within noise for hops one after another, and about 4 µs less per hop with 2,000 in
flight at once (11 against 15), under 1% of W2's CPU. Not worth owning a thread, so the
library stays, with its opening, closing and error handling. Its hook is private:
``tests/test_sqlite_hops.py`` counts hops through it, so a change there shows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import aiosqlite

__all__ = ["call", "data_version", "transaction"]

T = TypeVar("T")


async def call(db: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(connection)`` on ``db``'s thread, in one hop.

    Raises `ValueError` if ``db`` is closed (`SQLiteStore` checks before calling).
    """
    execute = cast(Callable[[Callable[[], T]], Awaitable[T]], db._execute)
    return await execute(lambda: fn(db._conn))


def transaction(
    conn: sqlite3.Connection, body: Callable[[sqlite3.Connection], T], relaxed: str | None = None
) -> T:
    """``body(conn)`` inside ``BEGIN IMMEDIATE``: committed if it returns, rolled back if it
    raises (anything), so ``conn`` is outside a transaction when this returns either way.

    ``relaxed`` (the connection's own ``synchronous`` setting, restored after): commit
    without waiting for the disk (``synchronous = NORMAL``). For claims of runs and tasks
    only: a claim lost with the machine (a power cut before any later commit syncs the log)
    is as if it never happened, and the work is handed out again (an activity may run
    twice, as when its worker dies). Any later commit with ``synchronous = FULL``, by any
    connection, syncs the log up to it, this claim included, so what depends on the claim
    (the step it leads to, the attempt's end) is never durable without it. A remote
    activity's round trip so pays one fsync more than an in-process one (its completion)
    instead of three; and that one is off the way to the next step (an attempt's end
    commits relaxed and syncs the log after waking the worker: `SQLiteStore._sync_log`).
    """
    if relaxed:
        conn.execute("PRAGMA synchronous = NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
            conn.commit()
        except BaseException:
            conn.rollback()  # a no-op if a failed COMMIT already ended the transaction
            raise
    finally:
        if relaxed:
            conn.execute(f"PRAGMA synchronous = {relaxed}")
    return result


def data_version(conn: sqlite3.Connection) -> int:
    """``PRAGMA data_version``: it changes when another connection has committed."""
    row = conn.execute("PRAGMA data_version").fetchone()
    return int(row[0])
