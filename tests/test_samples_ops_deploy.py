"""samples/ops_deploy.py on a SQLite file: a rolling deployment that goes through, with its
published progress and step logs; and one that a broken node rolls back through the saga's
compensation steps, newest first."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import durable
from samples import ops_deploy
from samples.ops_deploy import ACTIVITIES, NODES, Deployment, Release, deploy

IMAGE = "registry.example/checkout:{}"


async def test_a_deployment_starts_every_node_in_turn_with_progress_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="samples")  # what the sample's own main sets
    url = f"sqlite:///{tmp_path / 'deploy.db'}"
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[deploy], activities=ACTIVITIES):
            release = Release("checkout", "2.4.0", "2.3.1", NODES)
            handle = await client.start(deploy, release, id="deploy-1")
            done = await ops_deploy.follow(handle)
            assert await handle.read("progress") == "deployed 2.4.0"
        steps = await handle.steps()
        logs = await handle.logs()

    assert done == Deployment(
        "checkout", "2.4.0", "deployed", image=IMAGE.format("2.4.0"), started=NODES
    )
    activities = [(s.kind, s.name, s.input) for s in steps if s.kind != "publish"]
    assert activities[:2] == [
        ("activity", "build", [release_json("2.4.0", "2.3.1")]),
        ("activity", "push_image", [IMAGE.format("2.4.0")]),
    ]
    assert activities[2:] == [
        ("activity", "start_node", [node, IMAGE.format("2.4.0"), False]) for node in NODES
    ]
    # Progress was published between the steps, one value per node among them.
    published = [s.input for s in steps if s.kind == "publish"]
    assert published[-3:] == ["starting node-4 (4/4)", "4/4 nodes on 2.4.0", "deployed 2.4.0"]
    # Each step's records are kept with it (logged through plain `logging`).
    by_step = {s.seq: s.name for s in steps}
    start_logs = [(by_step[r.seq], r.message) for r in logs if by_step[r.seq] == "start_node"]
    assert start_logs[:3] == [
        ("start_node", "node-1: draining connections"),
        ("start_node", f"node-1: starting {IMAGE.format('2.4.0')}"),
        ("start_node", "node-1: healthy, back in the load balancer"),
    ]
    assert len(start_logs) == 3 * len(NODES)
    assert [r.message for r in logs if by_step[r.seq] == "build"][-1] == (
        f"built {IMAGE.format('2.4.0')}"
    )


def release_json(version: str, previous: str) -> dict[str, object]:
    """A `Release` as a step's input shows it."""
    return {
        "service": "checkout",
        "version": version,
        "previous": previous,
        "nodes": NODES,
        "broken_node": None,
    }


async def test_a_broken_node_rolls_the_deployment_back_through_compensations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'deploy.db'}"
    good, bad = await ops_deploy.main(url)

    assert good.status == "deployed"
    assert bad == Deployment(
        "checkout",
        "2.5.0",
        "rolled back",
        image=IMAGE.format("2.5.0"),
        started=["node-1", "node-2"],
        undone=["roll_back_node", "roll_back_node", "untag_image"],
        reason="node-3 failed its health check",
    )
    async with durable.connect(url) as client:
        handle = client.get_handle("deploy-checkout-2.5.0")
        steps = [s for s in await handle.steps() if s.kind != "publish"]
        logs = await handle.logs()
        assert await handle.read("progress") == "rolled back to 2.4.0"
        assert (await handle.describe()).status == "completed"

    # node-3 failed both its attempts; node-4 was never touched; the nodes already on 2.5.0
    # went back to 2.4.0 newest first, then the image was untagged.
    assert [(s.kind, s.name, s.status, s.input[0]) for s in steps[2:]] == [
        ("activity", "start_node", "completed", "node-1"),
        ("activity", "start_node", "completed", "node-2"),
        ("activity", "start_node", "failed", "node-3"),
        ("compensation", "roll_back_node", "completed", "node-2"),
        ("compensation", "roll_back_node", "completed", "node-1"),
        ("compensation", "untag_image", "completed", IMAGE.format("2.5.0")),
    ]
    failed = steps[4]
    assert [a.error.message if a.error else None for a in failed.attempts] == [
        "node-3 failed its health check"
    ] * 2
    warnings = [(r.seq, r.attempt, r.message) for r in logs if r.level == "WARNING"]
    assert warnings == [
        (failed.seq, n, "node-3: health check failed: /healthz answered 503") for n in (1, 2)
    ]
    undo_logs = [r.message for r in logs if r.seq in {s.seq for s in steps[5:]}]
    assert undo_logs == [
        "node-2: rolled back to checkout:2.4.0",
        "node-1: rolled back to checkout:2.4.0",
        f"untagged {IMAGE.format('2.5.0')}",
    ]

    out = capsys.readouterr().out
    assert "[deploy-checkout-2.5.0] rolled back to 2.4.0" in out
    assert "node-3: health check failed: /healthz answered 503" in out
    assert "checkout 2.4.0: deployed on node-1, node-2, node-3, node-4" in out
    assert (
        "checkout 2.5.0: rolled back (node-3 failed its health check); "
        "undone: roll_back_node, roll_back_node, untag_image" in out
    )
