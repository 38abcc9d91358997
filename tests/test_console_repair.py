"""The console's repair actions (durable/console/repair.py) over a real server, database
and worker: Retry and Fork on the run page, "Fork from here" in a step's detail, their
CSRF protection, and refusals shown as pages (escaped)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from serverkit import Api, running

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[Api]:
    async with running(store_url) as api:
        yield api


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def test_retry_shows_for_a_terminated_run_and_re_opens_it(api: Api) -> None:
    await api.start("approval", "o-1", id="o-1")
    page = (await api.http.get("/runs/o-1")).text
    assert 'action="/runs/o-1/fork"' in page
    assert 'action="/runs/o-1/retry"' not in page  # running: nothing to retry
    token = _csrf(page)
    forged = await api.http.post("/runs/o-1/retry", data={"csrf": "guess" * 10})
    assert forged.status_code == 403
    await api.http.post("/runs/o-1/terminate", data={"csrf": token, "reason": "oops"})
    page = (await api.http.get("/runs/o-1")).text
    assert 'action="/runs/o-1/retry"' in page
    done = await api.http.post("/runs/o-1/retry", data={"csrf": token, "reason": "my mistake"})
    assert done.status_code == 303
    assert done.headers["location"] == "/runs/o-1?done=retry"
    page = (await api.http.get(done.headers["location"])).text
    assert "Re-opened where it stopped" in page
    assert "<dt>repairs</dt>" in page  # the run page says what the operator did
    assert "(was terminated: oops; reason: my mistake)" in page
    r = await api.http.post("/v1/workflows/o-1/signal/approve", json={"value": "yes"})
    assert r.status_code == 202
    assert (await api.outcome("o-1"))["result"] == "o-1: yes"
    again = await api.http.post("/runs/o-1/retry", data={"csrf": token})
    assert again.status_code == 409
    assert "completed: there is nothing to retry" in again.text


async def test_fork_from_a_step_reuses_what_came_before_it(api: Api) -> None:
    await api.start("hello", "ada", 2, id="h-1")
    await api.outcome("h-1")
    page = (await api.http.get("/runs/h-1")).text
    seqs = [s for s, _ in re.findall(r'<tr data-seq="(\d+)".*?<td>(\w+)</td>', page, re.S)]
    second = seqs[2]  # greet, publish, greet, publish
    detail = (await api.http.get("/runs/h-1", params={"step": second})).text
    assert f'name="step" value="{second}"' in detail
    token = _csrf(detail)
    forked = await api.http.post(
        "/runs/h-1/fork", data={"csrf": token, "step": second, "id": "h-1-again"}
    )
    assert forked.status_code == 303, forked.text
    assert forked.headers["location"] == "/runs/h-1-again?done=fork"
    assert (await api.outcome("h-1-again"))["result"] == ["hello ada", "hello ada"]
    history = (await api.http.get("/v1/workflows/h-1-again/history")).json()["events"]
    kinds = [e["kind"] for e in history]
    assert kinds.count("activity_scheduled") == 2
    assert kinds.index("run_forked") == int(second)  # kept up to the second greet's command
    bad = await api.http.post("/runs/h-1/fork", data={"csrf": token, "at_seq": "three"})
    assert bad.status_code == 409
    assert "must be a whole number, not &#39;three&#39;" in bad.text
    cut = await api.http.post("/runs/h-1/fork", data={"csrf": token, "at_seq": "1"})
    assert cut.status_code == 409
    assert "fork at 0 (before them) or 2 (after them)" in cut.text


async def test_a_refusal_naming_a_hostile_id_is_shown_as_text(api: Api) -> None:
    await api.start("approval", "o-2", id=HOSTILE)
    path = f"/runs/{quote(HOSTILE, safe='')}"
    page = (await api.http.get(path)).text
    refused = await api.http.post(f"{path}/retry", data={"csrf": _csrf(page)})
    assert refused.status_code == 409
    assert "nothing to retry" in refused.text
    assert "<script>alert" not in refused.text
