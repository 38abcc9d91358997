"""samples/genomics.py end to end on a SQLite file, with real worker processes: the
batch-large worker is SIGKILLed mid fan-out, a second one finishes, and every chromosome is
called exactly once as far as the workflow is concerned."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import durable
from samples import genomics
from samples.genomics import CHROMOSOMES


def _pid(worker: str | None) -> int | None:
    return None if worker is None else int(worker.split(":")[1])


@pytest.mark.slow
async def test_genomics_survives_its_big_worker_killed_mid_fan_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'genomics.db'}"
    report = await genomics.main(url)

    assert report.chromosomes == list(CHROMOSOMES)  # each once, in order
    assert report.variants == sum(
        (mb * 1_000 + len(c) * 7) * 9 // 10 for c, mb in CHROMOSOMES.items()
    )
    assert report.vcf == "s3://genomes/NA12878.vcf.gz"
    out = capsys.readouterr().out
    killed = [line for line in out.splitlines() if "(SIGKILL)" in line]
    assert len(killed) == 1
    assert "24 chromosomes called once each" in out

    async with durable.connect(url) as client:
        parent = client.get_handle("genome-NA12878")
        events = await parent.history()
        started = [e.data["id"] for e in events if e.kind == "child_started"]
        assert started == [f"genome-NA12878-chr{c}" for c in CHROMOSOMES]  # one child each
        assert sum(e.kind == "child_completed" for e in events) == len(CHROMOSOMES)
        assert not any(e.kind == "child_failed" for e in events)
        # The parent's own steps ran in this process: the default pool.
        steps = await parent.steps()
        small = {_pid(a.worker) for s in steps if s.kind == "activity" for a in s.attempts}
        assert small == {os.getpid()}

        big: set[int | None] = set()
        lost = 0
        for chromosome in CHROMOSOMES:
            child = client.get_handle(f"genome-NA12878-chr{chromosome}")
            assert (await child.describe()).status == "completed"
            calls = [s for s in await child.steps() if s.kind == "activity"]
            # One call_variants step and one filter step per chromosome: each ran to its
            # end once for the journal, whatever attempts the kill cost.
            assert [(s.name, s.status) for s in calls] == [
                ("call_variants", "completed"),
                ("filter_variants", "completed"),
            ]
            attempts = calls[0].attempts
            assert [a.error is None for a in attempts] == [False] * (len(attempts) - 1) + [True]
            lost += sum(a.error is not None and a.error.type == "WorkerLost" for a in attempts)
            big |= {_pid(a.worker) for s in calls for a in s.attempts if a.error is None}
        # Step logs come back with their step (chromosome 1, the longest, is called after
        # the kill; the records of attempts that ended just before it may be lost with it).
        chr1 = [log.message for log in await client.get_handle("genome-NA12878-chr1").logs()]
        assert chr1[-2:] == ["chr1: 248007 variants called", "chr1: 223206 of 248007 variants pass"]
    # Two big workers did the calling, neither of them this process; some attempts were
    # lost with the first and run again by the second.
    assert len(big) == 2
    assert os.getpid() not in big
    assert lost >= 1
