"""The Python side of the polyglot sample: a workflow whose heavy steps run in Node.js.

``publish_photo`` asks a Node.js worker (``worker.mjs``, beside this file) to resize a photo
— an activity that no Python code implements, called by name on the ``media-node`` queue —
then asks it for a human moderation, handing it an *external completion token* that the
moderator's answer comes back with, and finally indexes the result in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import durable
from durable import RetryPolicy, activity, workflow

NODE_QUEUE = "media-node"  # the queue the Node.js worker polls


@dataclass
class Thumbnail:
    """One resized rendition, as the Node.js worker reports it (JSON, rebuilt by type)."""

    width: int
    height: int
    path: str


@dataclass
class Review:
    """A moderator's answer, delivered to the workflow's external wait."""

    approved: bool
    reviewer: str


@dataclass
class Published:
    """What ``publish_photo`` returns."""

    photo: str
    thumbnails: list[Thumbnail]
    review: Review
    index_entry: str


@activity
async def index_photo(photo: str, thumbnails: list[Thumbnail], approved: bool) -> str:
    """Record the photo in the (pretend) search index; a Python activity."""
    state = "public" if approved else "hidden"
    return f"{photo}: {len(thumbnails)} sizes, {state}"


@workflow
async def publish_photo(photo: str, widths: list[int]) -> Published:
    """Resize in Node.js, wait for a moderator's answer by token, index in Python."""
    thumbnails: list[Thumbnail] = await durable.call(
        "resize_image",
        photo,
        widths,
        queue=NODE_QUEUE,
        result_type=list[Thumbnail],
        timeout=timedelta(minutes=5),
        heartbeat_timeout=timedelta(seconds=30),
        retry=RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=200)),
    )
    moderation = durable.external("moderation", result_type=Review)
    await durable.call("request_moderation", photo, moderation.token, queue=NODE_QUEUE)
    review: Review = await moderation.wait(timeout=timedelta(days=2))
    entry = await index_photo(photo, thumbnails, review.approved)
    return Published(photo, thumbnails, review, entry)


WORKFLOWS = [publish_photo]
ACTIVITIES = [index_photo]
