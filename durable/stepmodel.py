"""The steps model's data (DESIGN §6): `Step`, `Attempt`, `PendingStep`, and payloads as
people read them. `durable.steps` builds them from journals and says everything about
them; every name here is also one of its own, and nothing else imports this module.

`Undecoded` is a step's input or output a build left encoded (``build_rows(...,
decode=False)``), for a page that shows the values of few of a big run's steps: `value`
and `decoded` give what a decoding build would have put there. `make_step` makes steps
without the frozen dataclass's ``__init__`` (the builder's fast paths make attempts and
`Undecoded` values inline, likewise).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from . import payload
from .errors import RemoteError

__all__ = [
    "ACTIVITY_KINDS",
    "Attempt",
    "PendingStep",
    "Step",
    "Undecoded",
    "args_of",
    "decoded",
    "dt",
    "make_step",
    "readable_value",
    "value",
]

#: Step kinds that are activities (attempts, retries, a task in flight): a plain one, and a
#: saga's compensation.
ACTIVITY_KINDS = frozenset({"activity", "compensation"})


@dataclass(frozen=True)
class Attempt:
    """One attempt of an activity: when it ran, on which worker, and how it ended."""

    number: int
    started_at: datetime | None
    closed_at: datetime | None
    worker: str | None
    error: RemoteError | None
    heartbeat: Any = None


@dataclass(frozen=True)
class Step:
    """One durable operation of a run, as people see it (see `durable.steps`).

    ``seq`` is the journal position of the command that began it; ``name`` the activity's
    or child workflow's name, the signal's name, the published key, or the patch id;
    ``child_id`` the workflow id of a child workflow. ``input``/``output`` are decoded
    values (the arguments as a list; a timer's input is its due time).
    """

    seq: int
    kind: str  # activity | compensation | child | timer | signal | external | update |
    # publish | marker | tags | damaged
    name: str
    branch: str
    group: int | None
    status: str
    attempts: list[Attempt] = field(default_factory=list)
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    closed_at: datetime | None = None
    input: Any = None
    output: Any = None
    error: RemoteError | None = None
    logs: list[Any] = field(default_factory=list)
    child_id: str | None = None


@dataclass(frozen=True)
class PendingStep:
    """A step in flight: an activity (with its attempt and last error), a timer, a child
    workflow, a signal wait, an external wait, an update whose handler runs."""

    # "activity" | "compensation" | "timer" | "condition" | "child" | "signal" | "external"
    # | "update"
    kind: str
    name: str
    attempt: int
    scheduled_at: datetime
    last_error: RemoteError | None


def dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def readable_value(data: bytes | None) -> Any:
    """A payload decoded for people: the raw bytes where it cannot be decoded."""
    if data is None:
        return None
    try:
        return payload.decode(data)
    except Exception:
        return data


class Undecoded:
    """A step's input or output left encoded by ``build_rows(..., decode=False)``: the
    payload's bytes (``args``: an activity's arguments, shown as a list). `value` and
    `decoded` give what `build` would have put there."""

    __slots__ = ("args", "data")

    def __init__(self, data: bytes | None, args: bool = False) -> None:
        self.data = data
        self.args = args

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Undecoded):
            return NotImplemented
        return (self.data, self.args) == (other.data, other.args)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Undecoded({len(self.data or b'')} bytes)"


def value(found: Any) -> Any:
    """``found`` itself, or decoded when it is `Undecoded`."""
    if isinstance(found, Undecoded):
        return args_of(found.data) if found.args else readable_value(found.data)
    return found


def decoded(step: Step) -> Step:
    """The step with its input and output decoded (itself when neither is `Undecoded`)."""
    if isinstance(step.input, Undecoded) or isinstance(step.output, Undecoded):
        return make_step(
            {**step.__dict__, "input": value(step.input), "output": value(step.output)}
        )
    return step


def args_of(data: bytes | None) -> Any:
    decoded = readable_value(data)
    if isinstance(decoded, dict) and "args" in decoded:
        kwargs = decoded.get("kwargs") or {}
        return [*decoded["args"], kwargs] if kwargs else list(decoded["args"])
    return decoded


# A step's fields at their defaults (``logs`` is made afresh for each).
_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(Step) if f.default is not MISSING
} | {"name": ""}


_FIELDS = len(fields(Step))


def make_step(values: dict[str, Any]) -> Step:
    """``Step(**values)`` with the defaults of the fields not in ``values``, made without
    the frozen dataclass's ``__init__`` (a call of ``object.__setattr__`` per field): a map
    with every field becomes the step's ``__dict__`` as it is (the builder's fast paths
    make them so; nothing else holds them)."""
    if len(values) != _FIELDS:
        values = {**_DEFAULTS, "logs": [], **values}
    step: Step = object.__new__(Step)
    object.__setattr__(step, "__dict__", values)
    return step
