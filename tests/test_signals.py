"""Signal names and values are checked where they are sent and where they are awaited."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import msgpack
import pytest

import durable


@pytest.fixture
async def client(store_url: str) -> AsyncIterator[durable.Client]:
    async with durable.connect(store_url) as c:
        yield c


@dataclasses.dataclass(frozen=True)
class Key:
    k: str


@durable.workflow
async def waits_for(name: Any) -> Any:
    return await durable.wait_signal(name, timeout=30)


@pytest.mark.parametrize("name", [7, "", b"go", None], ids=repr)
async def test_client_refuses_a_signal_name_that_is_not_a_non_empty_str(
    client: durable.Client, name: Any
) -> None:
    async with durable.Worker(client, workflows=[waits_for]):
        handle = await client.start(waits_for, "go")
        with pytest.raises(TypeError, match="signal name must be a non-empty str"):
            await handle.signal(name, 1)
        await handle.signal("go", 2)
        assert await handle.result(timeout=20) == 2
    history = await handle.history()
    assert [e.data["name"] for e in history if e.kind == "signal_received"] == ["go"]


@pytest.mark.parametrize(
    "value",
    [{Key("a"): 1}, msgpack.ExtType(10, msgpack.packb(["this:s", 1]))],
    ids=["dataclass-key", "raw-ext"],
)
async def test_client_refuses_a_value_the_worker_could_not_decode(
    client: durable.Client, value: Any
) -> None:
    async with durable.Worker(client, workflows=[waits_for]):
        handle = await client.start(waits_for, "go")
        with pytest.raises(durable.SerializationError, match="signal 'go'"):
            await handle.signal("go", value)
        await handle.signal("go", "fine")
        assert await handle.result(timeout=20) == "fine"


@pytest.mark.parametrize("name", [7, ""], ids=repr)
async def test_wait_signal_refuses_a_name_that_is_not_a_non_empty_str(
    client: durable.Client, name: Any
) -> None:
    async with durable.Worker(client, workflows=[waits_for]):
        handle = await client.start(waits_for, name)
        with pytest.raises(durable.WorkflowFailed, match="non-empty str name"):
            await handle.result(timeout=20)
