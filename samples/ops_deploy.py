"""A deployment: build an image, push it, then start it node by node (a rolling start),
publishing progress as it goes; every step logs through standard `logging`, and the logs
are kept with their steps (`handle.logs()`, `durable logs ID`, the console's step detail).
A node that fails its health check rolls the whole deployment back (`durable.saga`): the
nodes already started go back to the previous version, newest first, and the pushed image
is untagged — compensation steps, each visible as such.

    python -m samples.ops_deploy        # two deployments on a fresh SQLite file
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import durable
from durable import ApplicationError, RetryPolicy, activity, workflow
from durable.urls import redact_url as client_url  # never print a password

log = logging.getLogger("samples.ops_deploy")
TWICE = RetryPolicy(max_attempts=2, initial_interval=timedelta(milliseconds=100))


@dataclass
class Release:
    """What to deploy where; ``broken_node`` fails its health check (for the demo)."""

    service: str
    version: str
    previous: str
    nodes: list[str]
    broken_node: str | None = None


@dataclass
class Deployment:
    """How it ended: ``status`` is "deployed" or "rolled back"."""

    service: str
    version: str
    status: str
    image: str = ""
    started: list[str] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)
    reason: str = ""


@activity(retry=TWICE, timeout=timedelta(minutes=30))
async def build(release: Release) -> str:
    """Build the service's image; returns its tag."""
    image = f"registry.example/{release.service}:{release.version}"
    log.info("building %s from tag v%s", release.service, release.version)
    await asyncio.sleep(0.05)
    log.info("ran 412 tests, all passed")
    log.info("built %s", image)
    return image


@activity(retry=TWICE)
async def push_image(image: str) -> str:
    """Push the image to the registry; returns its digest."""
    digest = "sha256:" + hashlib.sha256(image.encode()).hexdigest()[:12]
    log.info("pushing %s", image)
    await asyncio.sleep(0.02)
    log.info("pushed %s as %s", image, digest)
    return digest


@activity(retry=TWICE)
async def untag_image(image: str) -> None:
    """Remove the image's tag from the registry (compensation of `push_image`)."""
    log.info("untagged %s", image)


@activity(retry=TWICE, timeout=timedelta(minutes=5))
async def start_node(node: str, image: str, broken: bool) -> str:
    """Drain the node, start the image on it and wait until its health check passes."""
    log.info("%s: draining connections", node)
    log.info("%s: starting %s", node, image)
    await asyncio.sleep(0.02)
    if broken:
        log.warning("%s: health check failed: /healthz answered 503", node)
        raise ApplicationError(f"{node} failed its health check", type="HealthCheckFailed")
    log.info("%s: healthy, back in the load balancer", node)
    return node


@activity(retry=TWICE)
async def roll_back_node(node: str, service: str, version: str) -> None:
    """Start the previous version on a node again (compensation of `start_node`)."""
    log.info("%s: rolled back to %s:%s", node, service, version)


@workflow
async def deploy(release: Release) -> Deployment:
    """Build, push, start node by node; a node that does not come up rolls it all back."""
    done = Deployment(release.service, release.version, status="deployed")
    total = len(release.nodes)
    try:
        async with durable.saga() as saga:
            durable.publish("progress", "building")
            image = await build(release)
            durable.publish("progress", "pushing")
            await push_image(image)
            saga.compensate(untag_image, image)
            done.image = image
            for number, node in enumerate(release.nodes, start=1):
                durable.publish("progress", f"starting {node} ({number}/{total})")
                await start_node(node, image, node == release.broken_node)
                saga.compensate(roll_back_node, node, release.service, release.previous)
                done.started.append(node)
                durable.publish("progress", f"{number}/{total} nodes on {release.version}")
    except durable.ActivityError as err:
        durable.publish("progress", f"rolled back to {release.previous}")
        done.status, done.reason, done.undone = "rolled back", err.cause.message, saga.compensated
        return done
    durable.publish("progress", f"deployed {release.version}")
    return done


ACTIVITIES = [build, push_image, untag_image, start_node, roll_back_node]
NODES = ["node-1", "node-2", "node-3", "node-4"]


async def follow(handle: durable.WorkflowHandle[Deployment]) -> Deployment:
    """Print the deployment's progress as it changes; returns how it ended."""
    outcome = asyncio.ensure_future(handle.result(timeout=60))
    shown = ""
    while not outcome.done():
        progress = await handle.read("progress", timeout=30)
        if progress != shown:
            print(f"  [{handle.id}] {progress}")
            shown = progress
        await asyncio.sleep(0.01)
    if (last := await handle.read("progress")) != shown:
        print(f"  [{handle.id}] {last}")
    return await outcome  # raises if the run failed


async def print_logs(handle: durable.WorkflowHandle[Deployment]) -> None:
    """Print what the deployment's steps logged, each record beside its step."""
    steps = {s.seq: s for s in await handle.steps()}
    print(f"  what {handle.id} logged (durable logs {handle.id}):")
    for record in await handle.logs():
        step = steps[record.seq]
        where = f"{step.kind} {step.name} #{record.seq}" + (
            f" attempt {record.attempt}" if record.attempt > 1 else ""
        )
        print(f"    {record.level:<7} {where:<40} {record.message}")


async def main(url: str | None = None) -> list[Deployment]:
    """Deploy a release that goes through, then one that a broken node rolls back."""
    logging.getLogger("samples").setLevel(logging.INFO)  # INFO is kept as step logs
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='ops-deploy-')) / 'deploy.db'}"
    print(f"ops deploy on {client_url(url)}")
    async with durable.connect(url) as client:
        good = Release("checkout", "2.4.0", "2.3.1", NODES)
        bad = Release("checkout", "2.5.0", "2.4.0", NODES, broken_node="node-3")
        async with durable.Worker(client, workflows=[deploy], activities=ACTIVITIES):
            results = []
            for release in (good, bad):
                run_id = f"deploy-{release.service}-{release.version}"
                results.append(await follow(await client.start(deploy, release, id=run_id)))
        # Records are stored shortly after each attempt, and all of them as the worker stops.
        await print_logs(client.get_handle("deploy-checkout-2.5.0"))
    for done in results:
        if done.status == "deployed":
            print(f"  {done.service} {done.version}: deployed on {', '.join(done.started)}")
        else:
            print(
                f"  {done.service} {done.version}: rolled back ({done.reason}); "
                f"undone: {', '.join(done.undone)}"
            )
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setLevel(logging.ERROR)  # kept as step logs, not printed
    asyncio.run(main())
