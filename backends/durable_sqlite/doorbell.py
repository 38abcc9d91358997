"""Wake-ups between processes on one SQLite file: each process rings the others' doorbells.

SQLite has no LISTEN/NOTIFY. Without help, a process notices another's commit only by
polling ``PRAGMA data_version`` (`durable_sqlite.wakeups`: every 5 ms at first, then up to
every 50 ms while idle), so a task a worker queues reaches a ``durable server`` long-poll,
and a completion the server writes reaches the worker, up to 50 ms late: most of a remote
activity's round trip.

So every process that opens a file binds a Unix datagram socket (its *doorbell*) in a
directory of its own user's, named after the file::

    $TMPDIR/durable-<uid>/<hash of the file's real path>/<pid>-<random>

and after each commit its `Hub` sends the topics it notified (the same payload as
PostgreSQL's NOTIFY, `durable_postgres.listener.encode_payload`) to every other doorbell
there; a process that receives one notifies its hub with them, waking its waiters at once.
It is a shortcut, never the only way: a datagram lost (a full buffer, a process that had
not bound yet) leaves the ``data_version`` poll to notice the commit. While other doorbells
exist, a wait on work trusts the rings and makes that poll's first check only after
`durable_sqlite.wakeups.POLL_INTERVAL` (50 ms), so a lost ring, or a writer without a
doorbell (another user's process, one with another ``TMPDIR`` or a private ``/tmp``), is
noticed within that; alone, the poll starts after 5 ms, as it always did.

Sending costs a ``stat`` of the directory (re-listed only when it changed) and one
``sendto`` per other process. A doorbell whose process died (``ECONNREFUSED``) is removed
by the first sender to find it. The directory is created ``0700`` and used only if this
user owns it and nobody else may write to it; otherwise (or where Unix datagram sockets are
missing) there is no doorbell and the poll alone serves, as it always did.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import socket
import stat
import tempfile
import threading
from collections.abc import Iterable

from durable.notify import ALL, Hub

__all__ = ["Doorbell", "attach", "detach"]

logger = logging.getLogger(__name__)

MAX_DATAGRAM = 60_000  # bytes of topics past which "*" (wake everyone) is sent instead:
# under the default socket buffer, so a send never blocks and a read is never cut
_RECEIVE_BATCH = 256  # datagrams read per wake-up of the event loop


def _directory(path: str) -> str:
    """The doorbells' directory of the database file at ``path``."""
    key = hashlib.sha256(os.path.realpath(path).encode()).hexdigest()[:20]
    return os.path.join(tempfile.gettempdir(), f"durable-{os.getuid()}", key)


def _private(directory: str) -> bool:
    """Create ``directory`` (and its parent) 0700; whether both are this user's alone."""
    parent = os.path.dirname(directory)
    for d in (parent, directory):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, 0o700)
        st = os.lstat(d)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
            logger.info("No SQLite doorbell: %s is not this user's private directory", d)
            return False
    return True


