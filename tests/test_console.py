"""The console's pages over a real server, database and worker: what they show, that every
value is escaped, the actions and their protection against cross-site requests, the token
login. (tests/test_console_browser.py drives the same pages in Chromium.)"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from serverkit import Api, running

from durable.console import pages
from durable.steps import Step
from tests.console_runs import synthetic

HOSTILE = "<script>alert('x')</script>"


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[Api]:
    async with running(store_url) as api:
        yield api


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def test_the_runs_list_shows_counts_filters_and_escapes(api: Api) -> None:
    await api.start("hello", "ada", id="h-1")
    await api.outcome("h-1")
    await api.start("approval", HOSTILE, id=HOSTILE, tags={"customer": "acme"})
    await api.start("approval", "o-2", id="o-2")
    page = (await api.http.get("/")).text
    assert "<script>alert" not in page  # shown, never run
    assert html.escape(HOSTILE, quote=False) in page or "&lt;script&gt;" in page
    assert re.search(r'data-status="completed">.*?<b>1</b>', page)
    assert re.search(r'data-status="(running|pending)">.*?<b>\d</b>', page)
    rows = re.findall(r'<tr data-id="([^"]+)" data-status="([^"]+)">', page)
    assert [html.unescape(i) for i, _ in rows] == ["o-2", HOSTILE, "h-1"]  # newest first
    acme = (await api.http.get("/", params={"tag": "customer:acme"})).text
    assert [html.unescape(i) for i in re.findall(r'<tr data-id="([^"]+)"', acme)] == [HOSTILE]
    done = (await api.http.get("/", params={"status": "completed"})).text
    assert re.findall(r'<tr data-id="([^"]+)"', done) == ["h-1"]
    nothing = (await api.http.get("/", params={"name": "nope"})).text
    assert "No runs match these filters" in nothing
    wrong = (await api.http.get("/", params={"status": "done", "tag": "acme"})).text
    assert "Unknown status &#39;done&#39;" in wrong
    assert "Tags filter as key:value" in wrong


async def test_an_id_search_opens_the_run_or_says_there_is_none(api: Api) -> None:
    await api.start("approval", "o-1", id="order/1")
    found = await api.http.get("/", params={"id": "order/1"})
    assert found.status_code == 303
    assert found.headers["location"] == "/runs/order%2F1"
    page = await api.http.get(found.headers["location"])
    assert page.status_code == 200
    assert "order/1" in page.text
    missing = await api.http.get("/", params={"id": "order/2"})
    assert "No workflow has the id &#39;order/2&#39;." in missing.text
    gone = await api.http.get("/runs/never-started")
    assert gone.status_code == 404
    assert "There is no workflow &#39;never-started&#39;" in gone.text


async def test_the_run_page_shows_state_steps_and_a_step_in_detail(api: Api) -> None:
    await api.start("hello", "grace", 2, id="h-2")
    await api.outcome("h-2")
    page = (await api.http.get("/runs/h-2")).text
    assert 'data-run-status="completed"' in page
    assert "&#34;grace&#34;" in page or '"grace"' in page  # the input, as JSON
    steps = re.findall(r'<tr data-seq="(\d+)" data-status="(\w+)"', page)
    assert len(steps) == 4  # greet, publish count, greet, publish count
    assert {status for _, status in steps} == {"completed"}
    assert "4 completed" in page
    seq = steps[0][0]
    detail = (await api.http.get("/runs/h-2", params={"step": seq})).text
    assert f"Step {seq}: activity <b>greet</b>" in detail
    assert "Attempts" in detail
    assert "Steer" not in detail  # a closed run has no actions


async def test_a_signal_from_the_console_finishes_the_run(api: Api) -> None:
    await api.start("approval", "o-7", id="o-7")
    page = (await api.http.get("/runs/o-7")).text
    assert "Steer" in page
    form = {"csrf": _csrf(page), "name": "approve", "value": '"yes"'}
    sent = await api.http.post("/runs/o-7/signal", data=form)
    assert sent.status_code == 303
    assert sent.headers["location"] == "/runs/o-7?done=signal"
    assert (await api.outcome("o-7"))["result"] == "o-7: yes"


async def test_forms_without_the_csrf_token_or_from_elsewhere_are_refused(api: Api) -> None:
    await api.start("approval", "o-8", id="o-8")
    page = (await api.http.get("/runs/o-8")).text
    token = _csrf(page)
    forged = await api.http.post("/runs/o-8/cancel", data={"csrf": "guess" * 10})
    assert forged.status_code == 403
    assert "did not come from this console" in forged.text
    elsewhere = await api.http.post(
        "/runs/o-8/terminate", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    bad_json = await api.http.post(
        "/runs/o-8/signal", data={"csrf": token, "name": "approve", "value": "yes"}
    )
    assert bad_json.status_code == 400
    assert "is not JSON" in bad_json.text
    described = await api.http.get("/v1/workflows/o-8")
    assert described.json()["status"] in ("pending", "running")  # nothing was done
    terminated = await api.http.post(
        "/runs/o-8/terminate", data={"csrf": token, "reason": "from a test"}
    )
    assert terminated.status_code == 303
    assert (await api.http.get("/v1/workflows/o-8")).json()["status"] == "terminated"


async def test_pages_and_assets_carry_the_security_headers(api: Api) -> None:
    page = await api.http.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    css = await api.http.get("/static/console.css")
    assert css.status_code == 200
    assert "text/css" in css.headers["content-type"]


async def test_with_a_token_the_console_asks_for_it_once(store_url: str) -> None:
    async with running(store_url, token="s3cret", worker=False) as api:
        async with httpx.AsyncClient(base_url=api.url) as browser:
            first = await browser.get("/")
            assert first.status_code == 303
            assert first.headers["location"] == "/login"
            login = await browser.get("/login")
            assert login.status_code == 200
            wrong = await browser.post("/login", data={"csrf": _csrf(login.text), "token": "nope"})
            assert wrong.status_code == 401
            right = await browser.post(
                "/login", data={"csrf": _csrf(login.text), "token": "s3cret"}
            )
            assert right.status_code == 303
            assert (await browser.get("/")).status_code == 200  # the cookie carries it now
            assert (await browser.get("/v1/workflows")).status_code == 200
            assert (await browser.get("/static/console.js")).status_code == 200
        async with httpx.AsyncClient(base_url=api.url) as stranger:
            assert (await stranger.get("/v1/workflows")).status_code == 401


async def test_the_workers_page_shows_workers_and_what_waits_on_each_queue(api: Api) -> None:
    await api.start("hello", "ada", id="served")
    await api.outcome("served")
    await api.start("hello", "bob", id="stuck", queue="nobody-serves-this")
    page = (await api.http.get("/workers")).text
    assert re.search(r'<tr data-worker="[^"]+"><td class="mono">', page)
    row = re.search(r'<tr data-queue="nobody-serves-this">(.*?)</tr>', page, re.S)
    assert row, page
    assert "<td>1</td>" in row.group(1)  # one run waiting
    assert "no worker serves this queue" in row.group(1)
    assert 'data-queue="default"' not in page  # served, and nothing waits there


async def test_the_list_filters_by_time_range(api: Api) -> None:
    await api.start("approval", "o-1", id="o-1")
    now = datetime.now(UTC).replace(tzinfo=None)
    hour = timedelta(hours=1)

    async def listed(**query: datetime) -> list[str]:
        params = {k: v.isoformat(timespec="minutes") for k, v in query.items()}
        page = (await api.http.get("/", params=params)).text
        return re.findall(r'<tr data-id="([^"]+)"', page)

    assert await listed(**{"from": now - hour}) == ["o-1"]
    assert await listed(**{"from": now + hour}) == []
    assert await listed(to=now - hour) == []
    assert await listed(**{"from": now - hour, "to": now + hour}) == ["o-1"]
    junk = (await api.http.get("/", params={"from": "yesterday"})).text
    assert "&#39;yesterday&#39; is not a time" in junk


async def test_the_workflow_page_merges_recent_runs_with_figures(api: Api) -> None:
    for n in (1, 2):
        await api.start("hello", "ada", n, id=f"hello-{n}")
        await api.outcome(f"hello-{n}")
    page = await api.http.get("/workflows/hello")
    assert page.status_code == 200
    assert "as its 2 most recent runs took it" in page.text
    rows = re.findall(r'<tr data-step="([^"]+)">.*?<td>(\d+)/2</td>', page.text, re.S)
    # greet and publish, then a second greet and publish that only the 2-greeting run took
    assert rows == [
        ("activity:greet", "2"),
        ("publish:count", "2"),
        ("activity:greet", "1"),
        ("publish:count", "1"),
    ]
    assert page.text.count(">100%</span>") == 4
    assert 'data-kind="activity"' in page.text  # the shape drawn
    missing = await api.http.get("/workflows/never")
    assert missing.status_code == 404


def test_the_steps_table_keeps_what_went_wrong_then_the_newest_up_to_its_size() -> None:
    def shown(steps: list[Step]) -> list[int]:
        return [s.seq for s in pages._shown(steps, [s.status for s in steps])]

    size = pages.STEPS_SHOWN
    assert shown(synthetic(size)) == list(range(1, size + 1))
    assert shown(synthetic(3 * size)) == list(range(2 * size + 1, 3 * size + 1))
    few = synthetic(3 * size, failed_every=size)  # 3 failed: they, then the newest others
    assert shown(few) == [size, 2 * size, *range(2 * size + 3, 3 * size + 1)]
    # As many failed as the table holds, or more: the first of those, and none of the
    # others (it drew every step of the run, then every failed one).
    many = synthetic(4 * size, failed_every=2)
    assert shown(many) == list(range(2, 2 * size + 1, 2))
