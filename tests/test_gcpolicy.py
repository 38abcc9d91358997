"""The worker's garbage-collector thresholds (`durable.gcpolicy`): raised while workers run
in a process on Python's defaults, put back when the last stops, never touched when the
program chose its own."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import durable
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
