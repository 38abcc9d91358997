"""How the `durable` command shows things: JSON for tools, text for people.

`jsonable` is the one place values become JSON (datetimes ISO 8601, bytes base64,
`RemoteError` and other dataclasses as objects); every ``--json`` output goes through it.
The rest turns a run (`RunView`: its description, `durable.steps.Step`\\ s, published
values and history), worker records and lists of runs into lines of text.

Times are shown in the local time zone as ISO 8601 with the UTC offset
(``2026-12-04T10:00:00+00:00``), so a line means the same thing on any machine; the time
of day alone (``10:02:11``) only where the date was just given.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import math
import operator
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from ..client import Event, WorkflowDescription
from ..errors import RemoteError
from ..steps import ACTIVITY_KINDS, Step
from ..store import CLOSED_STATUSES, WorkerRecord

__all__ = [
    "RunView",
    "dumps",
    "error_lines",
    "jsonable",
    "outcome",
    "progress",
    "run_lines",
    "runs_table",
    "step_event",
    "table",
    "when",
    "worker_lines",
]

CUT = 300  # characters of a value shown in a table row or a history line (--json has all)
SHOWN = 200  # most steps (besides open and failed ones) and history entries shown, the newest
LABEL = 15  # width of the labels in `durable show` ("  status   ...")
# The statuses of a step still in flight (see durable.steps).
OPEN_STATUSES = frozenset({"scheduled", "running", "retrying", "waiting"})
_STATUS = operator.attrgetter("status")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: datetimes and dates ISO 8601, timedeltas seconds,
    bytes base64, Decimal and UUID strings, Enums their value, tuples and sets lists,
    `RemoteError` and other dataclasses objects, mapping keys strings, non-finite floats
    strings; anything else its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, RemoteError):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {
            k if isinstance(k, str) else json.dumps(jsonable(k)): jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, set | frozenset):
        items = [jsonable(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text (through `jsonable`), non-ASCII kept readable."""
    return json.dumps(jsonable(value), ensure_ascii=False, indent=indent)


def _cut(text: str, limit: int = CUT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters; --json shows all)"


def when(dt: datetime | None, *, precise: bool = False) -> str:
    """A moment in ISO 8601, local time with its UTC offset; ``-`` for none."""
    if dt is None:
        return "-"
    return dt.astimezone().isoformat(timespec="milliseconds" if precise else "seconds")


def clock(dt: datetime) -> str:
    """The local time of day of ``dt``, for lines where the date is plain from context."""
    return dt.astimezone().strftime("%H:%M:%S")


def relative(dt: datetime, now: datetime) -> str:
    """``in 2 days`` or ``3 minutes ago`` (``now`` within a second)."""
    delta = (dt - now).total_seconds()
    size = abs(delta)
    if size < 1:
        return "now"
    for unit, seconds, below in (
        ("second", 1, 90),
        ("minute", 60, 90 * 60),
        ("hour", 3600, 36 * 3600),
        ("day", 86400, math.inf),
    ):
        if size < below:
            n = round(size / seconds)
            text = f"{n} {unit}{'' if n == 1 else 's'}"
            return f"in {text}" if delta > 0 else f"{text} ago"
    raise AssertionError("unreachable")  # pragma: no cover


def moment(dt: datetime, now: datetime) -> str:
    """``in 2 days (2026-12-04T10:00:00+00:00)``: when, readable first."""
    return f"{relative(dt, now)} ({when(dt)})"


def took(seconds: float) -> str:
    """A duration, short: ``12ms``, ``1.5s``, ``3m04s``, ``2h05m``, ``3d04h``."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "") -> list[str]:
    """Rows under headers, each column as wide as its widest cell (nothing truncated)."""
    rows = [list(r) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    out = []
    for row in [list(headers), *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def error_lines(error: RemoteError, indent: str = "") -> list[str]:
    """An error, its traceback (indented), and what caused it, each with its own."""
    out = [f"{indent}{error}"]
    for line in error.traceback.rstrip().splitlines():
        out.append(f"{indent}  {line}")
    if error.cause is not None:
        out.append(f"{indent}caused by:")
        out.extend(error_lines(error.cause, indent))
    return out


def _raised_at(error: RemoteError) -> str:
    """The last frame of the error's traceback: where it was raised."""
    frames = [ln.strip() for ln in error.traceback.splitlines() if ln.startswith('  File "')]
    return frames[-1] if frames else ""


