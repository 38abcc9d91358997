"""The polyglot sample end to end: `durable server` on loopback, a Python worker and the
Node.js worker (samples/polyglot/worker.mjs, a real `node` process) on both backends.

Node.js is required in CI (``DURABLE_REQUIRE_NODE=1``, set by .ci/run), as PostgreSQL is;
elsewhere the test skips when ``node`` is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

import durable
from samples.polyglot import demo
from samples.polyglot.photos import Review, Thumbnail

if shutil.which("node") is None:
    if os.environ.get("DURABLE_REQUIRE_NODE"):
        raise RuntimeError("DURABLE_REQUIRE_NODE is set but 'node' is not on the PATH")
    pytest.skip("Node.js is not installed", allow_module_level=True)


async def test_a_python_workflow_runs_its_steps_in_node(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    beach, party = await demo.main(store_url)
    assert beach.thumbnails == [
        Thumbnail(320, 240, "beach-320w.jpg"),
        Thumbnail(1280, 960, "beach-1280w.jpg"),
    ]
    assert beach.review == Review(approved=True, reviewer="moderator@node")
    assert beach.index_entry == "beach.jpg: 2 sizes, public"
    assert party.review.approved is False
    assert party.index_entry == "nsfw-party.jpg: 2 sizes, hidden"
    out = capsys.readouterr().out
    assert "beach.jpg: 320x240, 1280x960; approved by moderator@node" in out
    # The journal shows the remote steps as any other: the resize ran in Node, heartbeating.
    async with durable.connect(store_url) as client:
        steps = await client.get_handle("photo-beach.jpg").steps()
    assert [(s.kind, s.name, s.status) for s in steps] == [
        ("activity", "resize_image", "completed"),
        ("external", "moderation", "completed"),
        ("activity", "request_moderation", "completed"),
        ("timer", "timer", "cancelled"),  # the wait's 2-day timeout, not needed
        ("activity", "index_photo", "completed"),
    ]
    assert steps[0].attempts[0].worker is not None
    assert steps[0].attempts[0].worker.startswith("node-")
