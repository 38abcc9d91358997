"""Hourly usage billing: a schedule starts a run at the top of every hour (cron
``0 * * * *``); each run reads the past hour's shards of usage records from a data lake in
parallel (`durable.map`, one corrupt shard tolerated and set aside), adds up the usage per
user, and bills each user.

The sample creates the schedule, then backfills the last three hours (as after a first
deploy). In the newest hour one shard is corrupt (tolerated) and another has not landed
yet: its reads fail after their retries, more shards have failed than tolerated, and the
run fails. Once the shard lands, ``handle.retry()`` runs the failed read again where the
run stopped — the shards already read are not read again — and the hour is billed.

    python -m samples.hourly_pipeline   # on a fresh SQLite file and data-lake folder
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import durable
from durable import ApplicationError, RetryPolicy, activity, workflow
from durable.urls import redact_url as client_url  # never print a password

SHARDS = 8
LATE_SHARD = 2  # of the newest hour: lands only after its run has failed
USERS = ["ada", "grace", "linus", "barbara", "ken"]
CENTS_PER_1000_CALLS = 25
READS = RetryPolicy(max_attempts=3, initial_interval=timedelta(milliseconds=100))
log = logging.getLogger("samples.hourly_pipeline")


@dataclass
class Shard:
    """One shard of one hour's usage records in the lake."""

    lake: str
    hour: str  # "2026-12-02T17": the hour from 17:00 to 18:00 UTC
    index: int

    @property
    def path(self) -> Path:
        """Where the shard's file lands."""
        return Path(self.lake) / self.hour / f"shard-{self.index:02d}.jsonl"


@dataclass
class Usage:
    """What one user used in one hour."""

    hour: str
    user: str
    calls: int


@dataclass
class Bill:
    """One user's bill for one hour."""

    hour: str
    user: str
    calls: int
    cents: int


@dataclass
class HourReport:
    """How an hour was billed: the shards set aside as corrupt, and the bills."""

    hour: str
    shards_read: int
    set_aside: list[int] = field(default_factory=list)
    bills: list[Bill] = field(default_factory=list)


@activity(retry=READS)
async def read_shard(shard: Shard) -> dict[str, int]:
    """Count the calls per user in one shard; a corrupt shard fails for good."""
    if not shard.path.exists():
        log.warning("shard %d of %s has not landed yet", shard.index, shard.hour)
        raise FileNotFoundError(f"shard {shard.index} of {shard.hour} has not landed")
    calls: Counter[str] = Counter()
    lines = shard.path.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            log.error("shard %d of %s: line %d is not JSON", shard.index, shard.hour, number)
            raise ApplicationError(
                f"shard {shard.index} of {shard.hour} is corrupt at line {number}",
                type="CorruptShard",
                non_retryable=True,
            ) from None
        calls[record["user"]] += record["calls"]
    log.info("shard %d of %s: %d records", shard.index, shard.hour, len(lines))
    return dict(calls)


@activity(retry=READS)
async def bill_user(usage: Usage) -> Bill:
    """Charge one user for one hour's calls."""
    cents = usage.calls * CENTS_PER_1000_CALLS // 1000
    log.info("billed %s %d cents for %d calls in %s", usage.user, cents, usage.calls, usage.hour)
    return Bill(usage.hour, usage.user, usage.calls, cents)


@workflow
async def hourly_usage(lake: str) -> HourReport:
    """Bill the hour before the tick that started this run (before now, if none did)."""
    tick = durable.info().scheduled_at or durable.now()
    hour = (tick - timedelta(hours=1)).strftime("%Y-%m-%dT%H")
    durable.publish("progress", f"reading {SHARDS} shards of {hour}")
    shards = [Shard(lake, hour, i) for i in range(SHARDS)]
    counts = await durable.map(read_shard, shards, max_concurrency=4, tolerated_failures=1)
    report = HourReport(hour, shards_read=0)
    totals: Counter[str] = Counter()
    for index, result in enumerate(counts):
        if isinstance(result, durable.DurableError):
            report.set_aside.append(index)  # tolerated: kept aside for a person to look at
        else:
            report.shards_read += 1
            totals.update(result)
    durable.publish("progress", f"billing {len(totals)} users for {hour}")
    usages = [Usage(hour, user, calls) for user, calls in sorted(totals.items())]
    report.bills = await durable.map(bill_user, usages)
    durable.publish("progress", f"billed {hour}")
    return report


