"""Step logs: what activities and workflow code log, kept with the step that logged it.

Records logged through standard `logging` (``durable.logger`` included) while an activity
attempt runs, or while workflow code runs live, are captured and stored with their step:
``handle.logs()``, ``durable logs ID [--follow]``, the console's step detail and
``GET /v1/workflows/{id}/logs``. Replaying workflow code logs nothing (``durable.logger`` is
silent then, and records of workflow code that is replaying are not captured), so a
record is stored once however often its code is replayed.

What is captured is what your logging configuration lets through: a record never created
(``logger.info`` under a WARNING level) is not captured. ``durable worker`` lets INFO and up
through (and prints only warnings, or everything with ``-v``); a worker inside your own
program follows your configuration. At most `MAX_RECORDS` records of at most `MAX_MESSAGE`
characters each are kept per attempt (and per workflow step); past that, one last record
says how many were cut. Stored shortly after the attempt ends (batched with other
attempts'), apart from the step's commit: a worker killed in between loses those records,
never the step.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .loop import current_run
from .rows import NewStepLog, StepLog

__all__ = ["MAX_MESSAGE", "MAX_RECORDS", "Capture", "Log", "attempt", "install", "logs_of"]

MAX_RECORDS = 200  # records kept per attempt (or workflow step); the rest are counted
MAX_MESSAGE = 4000  # characters kept of one record (message and traceback)

_FORMAT = logging.Formatter()


@dataclass(frozen=True)
class Log:
    """One captured record, as `WorkflowHandle.logs` gives it: the step (``seq``) and
    attempt (0: workflow code) that logged it, when, at which level, by which logger."""

    seq: int
    attempt: int
    at: datetime
    level: str  # "INFO", "WARNING", ...
    logger: str
    message: str
    id: int  # its order in the run; `logs(after=id)` reads on from it

    def __str__(self) -> str:
        return self.line()

    def line(self, *, local: bool = False) -> str:
        """The record on one line: time (UTC, or with ``local`` the local time zone, as
        the CLI prints times), level, step and attempt, logger and message."""
        who = f"#{self.seq}" + (f" attempt {self.attempt}" if self.attempt else " workflow")
        at = self.at.astimezone() if local else self.at
        when = at.isoformat(timespec="milliseconds")
        return f"{when} {self.level:<7} {who} {self.logger}: {self.message}"


def logs_of(rows: Sequence[StepLog]) -> list[Log]:
    """Stored records as `Log` values."""
    return [
        Log(
            r.seq,
            r.attempt,
            datetime.fromtimestamp(r.at, UTC),
            logging.getLevelName(r.level),
            r.logger,
            r.message,
            r.id,
        )
        for r in rows
    ]


class Capture:
    """The records captured for one attempt (``attempt`` >= 1) or one step of workflow
    code (``attempt`` 0); `rows` gives them to store."""

    __slots__ = ("attempt", "cut", "records", "run_id", "seq")

    def __init__(self, run_id: str, seq: int, attempt: int) -> None:
        self.run_id = run_id
        self.seq = seq
        self.attempt = attempt
        self.records: list[NewStepLog] = []
        self.cut = 0

    def add(self, record: logging.LogRecord, seq: int | None = None) -> None:
        """Keep ``record`` (at ``seq``, else the capture's), or count it when full."""
        with _LOCK:
            if len(self.records) >= MAX_RECORDS:
                self.cut += 1
                return
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{_FORMAT.formatException(record.exc_info)}"
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 20] + f"… ({len(message):,} chars)"
        row = NewStepLog(
            self.run_id,
            self.seq if seq is None else seq,
            self.attempt,
            record.created,
            record.levelno,
            record.name,
            message,
        )
        with _LOCK:
            self.records.append(row)

    def rows(self) -> list[NewStepLog]:
        """What to store: the records kept, and one saying how many were cut."""
        if not self.records:  # most attempts and steps log nothing
            return []
        rows = list(self.records)
        if self.cut and rows:
            last = rows[-1]
            note = (
                f"{self.cut:,} more log record(s) were not kept (at most {MAX_RECORDS} per attempt)"
            )
            rows.append(
                NewStepLog(last.run_id, last.seq, last.attempt, last.at, 30, "durable", note)
            )
        return rows


# Guards every capture's records: a sync activity logs from its thread. One lock for all
# (records are rare, contention nil) rather than a lock made per attempt and per step.
_LOCK = threading.Lock()

_ATTEMPT: contextvars.ContextVar[Capture | None] = contextvars.ContextVar(
    "durable_attempt_logs", default=None
)


class attempt(Capture):  # lower case: used like the function it replaced, `with attempt(...)`
    """Capture what is logged in this context (and threads it starts with a copy of it,
    as a sync activity's) as the records of attempt ``number`` of the step at ``seq``.

    A class, not a generator-based context manager: it is entered once per attempt, and
    is itself the `Capture` it gives (one object per attempt, not two)."""

    __slots__ = ("token",)
    token: contextvars.Token[Capture | None]

    def __enter__(self) -> Capture:
        self.token = _ATTEMPT.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ATTEMPT.reset(self.token)


def _capture(record: logging.LogRecord) -> None:
    """Hand ``record`` to the attempt or live workflow step it was logged in, if any."""
    capture = _ATTEMPT.get()
    if capture is not None:
        capture.add(record)
        return
    run = current_run()
    if run is None or run.is_replaying:
        return
    sink = run.log_capture
    if sink is not None:
        sink.add(record, seq=run.history_length)


_installed = threading.Lock()
_factories: list[object] = []  # the factory installed, once


def install() -> None:
    """Capture records as they are created (once per process; `Worker` does): through
    the log record factory, not a handler, so your logging configuration — its handlers,
    and Python's last-resort output when there are none — works exactly as before."""
    with _installed:
        if _factories:
            return
        make = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make(*args, **kwargs)
            try:
                _capture(record)
            except Exception:  # never let capturing break the caller's logging
                pass
            return record

        logging.setLogRecordFactory(factory)
        _factories.append(factory)