@dataclass(frozen=True)
class RunView:
    """Everything `durable show` shows of a run, read once."""

    description: WorkflowDescription
    steps: list[Step]
    published: dict[str, Any]
    history: list[Event]
    now: datetime
    #: When each activity task waiting for its next attempt may run (seq -> time).
    retry_at: dict[int, datetime] = dataclasses.field(default_factory=dict)

    def to_json(self) -> Any:
        """The run as one JSON document."""
        doc = jsonable(self.description)
        doc.update(
            steps=jsonable(self.steps),
            published=jsonable(self.published),
            history=jsonable(self.history),
        )
        return doc


def _attempts(step: Step) -> str:
    if step.kind not in ACTIVITY_KINDS:
        return "-"
    return str(max([a.number for a in step.attempts], default=0))


def _step_details(step: Step, now: datetime, retry_at: datetime | None = None) -> list[str]:
    """The lines under a step's row: what it waits for, its last error, its heartbeat."""
    out = []
    if step.kind in ACTIVITY_KINDS:
        if step.status == "retrying" and retry_at is not None and retry_at > now:
            out.append(f"next attempt {moment(retry_at, now)}")
        for attempt in step.attempts:
            if attempt.closed_at is None and step.status == "running":
                line = f"attempt {attempt.number} running on {attempt.worker or '?'}"
                if attempt.heartbeat is not None:
                    line += f", heartbeat {_cut(dumps(attempt.heartbeat))}"
                out.append(line)
        last = next((a for a in reversed(step.attempts) if a.error is not None), None)
        error = last.error if last is not None else step.error
        if error is not None and step.status == "completed":  # it got there after all
            out.append(f"attempt {last.number if last else '?'} failed: {_cut(str(error))}")
        elif error is not None:
            number = f" (attempt {last.number})" if last is not None else ""
            out.append(f"last error{number}: {_cut(str(error))}")
            if where := _raised_at(error):
                out.append(f"  at {where}")
    elif step.kind == "signal":
        if step.status == "waiting":
            deadline = step.input
            out.append(
                f"deadline {moment(deadline, now)}"
                if isinstance(deadline, datetime)
                else "no deadline"
            )
        elif step.status == "completed":
            out.append(f"received {_cut(dumps(step.output))}")
    elif step.kind == "timer" and step.status == "waiting" and isinstance(step.input, datetime):
        out.append(f"due {moment(step.input, now)}")
    elif step.kind == "condition" and step.status == "waiting":
        out.append(f"until durable.wait_condition(...) holds; times out {moment(step.input, now)}")
    elif step.kind == "child":
        out.append(f"child workflow {step.child_id}")
    elif step.kind == "external":
        if step.status == "waiting":
            out.append("waits for client.complete(token, ...) or client.fail(token, ...)")
        elif step.status == "completed":
            out.append(f"completed with {_cut(dumps(step.output))}")
    elif step.kind in ("publish", "tags"):
        out.append(f"= {_cut(dumps(step.input))}")
    elif step.kind == "update" and step.status == "completed":
        out.append(f"returned {_cut(dumps(step.output))}")
    if step.kind not in ACTIVITY_KINDS and step.error is not None:
        out.append(_cut(str(step.error)))
    return out


def steps_table(
    steps: Sequence[Step], now: datetime, retry_at: Mapping[int, datetime] | None = None
) -> list[str]:
    """The steps as a table, each row followed by its details (indented)."""
    headers = ("SEQ", "KIND", "NAME", "BRANCH", "STATUS", "ATTEMPTS", "SCHEDULED", "TOOK")
    rows = []
    for s in steps:
        span = (
            took((s.closed_at - s.scheduled_at).total_seconds())
            if s.closed_at is not None and s.scheduled_at is not None
            else "-"
        )
        rows.append(
            (
                str(s.seq),
                s.kind,
                s.name,
                s.branch,
                s.status,
                _attempts(s),
                when(s.scheduled_at),
                span,
            )
        )
    lines = table(headers, rows, indent="  ")
    out = lines[:1]
    pad = " " * (2 + max(len(r[0]) for r in [headers, *rows]) + 2)  # under KIND
    for s, line in zip(steps, lines[1:], strict=True):
        out.append(line)
        details = _step_details(s, now, (retry_at or {}).get(s.seq))
        out.extend(pad + detail for detail in details)
    return out


