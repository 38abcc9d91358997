"""Signal names and values are checked where they are sent and where they are awaited."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

import durable


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


async def test_client_refuses_a_value_the_worker_could_not_decode(
    client: durable.Client,
) -> None:
    async with durable.Worker(client, workflows=[waits_for]):
        handle = await client.start(waits_for, "go")
        with pytest.raises(durable.SerializationError, match=r"signal 'go'.*raw msgpack"):
            await handle.signal("go", msgpack.ExtType(10, msgpack.packb(["this:s", 1])))
        await handle.signal("go", "fine")
        assert await handle.result(timeout=20) == "fine"


@durable.workflow
async def counts_keys() -> list[Any]:
    value = await durable.wait_signal("keys", timeout=30)
    return [[dict(key), count] for key, count in value.items()]


async def test_a_frozen_dataclass_key_reaches_the_workflow(client: durable.Client) -> None:
    # The worker used to drop this signal: its map key could not be decoded.
    async with durable.Worker(client, workflows=[counts_keys]):
        handle = await client.start(counts_keys)
        await handle.signal("keys", {Key("a"): 1})
        assert await handle.result(timeout=20) == [[{"k": "a"}, 1]]


@pytest.mark.parametrize("name", [7, ""], ids=repr)
async def test_wait_signal_refuses_a_name_that_is_not_a_non_empty_str(
    client: durable.Client, name: Any
) -> None:
    async with durable.Worker(client, workflows=[waits_for]):
        handle = await client.start(waits_for, name)
        with pytest.raises(durable.WorkflowFailed, match="non-empty str name"):
            await handle.result(timeout=20)
