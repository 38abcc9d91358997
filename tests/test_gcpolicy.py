"""The worker's garbage-collector thresholds (`durable.gcpolicy`): raised while workers run
(or ``durable server`` serves) in a process on Python's defaults, put back when the last
stops, never touched when the program chose its own."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import durable
from durable.cli.serve import serve
from durable.gcpolicy import DEFAULT_THRESHOLD, WORKER_THRESHOLD


@durable.workflow
async def idle() -> None:
    """Nothing."""


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


async def test_raised_while_workers_run_and_put_back_after_the_last(client: durable.Client) -> None:
    gc.set_threshold(*DEFAULT_THRESHOLD)
    async with durable.Worker(client, workflows=[idle]):
        assert gc.get_threshold() == WORKER_THRESHOLD
        async with durable.Worker(client, workflows=[idle]):
            assert gc.get_threshold() == WORKER_THRESHOLD
        assert gc.get_threshold() == WORKER_THRESHOLD  # one still runs
    assert gc.get_threshold() == DEFAULT_THRESHOLD


async def test_a_programs_own_thresholds_are_left_alone(client: durable.Client) -> None:
    gc.set_threshold(2000, 15, 15)
    async with durable.Worker(client, workflows=[idle]):
        assert gc.get_threshold() == (2000, 15, 15)
    assert gc.get_threshold() == (2000, 15, 15)


async def test_raised_while_durable_server_serves(tmp_path: Path) -> None:
    gc.set_threshold(*DEFAULT_THRESHOLD)
    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = argparse.Namespace(
        db=f"sqlite:///{tmp_path / 'durable.db'}",
        token=None,
        host="127.0.0.1",
        port=port,
        verbose=False,
    )
    serving = asyncio.create_task(serve(args))
    async with httpx.AsyncClient() as http:
        for _ in range(400):
            try:
                await http.get(f"http://127.0.0.1:{port}/openapi.json")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
    assert gc.get_threshold() == WORKER_THRESHOLD
    os.kill(os.getpid(), signal.SIGTERM)  # as a supervisor stops it: a graceful exit
    assert await asyncio.wait_for(serving, 30) == 0
    assert gc.get_threshold() == DEFAULT_THRESHOLD
