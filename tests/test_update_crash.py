"""An update whose handler awaits an activity survives its worker being killed (SIGKILL):
another worker replays the run, the handler goes on from its journal, and the update
completes once (one ``update_accepted``, one ``update_completed``, the effect applied once).
Real worker processes, on both backends."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import durable

ROOT = Path(__file__).resolve().parent.parent


async def _spawn(url: str, log: Path, out: Path) -> asyncio.subprocess.Process:
    env = dict(os.environ, CRASH_LOG=str(log), PYTHONUNBUFFERED="1")
    with out.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "durable", "worker", "tests.update_crash_app", "--db", url, "--lease", "2"),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )


async def _until(check: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_an_update_survives_its_worker_killed_mid_handler(
    store_url: str, tmp_path: Path
) -> None:
    from tests.update_crash_app import account

    log = tmp_path / "executions.log"
    first = await _spawn(store_url, log, tmp_path / "first.out")
    second = None
    try:
        async with durable.connect(store_url) as client:
            handle = await client.start(account)
            pending = asyncio.ensure_future(handle.update("deposit", 5, update_id="dep-1"))
            await _until(lambda: log.exists() and str(first.pid) in log.read_text(), "start")
            first.kill()
            await first.wait()
            second = await _spawn(store_url, log, tmp_path / "second.out")
            assert await asyncio.wait_for(pending, 60) == 5
            # A retry with the same id (a caller that lost its connection) gets the same.
            assert await handle.update("deposit", 5, update_id="dep-1") == 5
            await handle.signal("close")
            assert await handle.result(timeout=60) == 5
            kinds = [e.kind for e in await handle.history()]
            assert kinds.count("update_accepted") == 1
            assert kinds.count("update_completed") == 1
            assert len(log.read_text().splitlines()) >= 2  # the activity ran again, once more
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
