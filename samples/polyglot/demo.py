"""Run the polyglot sample end to end in one command, as three parts talk in production:
``durable server`` (HTTP), a Python worker (the workflow and ``index_photo``) and the
Node.js worker (``worker.mjs``: ``resize_image`` and ``request_moderation``).

In production each is its own process::

    durable server --db sqlite:///photos.db
    durable worker samples.polyglot.photos --db sqlite:///photos.db
    node samples/polyglot/worker.mjs --server http://127.0.0.1:8233
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import durable
from durable.server import create_app
from durable.urls import redact_url

from .photos import ACTIVITIES, WORKFLOWS, Published, publish_photo

WORKER_JS = Path(__file__).with_name("worker.mjs")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def serving(client: durable.Client, port: int) -> AsyncIterator[str]:
    """``durable server``'s app on uvicorn, on loopback, for the duration; yields its URL."""
    import uvicorn

    config = uvicorn.Config(create_app(client), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def node_worker(server_url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``node worker.mjs`` against ``server_url``; stopped gracefully (SIGTERM) after."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("The polyglot sample needs Node.js 18 or newer ('node' on the PATH).")
    proc = await asyncio.create_subprocess_exec(node, str(WORKER_JS), "--server", server_url)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def main(url: str | None = None) -> list[Published]:
    """Publish two photos: one approved, one the moderator hides. Prints what happened."""
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='polyglot-')) / 'photos.db'}"
    print(f"polyglot sample on {redact_url(url)}")
    async with durable.connect(url) as client:
        async with (
            durable.Worker(client, workflows=WORKFLOWS, activities=ACTIVITIES),
            serving(client, free_port()) as server_url,
            node_worker(server_url),
        ):
            handles = [
                await client.start(publish_photo, photo, [320, 1280], id=f"photo-{photo}")
                for photo in ("beach.jpg", "nsfw-party.jpg")
            ]
            results = [await handle.result(timeout=60) for handle in handles]
    for result in results:
        sizes = ", ".join(f"{t.width}x{t.height}" for t in result.thumbnails)
        verdict = "approved" if result.review.approved else "hidden"
        print(f"  {result.photo}: {sizes}; {verdict} by {result.review.reviewer}")
    return results
