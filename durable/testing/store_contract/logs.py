"""The storage contract, part 6: step logs — appended in one go, read back in the order
they were stored, by run and by step, and paged.

See `durable.testing.store_contract` for how a backend runs it.
"""

from __future__ import annotations

from durable.store import NewStepLog, Store

__all__ = ["test_step_logs_are_read_back_by_run_and_step_in_order_and_paged"]


async def test_step_logs_are_read_back_by_run_and_step_in_order_and_paged(store: Store) -> None:
    assert await store.read_logs("r1") == []
    await store.append_logs([])  # nothing to store: no error
    logs = [
        NewStepLog("r1", 2, 1, 100.0, 20, "shop.charge", "charging 12.50"),
        NewStepLog("r1", 2, 1, 100.5, 40, "shop.charge", "card declined\nline two ünïcode"),
        NewStepLog("r2", 2, 1, 101.0, 20, "other", "another run"),
        NewStepLog("r1", 2, 2, 102.0, 20, "shop.charge", "charged"),
        NewStepLog("r1", 5, 0, 103.0, 20, "durable.workflow", "[o-1 #5] waiting"),
    ]
    await store.append_logs(logs[:3])
    await store.append_logs(logs[3:])

    every = await store.read_logs("r1")
    assert [(g.seq, g.attempt, g.message) for g in every] == [
        (2, 1, "charging 12.50"),
        (2, 1, "card declined\nline two ünïcode"),
        (2, 2, "charged"),
        (5, 0, "[o-1 #5] waiting"),
    ]
    assert [g.id for g in every] == sorted(g.id for g in every)
    first = every[0]
    assert (first.run_id, first.at, first.level, first.logger) == ("r1", 100.0, 20, "shop.charge")

    step = await store.read_logs("r1", seq=2)
    assert [g.message for g in step] == [
        "charging 12.50",
        "card declined\nline two ünïcode",
        "charged",
    ]
    page = await store.read_logs("r1", after_id=every[1].id, limit=1)
    assert [g.message for g in page] == ["charged"]
    assert await store.read_logs("r1", seq=2, after_id=every[2].id) == []
    assert [g.message for g in await store.read_logs("r2")] == ["another run"]
