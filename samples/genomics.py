"""Whole-genome variant calling: align a sample's reads, call variants on each chromosome in
a child workflow of its own on the ``batch-large`` queue — served by a separate pool of big
workers, a resource class — then aggregate the calls into one report.

The sample runs the small pool (the ``default`` queue: align, aggregate, the parent
workflow) in this process and the big pool as a real worker process; in the middle of the
fan-out it kills that process with SIGKILL and starts another, which takes over once the
dead one's leases expire: every chromosome is called exactly once as far as the workflow is
concerned (an attempt lost with the dead worker runs again, and the journal keeps one
result).

    python -m samples.genomics          # from the repository root, on a fresh SQLite file

In production each pool is its own fleet, each process serving the queues it has the
machine for:

    durable worker samples.genomics --queue default            # small machines
    durable worker samples.genomics --queue batch-large        # the big ones
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import durable
from durable import RetryPolicy, activity, workflow
from durable.urls import redact_url as client_url  # never print a password

BATCH_LARGE = "batch-large"
#: GRCh38 chromosome lengths in megabases: the work (and the time) each one takes.
CHROMOSOMES = {
    **{str(n): mb for n, mb in enumerate((248, 242, 198, 190, 181, 171, 159, 145), start=1)},
    **{str(n): mb for n, mb in enumerate((138, 134, 135, 133, 114, 107, 102, 90), start=9)},
    **{str(n): mb for n, mb in enumerate((83, 80, 59, 64, 47, 51), start=17)},
    "X": 156,
    "Y": 57,
}
SECONDS_PER_MB = 0.008  # chromosome 1 takes 2 s here; hours on a real cluster
ROOT = Path(__file__).resolve().parent.parent
KILL_AFTER = 4  # chromosomes called before the sample kills the big worker

log = logging.getLogger("samples.genomics")
AGAIN = RetryPolicy(max_attempts=0, initial_interval=timedelta(milliseconds=100), backoff=1.0)


@dataclass
class Job:
    """One chromosome of one sample's alignment."""

    sample: str
    bam: str
    chromosome: str


@dataclass
class ChromosomeCalls:
    """The variants called on one chromosome: all of them, and those passing the filters."""

    chromosome: str
    called: int
    passed: int


@dataclass
class GenomeReport:
    """What the pipeline made of one sample."""

    sample: str
    bam: str
    vcf: str
    chromosomes: list[str]
    variants: int


@activity(retry=AGAIN)
async def align(sample: str) -> str:
    """Align the sample's reads to the reference; returns the alignment's location."""
    log.info("aligning %s to GRCh38", sample)
    await asyncio.sleep(0.2)
    bam = f"s3://genomes/{sample}.bam"
    log.info("wrote %s", bam)
    return bam


@activity(queue=BATCH_LARGE, retry=AGAIN, timeout=timedelta(hours=6))
async def call_variants(bam: str, chromosome: str) -> int:
    """Call the variants on one chromosome (the big job: a ``batch-large`` machine)."""
    megabases = CHROMOSOMES[chromosome]
    log.info("calling chr%s (%d Mb) of %s on pid %d", chromosome, megabases, bam, os.getpid())
    await asyncio.sleep(megabases * SECONDS_PER_MB)
    called = megabases * 1_000 + len(chromosome) * 7
    log.info("chr%s: %d variants called", chromosome, called)
    return called


@activity(queue=BATCH_LARGE, retry=AGAIN)
async def filter_variants(chromosome: str, called: int) -> int:
    """Keep the calls that pass the quality filters."""
    passed = called * 9 // 10
    log.info("chr%s: %d of %d variants pass", chromosome, passed, called)
    return passed


@activity(retry=AGAIN)
async def aggregate(sample: str, calls: list[ChromosomeCalls]) -> str:
    """Merge the per-chromosome calls into one VCF; returns its location."""
    log.info("merging %d chromosomes of %s", len(calls), sample)
    return f"s3://genomes/{sample}.vcf.gz"


@workflow(queue=BATCH_LARGE)
async def call_chromosome(job: Job) -> ChromosomeCalls:
    """Variant calling on one chromosome: a child workflow on the big workers' queue."""
    called = await call_variants(job.bam, job.chromosome)
    passed = await filter_variants(job.chromosome, called)
    return ChromosomeCalls(job.chromosome, called, passed)


