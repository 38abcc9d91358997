"""Task tokens: the opaque strings that name what a remote worker or an outside system
completes — an attempt of an activity task, or an external wait.

A token is ``"dt1."`` followed by the unpadded base64url of a msgpack array:

    ["a", workflow_id, run_id, seq, attempt, owner, started_at, deadline, lease_seconds]
    ["x", workflow_id, run_id, seq]

``"a"``: attempt ``attempt`` of the activity task scheduled at ``seq`` of run ``run_id``,
polled by remote worker ``owner`` at ``started_at`` (POSIX seconds); ``deadline`` is when
its start-to-close timeout ends (`None`: no timeout) and ``lease_seconds`` how far each
heartbeat renews its lease. ``"x"``: the external wait started at ``seq``
(`durable.external`): deterministic, the same on replay, so the workflow can hand it out.

A token is opaque to its holders but not a secret nor a signature: whoever may call the
client (or the HTTP API, behind its bearer token) may complete what it names. The store's
fences (`durable.store.Store.finish_task`: the task leased to ``owner`` at ``attempt``)
decide whether it still counts.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

import msgpack

from .errors import TaskNotFound
from .journal import task_id

__all__ = ["PREFIX", "TaskToken"]

PREFIX = "dt1."  # what every token starts with (the 1 is the format's version)


@dataclass(frozen=True, slots=True)
class TaskToken:
    """What a token names (see the module docstring)."""

    kind: Literal["a", "x"]
    workflow_id: str
    run_id: str
    seq: int
    attempt: int = 1
    owner: str = ""
    started_at: float = 0.0
    deadline: float | None = None
    lease_seconds: float = 0.0

    @property
    def task_id(self) -> str:
        """The id of the row of ``tasks`` this token's attempt or wait is."""
        return task_id(self.run_id, self.seq)

    @property
    def what(self) -> str:
        """What the token names, for messages."""
        if self.kind == "x":
            return f"external wait at step {self.seq} of workflow {self.workflow_id!r}"
        return (
            f"attempt {self.attempt} of the activity at step {self.seq} of workflow "
            f"{self.workflow_id!r}"
        )

    def encode(self) -> str:
        """The token as a string."""
        fields: list[object] = [self.kind, self.workflow_id, self.run_id, self.seq]
        if self.kind == "a":
            fields += [
                self.attempt,
                self.owner,
                self.started_at,
                self.deadline,
                self.lease_seconds,
            ]
        packed: bytes = msgpack.packb(fields, use_bin_type=True)
        return PREFIX + base64.urlsafe_b64encode(packed).rstrip(b"=").decode("ascii")

    @classmethod
    def parse(cls, token: object) -> TaskToken:
        """The token ``token`` names. Raises `TaskNotFound` saying what a token looks like
        for anything that is not one."""
        if not isinstance(token, str) or not token.startswith(PREFIX):
            raise _bad(token, f"it does not start with {PREFIX!r}")
        body = token[len(PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            fields = msgpack.unpackb(raw, raw=False)
        except (binascii.Error, ValueError, msgpack.UnpackException) as exc:
            raise _bad(token, f"its body does not decode ({exc})") from None
        try:
            if not isinstance(fields, list) or fields[0] not in ("a", "x"):
                raise ValueError("not a token's fields")
            if fields[0] == "x" and len(fields) == 4:
                wf, run, seq = fields[1:]
                parsed = cls("x", wf, run, seq)
            elif fields[0] == "a" and len(fields) == 9:
                wf, run, seq, attempt, owner, started, deadline, lease = fields[1:]
                parsed = cls(
                    "a",
                    wf,
                    run,
                    seq,
                    attempt,
                    owner,
                    float(started),
                    None if deadline is None else float(deadline),
                    float(lease),
                )
            else:
                raise ValueError("wrong number of fields")
            checks = (parsed.workflow_id, parsed.run_id, parsed.owner)
            if not all(isinstance(v, str) for v in checks) or not isinstance(parsed.seq, int):
                raise ValueError("a field has the wrong type")
            if not isinstance(parsed.attempt, int):
                raise ValueError("a field has the wrong type")
        except (ValueError, TypeError, IndexError) as exc:
            raise _bad(token, f"its fields are not a token's ({exc})") from None
        return parsed


def _bad(token: object, why: str) -> TaskNotFound:
    shown = repr(token) if len(repr(token)) <= 80 else repr(token)[:77] + "..."
    return TaskNotFound(
        f"{shown} is not a durable task token: {why}. A token looks like "
        f"'{PREFIX}...' and comes from client.poll_tasks() (RemoteTask.token, for an activity "
        "attempt) or from durable.external(...).token inside a workflow (for an external "
        "wait); pass it back unchanged."
    )
