"""Guards on the database file itself: private when created, writable, and still the file.

An SQLite store is only as safe as the file under it, and three things go wrong there
silently unless checked:

- **Permissions.** The file holds every workflow's inputs and results. SQLite creates a
  new file with mode 0o644 (less the umask), readable by every local user; `create_private`
  creates it 0o600 first. SQLite gives the ``-wal``, ``-shm`` and ``-journal`` files the
  mode of the database file, so they follow. An existing file's mode is left alone: it is
  the owner's choice.
- **Read-only files.** SQLite opens a file it may not write read-only without a word, and
  the first write then fails deep inside a worker's loop. `check_writable` says so at open,
  naming the file or directory and the fix; `read_only_error` words the failure when
  SQLite reports it later all the same (its ``SQLITE_READONLY`` codes).
- **A file deleted or replaced under a running process** (``rm``, a backup restored with
  ``mv``): the open connection goes on reading and writing the old, unlinked file, so new
  runs started on the new file never run, and its old ``-wal`` (kept at the path) is
  applied to the replacement by the next process to open it. `FileIdentity` remembers the
  file's ``(st_dev, st_ino)`` at open and compares them with the path's, at most every
  `IDENTITY_CHECK_SECONDS`, on the store's operations and its polls; once they differ every
  operation raises `DatabaseUnusable`, so processes stop instead of working on a ghost.
"""

from __future__ import annotations

import os
import sqlite3
import time

from durable.errors import DatabaseUnusable, StoreError

__all__ = [
    "IDENTITY_CHECK_SECONDS",
    "PRIVATE_MODE",
    "FileIdentity",
    "check_writable",
    "create_private",
    "is_read_only",
    "read_only_error",
]

PRIVATE_MODE = 0o600  # a new database file: read and write for its owner only
# Most seconds between two comparisons of the open file with the path: an os.stat on the
# event loop, so a busy worker pays one per second, and a replaced file is noticed within
# about a second of the next operation.
IDENTITY_CHECK_SECONDS = 1.0


def create_private(path: str) -> None:
    """Create ``path`` as an empty file with `PRIVATE_MODE` unless it exists.

    SQLite treats an empty file as an empty database. Two processes creating it together
    is fine: one creates it, the other finds it there.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # unwritable directory and the like: check_writable or SQLite says it plainly
    os.close(fd)


def _user() -> str:
    return f"uid {os.geteuid()}" if hasattr(os, "geteuid") else "this user"


def check_writable(path: str) -> None:
    """Raise `StoreError` unless this process may write ``path`` and its directory
    (where SQLite creates the file, and its ``-wal`` and ``-shm`` files beside it)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path) and not _access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"The SQLite database {path!r} is read-only for this process ({_user()}): "
            "durable writes to it on every start and step, from clients and workers alike. "
            "Make it readable and writable by this user (chown, or chmod u+rw), or run as "
            "its owner."
        )
    if not _access(directory, os.W_OK | os.X_OK):
        raise StoreError(
            f"Cannot write in {directory!r}, the directory of the SQLite database {path!r} "
            f"({_user()}): SQLite creates the database there, and its -wal and -shm files "
            "beside it. Make the directory writable by this user, or put the database in "
            "one that is."
        )


def _access(path: str, mode: int) -> bool:
    # The effective ids, which are what open() checks (they differ from the real ones in a
    # setuid program or a test that switches users).
    if os.access in os.supports_effective_ids:
        return os.access(path, mode, effective_ids=True)
    return os.access(path, mode)


def is_read_only(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused a write because the database is read-only to it."""
    return str(getattr(exc, "sqlite_errorname", "")).startswith("SQLITE_READONLY")


def read_only_error(path: str, exc: sqlite3.Error) -> DatabaseUnusable:
    """The error for a write SQLite refused as read-only (see `is_read_only`)."""
    return DatabaseUnusable(
        f"The SQLite database {path!r} cannot be written by this process ({exc}; "
        f"{getattr(exc, 'sqlite_errorname', 'SQLITE_READONLY')}): the file, its directory or "
        "its -wal/-shm files are read-only to this user, or the file was moved. Make them "
        "writable by this user and restart the process."
    )


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class FileIdentity:
    """Notices the database file at ``path`` being deleted or replaced (see the module
    docstring). Create it right after the connection opened the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        identity = _identity(path)
        if identity is None:
            raise StoreError(f"The SQLite database {path!r} disappeared while it was being opened.")
        self._identity = identity
        self._next_check = time.monotonic() + IDENTITY_CHECK_SECONDS
        self._error: DatabaseUnusable | None = None

    def check(self) -> None:
        """Raise `DatabaseUnusable` if the path no longer names the opened file (looking
        at most every `IDENTITY_CHECK_SECONDS`; once seen, on every call)."""
        if self._error is None:
            now = time.monotonic()
            if now < self._next_check:
                return
            self._next_check = now + IDENTITY_CHECK_SECONDS
            current = _identity(self.path)
            if current == self._identity:
                return
            what = "deleted" if current is None else "replaced by another file"
            self._error = DatabaseUnusable(
                f"The database file {self.path!r} was {what} while this process had it "
                "open; its writes since went to the old file, which nothing else reads. "
                "Restart the worker (and clients): stop every process that had the old "
                "file open before starting any again, as they share its -wal file with "
                "the new one."
            )
        raise self._error
