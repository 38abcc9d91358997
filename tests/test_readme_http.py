"""The README's "From other languages" curl session, run as written (with a free port and a
fresh database): a `durable worker` of the trip sample and `durable server` as real
processes, every `curl` line of the section's first block through the real curl, with
the answers the README's comments promise."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent

if shutil.which("curl") is None:
    pytest.skip("curl is not installed", allow_module_level=True)


def _session() -> list[str]:
    """The curl commands of the section's first ``sh`` block, continuation lines joined."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## From other languages", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands, current = [], ""
    for line in block.splitlines():
        current += line.rstrip("\\").strip() + " "
        if line.endswith("\\") or not _complete(current):
            continue  # a continued line, or a quoted JSON body going on
        if current.startswith("curl "):
            commands.append(current.strip())
        current = ""
    return commands


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation"
        return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def services(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    env = {**os.environ, "DURABLE_DB": f"sqlite:///{tmp_path / 'trips.db'}"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    durable = [sys.executable, "-m", "durable"]
    procs = [
        subprocess.Popen([*durable, "worker", "samples.order_saga"], cwd=REPO, env=env),
        subprocess.Popen([*durable, "server", "--port", str(port)], cwd=REPO, env=env),
    ]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "durable server did not come up"
                time.sleep(0.1)
        yield port
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_the_readme_curl_session_works_as_written(services: int) -> None:
    commands = _session()
    assert len(commands) == 10, commands
    answers: list[tuple[int, str]] = []
    for command in commands:
        args = shlex.split(
            command.replace("localhost:8233", f"localhost:{services}"), comments=True
        )
        streaming = "-sN" in args
        if streaming:  # server-sent events never end: read a second of them
            args += ["--max-time", "1"]
        args += ["-w", "\n%{http_code}"]
        # A person types the next command a moment later: the value the README shows is
        # published once the worker has reached the approval (before it, nothing or an
        # earlier value, "charged"...), so that one is asked again for a while.
        reading = "/published/" in command
        deadline = time.monotonic() + (15 if reading else 0)
        while True:
            done = subprocess.run(args, capture_output=True, text=True, timeout=60)
            assert done.returncode == (28 if streaming else 0), (command, done.stderr)
            body, _, code = done.stdout.rpartition("\n")
            shown = not reading or "awaiting approval" in body
            if (code != "404" and shown) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        answers.append((int(code), body))
        assert int(code) < 400, (command, body)
    started, published, signalled, result = (json.loads(b) for _, b in answers[:4])
    assert answers[0][0] == 201
    assert (started["id"], started["created"]) == ("trip-1", True)
    # the README says what these answer: check the parts it shows
    assert published == {"id": "trip-1", "key": "progress", "value": "awaiting approval"}
    assert signalled["id"] == "trip-1"
    assert (result["status"], result["result"]["trip"], result["result"]["status"]) == (
        "completed",
        "t-1",
        "booked",
    )
    listed = json.loads(answers[4][1])
    assert [w["id"] for w in listed["workflows"]] == ["trip-1"]
    steps = json.loads(answers[6][1])["steps"]
    assert [s["name"] for s in steps][:1] == ["charge_card"]
    assert json.loads(answers[7][1])["events"][0]["kind"] == "workflow_started"
    assert json.loads(answers[8][1])["status"] == "completed"  # a cancel too late: harmless