ACTIVITIES = [read_shard, bill_user]


def land(
    lake: Path, hour: str, *, shards: Iterable[int] = range(SHARDS), corrupt: int | None = None
) -> None:
    """Write shards of an hour to the lake (the upstream's job): records of random users,
    seeded by hour and shard; shard ``corrupt`` gets a broken line."""
    for index in shards:
        rng = random.Random(f"{hour}/{index}")
        lines = [
            json.dumps({"user": rng.choice(USERS), "calls": rng.randint(1, 500)}) for _ in range(50)
        ]
        if index == corrupt:
            lines.insert(17, '{"user": "ada", "calls": 1')
        path = Shard(str(lake), hour, index).path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def hour_of(tick: datetime) -> str:
    """The hour a tick's run bills: the one before it."""
    return (tick - timedelta(hours=1)).strftime("%Y-%m-%dT%H")


async def main(url: str | None = None, lake: Path | None = None) -> list[HourReport]:
    """Schedule the pipeline hourly, backfill three hours; one of them fails at first."""
    logging.getLogger("samples").setLevel(logging.INFO)  # INFO is kept as step logs
    folder = Path(tempfile.mkdtemp(prefix="hourly-"))
    url = url or f"sqlite:///{folder / 'hourly.db'}"
    lake = lake or folder / "lake"
    top = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ticks = [top - timedelta(hours=n) for n in (2, 1, 0)]
    for tick in ticks[:-1]:
        land(lake, hour_of(tick))
    late = hour_of(ticks[-1])
    land(lake, late, shards=[i for i in range(SHARDS) if i != LATE_SHARD], corrupt=5)
    print(f"hourly pipeline on {client_url(url)}, lake {lake}")
    reports = []
    async with durable.connect(url) as client:
        async with durable.Worker(client, workflows=[hourly_usage], activities=ACTIVITIES):
            schedule = await client.schedule(
                hourly_usage, str(lake), id="hourly-usage", cron="0 * * * *"
            )
            upcoming = (await schedule.describe()).next_fire_times[:2]
            print(
                f"  schedule hourly-usage: next runs {', '.join(t.isoformat() for t in upcoming)}"
            )
            handles = await schedule.backfill(ticks[0], ticks[-1], overlap="allow_all")
            print(f"  backfilled {', '.join(h.id for h in handles)}")
            for backfilled in handles:
                handle = client.get_handle(backfilled.id, hourly_usage)  # results as HourReport
                try:
                    reports.append(await handle.result(timeout=60))
                except durable.WorkflowFailed as failed:
                    print(f"  {handle.id} failed: {failed.cause.message}")
                    land(lake, late, shards=[LATE_SHARD])
                    again = "handle.retry() reads it where the run stopped"
                    print(f"  shard {LATE_SHARD} landed; {again}")
                    await handle.retry(reason=f"shard {LATE_SHARD} landed")
                    reports.append(await handle.result(timeout=60))
    for report in reports:
        bills = ", ".join(f"{b.user} ${b.cents / 100:.2f}" for b in report.bills)
        aside = f" (shards set aside: {report.set_aside})" if report.set_aside else ""
        print(f"  {report.hour}: {report.shards_read}/{SHARDS} shards read{aside}; billed {bills}")
    return reports


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setLevel(logging.CRITICAL)  # kept as step logs
    asyncio.run(main())
