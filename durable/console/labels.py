"""What a step is called on screen: its label (``flaky('o-1')``, ``sleep 5 min``,
``signal · approve``) and the one line saying how it went (``completed · 6.0 s · 3
attempts``, ``retrying · attempt 3``, ``failed: ValueError``). Shared by the graph and the
timeline so a step reads the same in both (arguments decoded here when the steps were
built without: `durable.steps.Undecoded`). Not escaped: the drawings escape."""

from __future__ import annotations

import reprlib

from ..steps import ACTIVITY_KINDS, Step, value
from .svg import duration

__all__ = ["ARGS_SHOWN", "step_detail", "step_label"]

ARGS_SHOWN = 24  # a step's arguments shown after its name when they are this short

_WORD = {
    "compensation": "compensation",  # a saga's undo: said in words, not only drawn
    "child": "child",
    "timer": "timer",
    "condition": "wait",
    "signal": "signal",
    "external": "external",
    "update": "update",
    "publish": "publish",
    "marker": "patch",
    "tags": "tags",
    "damaged": "damaged",
}


def step_label(step: Step) -> str:
    """The step's kind (unless an activity), name and short arguments."""
    word = _WORD.get(step.kind)
    label = step.name or step.kind
    if step.kind == "timer" and step.scheduled_at is not None and hasattr(step.input, "tzinfo"):
        label = f"sleep {duration(step.input - step.scheduled_at)}"
    elif word is not None:
        label = f"{word} \u00b7 {label}"
    given = value(step.input) if step.kind in ("activity", "compensation", "child") else None
    if isinstance(given, list):  # decoded here when the page built its steps undecoded
        args = ", ".join(_short(a) for a in given)
        if len(args) <= ARGS_SHOWN:
            label += f"({args})"
    return label


def step_detail(step: Step) -> str:
    """The step's status with its duration, attempt or error type."""
    detail = step.status
    tries = len(step.attempts)
    if step.status in ("failed", "cancelled") and step.error is not None:
        detail += f": {step.error.type}"
    elif step.status in ("retrying", "running") and step.kind in ACTIVITY_KINDS and tries:
        number = max(a.number for a in step.attempts) + (step.status == "retrying")
        detail += f" \u00b7 attempt {number}"
    elif step.closed_at is not None:
        began = next((a.started_at for a in step.attempts if a.started_at), step.scheduled_at)
        if began is not None and step.kind not in ("publish", "marker", "tags"):
            detail += f" \u00b7 {duration(step.closed_at - began)}"
    if step.status == "completed" and tries > 1:
        detail += f" \u00b7 {tries} attempts"
    return detail


_REPR = reprlib.Repr()  # bounded: a huge argument is not turned whole into a string
_REPR.maxstring = _REPR.maxother = ARGS_SHOWN
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 3


def _short(value: object) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= ARGS_SHOWN else text[: ARGS_SHOWN - 1] + "\u2026"
