"""Replay recorded runs against the current code: the gate before a deploy.

A workflow's code must keep issuing the commands its running (and recorded) runs hold in
their journals; a change that does not (an activity added before another, a different
name, a loop that runs once more) parks those runs when they next wake up. This module
finds that *before* the deploy:

    durable export order-7 > order-7.json              # a run, as JSON
    durable replay myapp.workflows --file order-7.json # exit 1 and a diff if it diverges
    durable replay myapp.workflows --db postgresql://… # the newest runs of each workflow

and from a test, `durable.testing.replay(history, workflows=[...])`. Replaying runs the
workflow code exactly as a worker rebuilding a run does (`replay_journal`, which the
worker uses too), and no activity, timer or child: nothing is written anywhere.

An export is ``{"format": "durable-run/1", "workflow_id", "run_id", "name", "queue",
"status", "parent_id", "timeout", "entries": [{"seq", "kind", "time", "data", "readable"}]}``
where ``data`` is the entry's stored bytes (base64) — what replay reads — and ``readable``
its decoded JSON form, for people.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import jsonform, payload, steps
from .definition import WorkflowDefinition
from .engine import WorkflowRun
from .errors import NonDeterminismError
from .journal import INPUT_KINDS
from .rows import JournalEntry, RunRecord
from .ticks import scheduled_at

__all__ = [
    "EXPORT_FORMAT",
    "ReplayError",
    "RunHistory",
    "divergence_report",
    "engine_for",
    "replay",
    "replay_journal",
    "rounds",
]

#: The ``format`` of an export; a later, incompatible format gets a new number.
EXPORT_FORMAT = "durable-run/1"


class ReplayError(ValueError):
    """A history that cannot be replayed at all: not an export, a damaged entry, or a
    workflow the given code does not define. Says which and what to do."""


@dataclass(frozen=True)
class RunHistory:
    """One run's journal with what replaying it needs (`durable export` writes one)."""

    workflow_id: str
    run_id: str
    name: str
    queue: str
    status: str
    parent_id: str | None
    timeout: float | None
    entries: tuple[JournalEntry, ...]

    @classmethod
    def of(cls, run: RunRecord, entries: Sequence[JournalEntry]) -> RunHistory:
        """The history of ``run`` whose journal is ``entries``."""
        return cls(
            run.workflow_id,
            run.run_id,
            run.name,
            run.queue,
            run.status,
            run.parent_id,
            run.timeout,
            tuple(entries),
        )

    def to_json(self) -> dict[str, Any]:
        """The export document (see the module docstring), ready for `json.dumps`."""
        return {
            "format": EXPORT_FORMAT,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "name": self.name,
            "queue": self.queue,
            "status": self.status,
            "parent_id": self.parent_id,
            "timeout": self.timeout,
            "entries": [
                {
                    "seq": e.seq,
                    "kind": e.kind,
                    "time": e.time,
                    "data": base64.b64encode(e.data).decode("ascii"),
                    "readable": _readable(e),
                }
                for e in self.entries
            ],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], *, source: str = "the history") -> RunHistory:
        """The history an export document holds; `ReplayError` saying what is wrong."""
        if not isinstance(doc, Mapping) or doc.get("format") != EXPORT_FORMAT:
            found = doc.get("format") if isinstance(doc, Mapping) else type(doc).__name__
            raise ReplayError(
                f"{source} is not a durable run export (format {found!r}, expected "
                f"{EXPORT_FORMAT!r}); write one with `durable export WORKFLOW_ID`."
            )
        try:
            entries = tuple(
                JournalEntry(
                    int(e["seq"]),
                    str(e["kind"]),
                    float(e["time"]),
                    base64.b64decode(e["data"], validate=True),
                )
                for e in doc["entries"]
            )
            timeout = doc.get("timeout")
            return cls(
                str(doc["workflow_id"]),
                str(doc["run_id"]),
                str(doc["name"]),
                str(doc.get("queue") or "default"),
                str(doc.get("status") or "unknown"),
                doc.get("parent_id"),
                None if timeout is None else float(timeout),
                entries,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(
                f"{source} is a damaged durable run export ({type(exc).__name__}: {exc}); "
                "export the run again with `durable export WORKFLOW_ID`."
            ) from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunHistory:
        """The history in the export file at ``path``."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ReplayError(f"Cannot read {path}: {exc.strerror or exc}") from None
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ReplayError(f"{path} is not JSON ({exc}); is it a `durable export`?") from None
        return cls.from_json(doc, source=str(path))


def _readable(entry: JournalEntry) -> Any:
    try:
        return jsonform.to_json(steps.readable(entry.kind, entry.data))
    except Exception:
        return None  # shown by `data`; a value with no JSON form is no reason to refuse


def rounds(
    run_id: str, entries: Sequence[JournalEntry]
) -> Iterator[tuple[JournalEntry, Sequence[JournalEntry]]]:
    """The journal in rounds: each input with the commands recorded after it.

    Raises `NonDeterminismError` when the journal does not start with an input."""
    i, n = 0, len(entries)
    while i < n:
        entry = entries[i]
        if entry.kind not in INPUT_KINDS:
            raise NonDeterminismError(
                f"Journal of run {run_id} starts with {entry.kind!r} at step {entry.seq}, "
                "not an input; the journal is damaged."
            )
        j = i + 1
        while j < n and entries[j].kind not in INPUT_KINDS:
            j += 1
        yield entry, entries[i + 1 : j]
        i = j


def engine_for(definition: WorkflowDefinition, run: RunRecord) -> WorkflowRun:
    """A fresh engine for ``run`` of ``definition``, to be fed its journal (a worker's
    rebuild of a run, or a query answered by replay)."""
    return WorkflowRun(
        definition,
        workflow_id=run.workflow_id,
        run_id=run.run_id,
        queue=run.queue,
        parent_id=run.parent_id,
        timeout=run.timeout,
        scheduled_at=scheduled_at(run.tags),
    )


def replay_journal(
    engine: WorkflowRun,
    run_id: str,
    entries: Sequence[JournalEntry],
    data: Callable[[JournalEntry], dict[str, Any]],
) -> None:
    """Feed a recorded journal to a fresh ``engine``, checking every command the code
    issues against it (``data`` decodes an entry). Leaves the engine live, as of the end
    of the journal. Raises `NonDeterminismError` on the first difference."""
    for entry, commands in rounds(run_id, entries):
        recorded = [(c.kind, data(c)) for c in commands]
        engine.apply(entry.kind, data(entry), entry.time, recorded=recorded)
    engine.is_replaying = False


def replay(
    history: RunHistory | Mapping[str, Any] | str | os.PathLike[str], workflows: Sequence[Any]
) -> int:
    """Replay ``history`` against the workflow of its name among ``workflows`` (functions
    marked ``@workflow``, or their definitions); return how many journal entries matched.

        history = RunHistory.load("tests/histories/order-7.json")  # from `durable export`
        durable.testing.replay(history, workflows=[place_order])

    ``history`` is a `RunHistory`, an export document (parsed JSON), or the path of an
    export file. Raises `NonDeterminismError` (with ``seq``, ``recorded``, ``issued`` and
    ``location``; `divergence_report` formats it) at the first difference, and
    `ReplayError` when the history cannot be replayed at all."""
    if isinstance(history, str | os.PathLike):
        history = RunHistory.load(history)
    elif not isinstance(history, RunHistory):
        history = RunHistory.from_json(history)
    definition = _definition(history.name, workflows)
    engine = WorkflowRun(
        definition,
        workflow_id=history.workflow_id,
        run_id=history.run_id,
        queue=history.queue,
        parent_id=history.parent_id,
        timeout=history.timeout,
    )
    try:
        replay_journal(engine, history.run_id, history.entries, _decoder(history))
    finally:
        engine.evict()  # its coroutines are closed now, not left to the garbage collector
    return len(history.entries)


def _definition(name: str, workflows: Sequence[Any]) -> WorkflowDefinition:
    known: dict[str, WorkflowDefinition] = {}
    for w in workflows:
        defn = w if isinstance(w, WorkflowDefinition) else getattr(w, "__durable_workflow__", None)
        if not isinstance(defn, WorkflowDefinition):
            raise ReplayError(f"{w!r} is not a workflow (mark it with @durable.workflow)")
        known[defn.name] = defn
    if name not in known:
        have = ", ".join(sorted(known)) or "none"
        raise ReplayError(
            f"The history is of workflow {name!r}, which the given code does not define "
            f"(it defines: {have}). Pass that workflow in workflows=[...], or the module "
            "that defines it."
        )
    return known[name]


def _decoder(history: RunHistory) -> Callable[[JournalEntry], dict[str, Any]]:
    def data(entry: JournalEntry) -> dict[str, Any]:
        try:
            value = payload.decode(entry.data)
        except Exception as exc:
            raise ReplayError(_damaged(history, entry, str(exc))) from None
        if not isinstance(value, dict):
            raise ReplayError(_damaged(history, entry, f"its data is a {type(value).__name__}"))
        return value

    return data


def _damaged(history: RunHistory, entry: JournalEntry, why: str) -> str:
    return (
        f"Journal entry {entry.seq} ({entry.kind}) of {history.workflow_id} (run "
        f"{history.run_id}) cannot be read: {why}. It cannot be replayed."
    )


def divergence_report(history: RunHistory, err: NonDeterminismError) -> str:
    """A readable account of where ``history`` and the code part ways: the workflow,
    the position, what the journal recorded there and what the code issued, the code line,
    and the journal around that position."""
    lines = [
        f"{history.name} ({history.workflow_id}, run {history.run_id}, {history.status}) "
        "does not replay against this code:"
    ]
    if err.seq is None:
        lines.append(f"  {err}")
        return "\n".join(lines)
    lines += [
        f"  at journal entry {err.seq}",
        f"  recorded: {err.recorded or 'nothing (the journal ends here)'}",
        f"  issued:   {err.issued or 'nothing (the code issued no further command)'}",
    ]
    if err.location:
        lines.append(f"  code:     {err.location}")
    lines.append("  journal around it:")
    by_seq = {e.seq: e for e in history.entries}
    for seq in range(max(1, err.seq - 3), err.seq + 2):
        entry = by_seq.get(seq)
        if entry is None:
            continue
        mark = ">" if seq == err.seq else " "
        lines.append(f"   {mark} {seq:>5}  {entry.kind:<22} {_brief(entry)}")
    lines.append(
        "  Deploy code that issues what the journal recorded, or guard the change with "
        "durable.patched(...) so recorded runs keep the old path."
    )
    return "\n".join(lines)


def _brief(entry: JournalEntry) -> str:
    text = json.dumps(_readable(entry), default=str, separators=(",", ":"))
    return text if len(text) <= 80 else text[:77] + "..."
