"""A media pipeline: transcode a video, then capture frames, recognise faces and recognise
speech in parallel, then audit and upload. Recognition services are flaky: their failed
attempts are retried durably, each visible in the history.

    python -m samples.media_pipeline        # processes two videos on a fresh SQLite file
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import durable
from durable import RetryPolicy, activity, workflow
from durable.urls import redact_url as client_url  # never print a password

FLAKY = RetryPolicy(max_attempts=5, initial_interval=timedelta(milliseconds=50), backoff=2.0)


@dataclass
class Report:
    """What the pipeline produced for one video."""

    video: str
    rendition: str
    frames: int
    faces: list[str]
    transcript: str
    url: str


@activity(timeout=timedelta(minutes=10), heartbeat_timeout=timedelta(seconds=30))
async def transcode(video: str) -> str:
    """Transcode to a web rendition, heartbeating progress."""
    for percent in (25, 50, 75, 100):
        durable.heartbeat(percent)
        await asyncio.sleep(0.01)
    return f"{video}.mp4"


@activity(retry=FLAKY)
async def capture_frames(rendition: str) -> int:
    """Capture key frames; returns how many."""
    return 24


@activity(retry=FLAKY)
async def recognize_faces(rendition: str) -> list[str]:
    """Face recognition; the service fails its first two attempts."""
    if durable.activity_info().attempt < 3:
        raise ConnectionError("face service unavailable")
    return ["ada", "grace"]


@activity(retry=FLAKY)
def recognize_speech(rendition: str) -> str:
    """Speech recognition (a blocking call, so a sync activity in a thread); flaky once."""
    if durable.activity_info().attempt < 2:
        raise TimeoutError("speech service timed out")
    return "hello world"


@activity
async def audit(video: str, faces: list[str], transcript: str) -> bool:
    """Check the results against policy."""
    return bool(faces) and bool(transcript)


@activity
async def upload(rendition: str) -> str:
    """Publish the rendition; returns its URL."""
    return f"https://cdn.example/{rendition}"


@workflow
async def process_video(video: str) -> Report:
    """Transcode, analyse in parallel, audit, upload."""
    rendition = await transcode(video)
    durable.publish("stage", "analysing")
    frames, faces, transcript = await asyncio.gather(
        capture_frames(rendition),
        recognize_faces(rendition),
        durable.call(recognize_speech, rendition),
    )
    durable.publish("stage", "auditing")
    if not await audit(video, faces, transcript):
        raise durable.ApplicationError(f"{video} failed the audit", type="AuditFailed")
    url = await upload(rendition)
    durable.publish("stage", "done")
    return Report(video, rendition, frames, faces, transcript, url)


ACTIVITIES = [transcode, capture_frames, recognize_faces, recognize_speech, audit, upload]


async def main(url: str | None = None) -> list[Report]:
    """Process two videos and print what happened, retries included."""
    if url is None:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='media-')) / 'media.db'}"
    print(f"media pipeline on {client_url(url)}")
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[process_video], activities=ACTIVITIES):
            handles = [
                await client.start(process_video, name, id=f"video-{name}")
                for name in ("keynote", "interview")
            ]
            reports = [await h.result(timeout=60) for h in handles]
            retries = [e for e in await handles[0].history() if e.kind == "activity_retrying"]
    for report in reports:
        print(
            f"  {report.video}: {report.frames} frames, faces {report.faces}, "
            f"'{report.transcript}' -> {report.url}"
        )
    print(f"  {len(retries)} failed attempts were retried for {handles[0].id}")
    return reports


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