def _doing(step: Step) -> str:
    """What an open step is doing, in a few words."""
    if step.kind in ACTIVITY_KINDS:
        what = step.kind  # "activity" or "compensation"
        if step.status == "running":
            running = [a for a in step.attempts if a.closed_at is None]
            beat = running[-1].heartbeat if running else None
            extra = f", heartbeat {_cut(dumps(beat), 80)}" if beat is not None else ""
            return f"running {what} {step.name!r} (attempt {_attempts(step)}{extra})"
        if step.status == "retrying":
            return f"{what} {step.name!r} retrying after {step.error}"
        since = f" since {clock(step.scheduled_at)}" if step.scheduled_at else ""
        return f"{what} {step.name!r} waiting for a worker{since}"
    if step.kind == "signal":
        since = f" since {clock(step.scheduled_at)}" if step.scheduled_at else ""
        return f"waiting for signal {step.name!r}{since}"
    if step.kind == "timer" and isinstance(step.input, datetime):
        return f"sleeping until {when(step.input)}"
    if step.kind == "condition" and isinstance(step.input, datetime):
        return f"waiting for a condition (durable.wait_condition) until {when(step.input)}"
    if step.kind == "child":
        return f"waiting for child workflow {step.name!r} ({step.child_id})"
    if step.kind == "external":
        since = f" since {clock(step.scheduled_at)}" if step.scheduled_at else ""
        return f"waiting for external completion {step.name!r}{since}"
    if step.kind == "update":
        return f"running the handler of update {step.name!r}"
    return f"{step.kind} {step.name!r} {step.status}"


def progress(status: str, steps: Sequence[Step], counts: Mapping[str, int] | None = None) -> str:
    """One line: how far the run got and what it is doing now.

    ``7/12 steps done, waiting for signal 'approve' since 10:02:11``; failed steps are
    counted apart (``3001/3001 steps done (1 failed), completed``: a failure the code caught).
    ``counts``: the steps per status, when the caller has them (the console's run page).
    """
    if counts is None:
        counts = Counter(map(_STATUS, steps))  # in C: a run may have 100,000 steps
    still = sum(counts.get(s, 0) for s in OPEN_STATUSES)
    failed = counts.get("failed", 0)
    head = f"{len(steps) - still}/{len(steps)} steps done"
    head += f" ({failed:,} failed)" if failed else ""
    doing = [_doing(s) for s in steps if s.status in OPEN_STATUSES] if still else []
    if doing:
        return f"{head}, {'; '.join(doing)}"
    if status == "pending":
        return f"{head}, waiting for a worker to pick it up"
    if status == "running":
        return f"{head}, running workflow code"
    return f"{head}, {status}"


def step_event(step: Step) -> str:
    """A step's new state, for ``--follow``: ``#4 activity charge: retrying (...)``."""
    name = "" if step.name == step.kind else f" {step.name}"  # a timer is named "timer"
    line = f"#{step.seq} {step.kind}{name}: {step.status}"
    if step.status in ("retrying", "failed") and step.error is not None:
        line += f" ({_cut(str(step.error), 200)})"
    elif step.kind == "signal" and step.status == "completed":
        line += f" ({_cut(dumps(step.output), 200)})"
    return line


def outcome(d: WorkflowDescription) -> list[str]:
    """How a closed run ended: its result, or its error with the traceback."""
    if d.status == "completed":
        return [f"{d.id} completed: {dumps(d.result)}"]
    out = [f"{d.id} {d.status}"]
    if d.error is not None:
        out.extend(error_lines(d.error, "  "))
    return out


def _history_value(key: str, value: Any) -> Any:
    """A history entry's field for people: errors one line, POSIX times ISO 8601."""
    if isinstance(value, RemoteError):
        return str(value)
    if key in ("due", "started_at") and isinstance(value, int | float):
        return when(datetime.fromtimestamp(value, UTC), precise=True)
    return value


def history_lines(events: Sequence[Event]) -> list[str]:
    """The journal, one line an entry: seq, time, kind, data (tracebacks left out)."""
    width = max((len(e.kind) for e in events), default=0)
    out = []
    for e in events:
        data = {
            k: _history_value(k, v)
            for k, v in e.data.items()
            if k != "retry" and v is not None  # the retry policy and unset options: noise
        }
        out.append(
            f"  {e.seq:>4}  {when(e.time, precise=True)}  {e.kind:<{width}}  {_cut(dumps(data))}"
        )
    return out