@workflow
async def genome(sample: str) -> GenomeReport:
    """Align, call each chromosome in parallel as a child workflow, then aggregate."""
    durable.publish("progress", "aligning")
    bam = await align(sample)
    done: list[str] = []

    async def one(chromosome: str) -> ChromosomeCalls:
        job = Job(sample, bam, chromosome)
        child_id = f"{durable.info().id}-chr{chromosome}"  # genome-NA12878-chr1, ...
        calls: ChromosomeCalls = await durable.call(call_chromosome, job, id=child_id)
        done.append(chromosome)
        durable.publish("progress", f"{len(done)}/{len(CHROMOSOMES)} chromosomes called")
        return calls

    durable.publish("progress", f"0/{len(CHROMOSOMES)} chromosomes called")
    calls = await durable.map(one, list(CHROMOSOMES))
    durable.publish("progress", "aggregating")
    vcf = await aggregate(sample, calls)
    durable.publish("progress", "done")
    variants = sum(c.passed for c in calls)
    return GenomeReport(sample, bam, vcf, [c.chromosome for c in calls], variants)


def _text(path: Path) -> str:
    return path.read_text(errors="replace")


async def big_worker(url: str, out: Path) -> asyncio.subprocess.Process:
    """Start ``durable worker samples.genomics --queue batch-large`` (a 1 s lease, so that
    a dead one's work is taken over quickly); returns once it is serving."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # `samples` from this checkout; `durable` from wherever this process has it (-P: not
    # from the working directory, which holds the source tree).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), str(ROOT)]))
    with out.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-P", "-m", "durable", "worker", "samples.genomics", "--db", url),
            *("--queue", BATCH_LARGE, "--lease", "1"),
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
        )
    for _ in range(600):
        if "Ctrl-C stops." in _text(out):
            return process
        if process.returncode is not None:
            raise RuntimeError(f"the batch-large worker did not start:\n{_text(out)}")
        await asyncio.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the batch-large worker did not start in 30 s:\n{_text(out)}")


async def _stop(process: asyncio.subprocess.Process | None) -> None:
    if process is not None and process.returncode is None:
        process.terminate()  # SIGTERM: a graceful stop
        await process.wait()


async def main(url: str | None = None) -> GenomeReport:
    """Call one genome's variants, killing the big worker mid-way; print what happens."""
    logging.getLogger("samples").setLevel(logging.INFO)  # INFO is kept as step logs
    folder = Path(tempfile.mkdtemp(prefix="genomics-"))
    url = url or f"sqlite:///{folder / 'genomics.db'}"
    print(f"genomics on {client_url(url)}")
    first = await big_worker(url, folder / "worker-1.out")
    second: asyncio.subprocess.Process | None = None
    print(f"  batch-large pool: worker process {first.pid}; default pool: this process")
    try:
        async with durable.connect(url) as client:
            small = durable.Worker(
                client, workflows=[genome], activities=[align, aggregate], queues=["default"]
            )
            async with small:
                handle = await client.start(genome, "NA12878", id="genome-NA12878")
                outcome = asyncio.ensure_future(handle.result(timeout=120))
                shown = ""
                while not outcome.done():
                    progress = await handle.read("progress", timeout=60)
                    if progress != shown:
                        print(f"  {progress}")
                        shown = progress
                    called = int(shown.split("/")[0]) if "/" in shown else 0
                    if second is None and called >= KILL_AFTER:
                        first.kill()  # SIGKILL: no goodbye, its leases simply run out
                        await first.wait()
                        print(f"  killed worker {first.pid} (SIGKILL) in the middle of the fan-out")
                        second = await big_worker(url, folder / "worker-2.out")
                        print(f"  worker process {second.pid} takes over the batch-large queue")
                    await asyncio.sleep(0.02)
                report = await outcome  # raises if the run failed
                if (last := await handle.read("progress")) != shown:
                    print(f"  {last}")
    finally:
        await _stop(first)
        await _stop(second)
    print(
        f"  {report.sample}: {len(report.chromosomes)} chromosomes called once each, "
        f"{report.variants:,} variants -> {report.vcf}"
    )
    print(f"  look: durable server --db {client_url(url)}, then /runs/genome-NA12878")
    return report


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setLevel(logging.WARNING)  # INFO kept, not printed
    asyncio.run(main())
