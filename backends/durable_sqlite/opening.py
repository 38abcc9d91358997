"""Opening an SQLite database: its URL, its directory, and WAL mode."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from urllib.parse import parse_qsl, urlsplit

import aiosqlite

from durable.errors import StoreError
from durable.store import is_secret_parameter, redact_url

__all__ = ["bind_plainly", "check_directory", "enable_wal", "parse_url"]

_SYNCHRONOUS = ("full", "normal")


def _none(_: None) -> None:
    return None


def bind_plainly() -> None:
    """Let ``sqlite3`` bind ``bytes``, ``None``, ``bool`` and durable's journal kinds (a
    `str` enum) without looking for an adapter each time (once per process; idempotent).

    CPython's ``sqlite3`` binds only exact ``int``, ``float``, ``str`` and ``bytearray``
    directly: any other parameter (``bytes`` and ``None`` included) goes through its
    adapter lookup, which, when no adapter is registered, fails two attribute lookups
    (``__adapt__``, ``__conform__``), each raising and clearing an ``AttributeError``:
    about 0.6 µs a parameter, some twenty per workflow step. With an adapter registered,
    the lookup is one dict hit and one call. These adapters give what was bound before
    (the same object, or its plain ``str``/``int`` value), so nothing stored changes; an
    adapter the application registered first for one of these types is left in place.
    """
    from durable.journal import Kind

    for kind, adapter in ((bytes, bytes), (type(None), _none), (bool, int), (Kind, str)):
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, adapter)  # type: ignore[arg-type]


def parse_url(url: str) -> tuple[str, str]:
    """``(file path, synchronous)`` from a ``sqlite:///...`` URL."""
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise StoreError(
            f"Not an SQLite URL: {shown!r}. Use 'sqlite:///relative/path.db' or "
            "'sqlite:////absolute/path.db'."
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path or path == ":memory:" or path.startswith("file:"):
        raise StoreError(
            f"{shown!r} names no database file. durable needs a file on disk, because its "
            "workers and clients share it: use e.g. 'sqlite:///durable.db'."
        )
    synchronous = "full"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "synchronous" and value.lower() in _SYNCHRONOUS:
            synchronous = value.lower()
        else:
            shown_value = "***" if is_secret_parameter(key) else repr(value)
            raise StoreError(
                f"Unsupported option {key}={shown_value} in {shown!r}: the SQLite backend takes "
                "only ?synchronous=full (default) or ?synchronous=normal."
            )
    return path, synchronous


def check_directory(path: str) -> None:
    """Refuse a path whose directory does not exist, saying so."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StoreError(
            f"Cannot open the SQLite database {path!r}: directory {directory!r} does not "
            "exist. Create it, or point the URL at an existing directory."
        )


async def enable_wal(db: aiosqlite.Connection, timeout: float) -> None:
    """Put the file in WAL mode (persistent; a no-op once done).

    Switching needs the file to itself for a moment, and SQLite reports "locked" at once
    rather than waiting, when processes open a new file together: so retry, up to
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            rows = list(await db.execute_fetchall("PRAGMA journal_mode = WAL"))
            if str(rows[0][0]).lower() == "wal":
                return
            problem = f"journal_mode stayed {rows[0][0]!r}"
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc):
                raise
            problem = str(exc)
        if time.monotonic() > deadline:
            raise StoreError(f"Cannot switch the database to WAL mode: {problem}.")
        await asyncio.sleep(0.01)
