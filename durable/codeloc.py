"""Where in user code something happened: ``file:line in function: code`` for messages.

A replay mismatch is found deep inside durable (the engine checking a command against the
journal); what the person reading it needs is the line of *their* workflow that issued the
command. `caller` walks out of durable's own frames (and asyncio's) to the first frame of
anything else; `describe` formats one frame. Only called when something went wrong, so
the walk costs nothing on the normal path.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import sys
from types import CodeType, FrameType

__all__ = ["caller", "describe", "is_user"]

_OURS = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ASYNCIO = os.path.dirname(os.path.abspath(asyncio.__file__)) + os.sep


def is_user(frame: FrameType) -> bool:
    """Whether ``frame`` runs code outside durable and asyncio."""
    filename = os.path.abspath(frame.f_code.co_filename)
    return not (filename.startswith(_OURS) or filename.startswith(_ASYNCIO))


def describe(frame: FrameType) -> str:
    """``path:line in function: code`` (the path relative to the working directory when
    it is inside it)."""
    filename = frame.f_code.co_filename
    line = frame.f_lineno
    shown = os.path.relpath(filename) if filename.startswith(os.getcwd() + os.sep) else filename
    code = linecache.getline(filename, line).strip()
    where = f"{shown}:{line} in {frame.f_code.co_name}"
    return f"{where}: {code}" if code else where


def caller(boundary: CodeType | None = None) -> str | None:
    """The innermost frame of the current stack in user code, described; ``None`` when
    none is found before a frame running ``boundary`` (the code that drives the user's
    coroutines: what is outside it — whoever called the engine — is not their code), as
    for a command issued by durable's own coroutine, such as a map's."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code is not boundary:
        if is_user(frame):
            return describe(frame)
        frame = frame.f_back
    return None
