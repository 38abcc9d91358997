"""Helpers of the CLI tests (tests/test_cli.py, tests/test_cli_show.py): the `durable`
command run as a person runs it, as real processes against a real database.

`Cli` runs short-lived ``python -m durable ...`` commands; `serve` runs ``durable worker
cli_app`` (tests/cli_app.py) in the background and stops it with SIGTERM, checking it
exits 0 (graceful). Commands run with ``TZ=UTC`` unless a test says otherwise, so the
times they print have a known offset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
WAIT = 20.0  # seconds a test waits for a workflow to get somewhere


def env(tz: str = "UTC") -> dict[str, str]:
    """The environment of every command: cli_app importable, no $DURABLE_DB, ``TZ``."""
    out = {k: v for k, v in os.environ.items() if k != "DURABLE_DB"}
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), out.get("PYTHONPATH")]))
    out["TZ"] = tz
    return out


@dataclass
class Cli:
    """Runs `durable` commands against one database, from one directory."""

    db: str
    cwd: Path

    def command(self, *args: str) -> list[str]:
        """The argv of ``durable ARGS --db DB``."""
        return [sys.executable, "-m", "durable", *args, "--db", self.db]

    def __call__(self, *args: str, tz: str = "UTC") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=env(tz),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its stdout."""
        done = self(*args)
        assert done.returncode == 0, f"durable {' '.join(args)} failed:\n{done.stderr}"
        assert done.stderr == ""
        return done.stdout

    def json(self, *args: str) -> Any:
        """Run a read command with ``--json``: its one document."""
        return json.loads(self.ok(*args, "--json"))

    def refused(self, *args: str, code: int = 1) -> str:
        """Run a command that must fail with ``code``, saying why; its stderr."""
        done = self(*args)
        assert done.returncode == code, f"durable {' '.join(args)}: {done}"
        assert "Traceback" not in done.stderr
        return done.stderr

    def show(self, workflow_id: str) -> str:
        return self.ok("show", workflow_id)

    def wait_for(self, workflow_id: str, text: str) -> str:
        """Poll `durable show` until its output contains ``text``; that output."""
        deadline = time.monotonic() + WAIT
        while True:
            out = self.show(workflow_id)
            if text in out:
                return out
            assert time.monotonic() < deadline, f"no {text!r} within {WAIT}s:\n{out}"
            time.sleep(0.05)


def history_kinds(show_output: str) -> list[str]:
    """The kinds of the history lines of `durable show`."""
    history = show_output.split("history:\n", 1)[1]
    return [line.split()[2] for line in history.splitlines()]


def section(show_output: str, title: str) -> list[str]:
    """The lines of one section of `durable show` (``steps (3):``, ``published:``, ...)."""
    lines = show_output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    out = []
    for line in lines[start + 1 :]:
        if not line:
            break
        out.append(line)
    return out


@contextmanager
def background_worker(
    cli: Cli, tmp_path: Path, module: str, *options: str, name: str = "worker"
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``durable worker MODULE OPTIONS`` in the background, once it printed its banner
    (yielded with the process); stopped with SIGTERM, it must exit 0 without a traceback."""
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            cli.command("worker", module, *options),
            cwd=cli.cwd,
            env=env(),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + WAIT
        while "Ctrl-C stops." not in out.read_text():
            assert proc.poll() is None, f"the worker exited early:\n{err.read_text()}"
            assert time.monotonic() < deadline, "the worker printed no banner"
            time.sleep(0.05)
        yield proc, out.read_text()
    finally:
        code = stop(proc)
    assert code == 0, f"the worker did not stop gracefully (exit {code}):\n{err.read_text()}"
    assert "Traceback" not in err.read_text()


@contextmanager
def serve(cli: Cli, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """`durable worker cli_app` in the background; stopped with SIGTERM, must exit 0.

    Its lease is 3 s, so it saves heartbeat details every half second."""
    with background_worker(cli, tmp_path, "cli_app", "--lease", "3") as (proc, banner):
        assert f"on {cli.db}" in banner
        assert "5 workflow(s), 3 activity(ies)" in banner
        yield proc


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM a process (unless it has exited) and wait for it; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=WAIT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