class Doorbell:
    """One process's doorbell for one database file: receives the others' rings into
    ``hub`` and rings theirs when ``hub`` is notified here."""

    def __init__(self, hub: Hub, directory: str, sock: socket.socket, name: str) -> None:
        self.hub = hub
        self.directory = directory
        self.name = name  # this doorbell's file name in the directory
        self._sock = sock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: list[str] = []
        self._listed = -1  # the directory's mtime (ns) when it was listed
        self._lock = threading.Lock()  # rings may come from any thread
        self.users = 0  # stores of this file in this process using it

    @classmethod
    def open(cls, hub: Hub, path: str) -> Doorbell | None:
        """Bind a doorbell for the file at ``path``; None where it cannot be (see module)."""
        if not hasattr(socket, "AF_UNIX"):
            return None
        directory = _directory(path)
        try:
            if not _private(directory):
                return None
            name = f"{os.getpid()}-{secrets.token_hex(4)}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        except OSError as exc:
            logger.info("No SQLite doorbell for %s: %s", path, exc)
            return None
        sock.setblocking(False)
        for again in (True, False):
            try:
                sock.bind(os.path.join(directory, name))
                break
            except FileNotFoundError:  # the last one out removed the directory meanwhile
                if again and _private(directory):
                    continue
                sock.close()
                return None
            except OSError as exc:  # e.g. a path too long for a Unix socket
                sock.close()
                logger.info("No SQLite doorbell for %s: %s", path, exc)
                return None
        return cls(hub, directory, sock, name)

    def listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Receive rings on ``loop`` (the loop of the store that opened it)."""
        self._loop = loop
        loop.add_reader(self._sock.fileno(), self._receive)

    def _receive(self) -> None:
        topics: set[str] = set()
        for _ in range(_RECEIVE_BATCH):
            try:
                data = self._sock.recv(MAX_DATAGRAM + 1024)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not data:
                continue
            body = data.decode("utf-8", "replace")
            topics.update(body.split(",") if body else [ALL])
        if topics:
            self.hub.notify(topics, forward=False)

    def ring(self, topics: Iterable[str]) -> None:
        """Send ``topics`` to every other doorbell of the file (the hub's forward hook)."""
        peers = self._current_peers()
        if not peers:
            return
        names = set(topics)
        if not names:
            return
        data = ",".join(sorted(names)).encode()
        if len(data) > MAX_DATAGRAM or any("," in t for t in names):
            data = ALL.encode()  # too many to name (or a name with the separator): everyone
        for peer in peers:
            try:
                self._sock.sendto(data, os.path.join(self.directory, peer))
            except (BlockingIOError, InterruptedError):
                pass  # its buffer is full: it is awake and reading, or polls anyway
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    self._forget(peer, gone=exc.errno == errno.ECONNREFUSED)

    def has_peers(self) -> bool:
        """Whether another process has a doorbell of this file (and so rings this one after
        each of its commits)."""
        return bool(self._current_peers())

    def _current_peers(self) -> list[str]:
        try:
            mtime = os.stat(self.directory).st_mtime_ns
        except OSError:
            return []
        with self._lock:
            if mtime != self._listed:
                try:
                    names = os.listdir(self.directory)
                except OSError:
                    names = []
                self._peers = [n for n in names if n != self.name]
                self._listed = mtime
            return self._peers

    def _forget(self, peer: str, *, gone: bool) -> None:
        """Stop ringing ``peer``; remove its socket file when its process is gone."""
        if gone:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, peer))
        with self._lock:
            self._peers = [p for p in self._peers if p != peer]

    def close(self) -> None:
        """Stop receiving and remove this doorbell."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.directory, self.name))
        with contextlib.suppress(OSError):  # the last one out; not empty: others remain
            os.rmdir(self.directory)


_doorbells: dict[int, Doorbell] = {}  # by id(hub): one per file per process
_doorbells_lock = threading.Lock()


def attach(hub: Hub, path: str) -> Doorbell | None:
    """The doorbell of ``hub``'s file, opened and listening on the running loop at its first
    user; every call is matched by a `detach`."""
    with _doorbells_lock:
        bell = _doorbells.get(id(hub))
        if bell is None:
            bell = Doorbell.open(hub, path)
            if bell is None:
                return None
            _doorbells[id(hub)] = bell
            hub.forward = bell.ring
        if bell._loop is None or bell._loop.is_closed():  # its first loop ended (a test's)
            bell.listen(asyncio.get_running_loop())
        bell.users += 1
        return bell


def detach(hub: Hub) -> None:
    """One user of ``hub``'s doorbell is done; the last one closes it."""
    with _doorbells_lock:
        bell = _doorbells.get(id(hub))
        if bell is None:
            return
        bell.users -= 1
        if bell.users > 0:
            return
        del _doorbells[id(hub)]
        hub.forward = None
    bell.close()