def _field(label: str, text: str) -> str:
    return f"  {label:<{LABEL - 2}}{text}"


def run_lines(view: RunView) -> list[str]:
    """`durable show`: the run, its steps, pending work, published values and history."""
    d, now = view.description, view.now
    out = [f"{d.name} {d.id}"]
    out.append(_field("run", d.run_id))
    out.append(_field("status", d.status))
    out.append(_field("queue", d.queue))
    out.append(_field("created", moment(d.created_at, now)))
    if d.closed_at is not None:
        out.append(_field("closed", moment(d.closed_at, now)))
    out.append(_field("input", dumps(d.input)))
    if d.status == "completed":
        out.append(_field("result", dumps(d.result)))
    if d.error is not None:
        first, *rest = error_lines(d.error)
        out.append(_field("error", first))
        out.extend(" " * LABEL + line for line in rest)
    if d.problem:
        out.append(_field("problem", d.problem))
    if d.status not in CLOSED_STATUSES:
        out.append(_field("progress", progress(d.status, view.steps)))
    out.append("")
    out.append(f"steps ({len(view.steps)}):" if view.steps else "steps: none yet")
    if view.steps:
        # A long run keeps to a screenful: the newest steps, and any open or failed one.
        oldest = len(view.steps) - SHOWN
        shown = [
            s
            for i, s in enumerate(view.steps)
            if i >= oldest or s.status in OPEN_STATUSES or s.status == "failed"
        ]
        if len(shown) < len(view.steps):
            hidden = len(view.steps) - len(shown)
            out.append(f"  ... {hidden:,} earlier steps not shown (--json has them all)")
        out.extend(steps_table(shown, now, view.retry_at))
    if d.pending:
        out.append("")
        out.append("pending:")
        for p in d.pending:
            attempt = f", attempt {p.attempt}" if p.kind in ACTIVITY_KINDS else ""
            line = f"  {p.kind} {p.name}{attempt}, since {when(p.scheduled_at)}"
            if p.last_error is not None:
                line += f"; last error: {_cut(str(p.last_error))}"
            out.append(line)
    out.append("")
    if view.published:
        out.append("published:")
        width = max(len(k) for k in view.published)
        out.extend(f"  {k:<{width}}  {_cut(dumps(v))}" for k, v in sorted(view.published.items()))
    else:
        out.append("published: nothing")
    out.append("")
    out.append("history:")
    if len(view.history) > SHOWN:
        hidden = len(view.history) - SHOWN
        out.append(f"  ... {hidden:,} earlier entries not shown (--json has them all)")
    out.extend(history_lines(view.history[-SHOWN:]))
    return out


def runs_table(runs: Sequence[WorkflowDescription]) -> list[str]:
    """`durable list`: one row a run, columns as wide as their data."""
    headers = ("ID", "RUN ID", "NAME", "STATUS", "CREATED", "CLOSED")
    return table(
        headers,
        ((d.id, d.run_id, d.name, d.status, when(d.created_at), when(d.closed_at)) for d in runs),
    )


def worker_dict(w: WorkerRecord) -> dict[str, Any]:
    """A worker record with dated times, for JSON and for text alike."""
    return {
        "id": w.worker_id,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "workflows": list(w.workflows),
        "activities": list(w.activities),
        "started_at": datetime.fromtimestamp(w.started_at, UTC),
        "heartbeat_at": datetime.fromtimestamp(w.heartbeat_at, UTC),
    }


def worker_lines(workers: Sequence[WorkerRecord], now: datetime) -> list[str]:
    """`durable workers`: a block per live worker."""
    out: list[str] = []
    for w in workers:
        d = worker_dict(w)
        if out:
            out.append("")
        out.append(f"{w.worker_id}  (host {w.host}, pid {w.pid})")
        out.append(_field("queues", ", ".join(w.queues) or "-"))
        out.append(_field("workflows", ", ".join(w.workflows) or "-"))
        out.append(_field("activities", ", ".join(w.activities) or "-"))
        out.append(_field("started", moment(d["started_at"], now)))
        out.append(_field("heartbeat", moment(d["heartbeat_at"], now)))
    return out
