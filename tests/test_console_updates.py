"""The run page's update form: the outcome page shows the result, the handler's error, or
why the update was rejected, with every value escaped; the form is CSRF-protected."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from serverkit import Api, running

import durable

HOSTILE = "<script>alert('x')</script>"


@durable.workflow
async def notes() -> list[str]:
    kept: list[str] = []

    def check(text: str) -> None:
        if text == "no":
            raise ValueError(f"refused {HOSTILE}")

    def add(text: str) -> list[str]:
        kept.append(text)
        return list(kept)

    def broken() -> None:
        raise RuntimeError(f"broke {HOSTILE}")

    durable.on_update("add", add, validator=check)
    durable.on_update("broken", broken)
    await durable.wait_condition(lambda: "done" in kept, timeout=60)
    return kept


@pytest.fixture
async def api(store_url: str) -> AsyncIterator[Api]:
    async with running(store_url, workflows=[notes]) as served:
        yield served


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


async def test_the_update_form_shows_the_outcome(api: Api) -> None:
    await api.start("notes", id="n-1")
    page = (await api.http.get("/runs/n-1")).text
    assert 'action="/runs/n-1/update"' in page
    token = _csrf(page)

    async def send(name: str, args: str) -> tuple[int, str]:
        r = await api.http.post(
            "/runs/n-1/update", data={"csrf": token, "name": name, "args": args}
        )
        return r.status_code, r.text

    status, text = await send("add", f'["{HOSTILE}"]')
    assert status == 200
    assert "Completed" in text
    assert HOSTILE not in text  # escaped
    assert "&lt;script&gt;" in text
    status, text = await send("add", '["no"]')
    assert status == 409
    assert "was rejected" in text
    assert HOSTILE not in text
    status, text = await send("broken", "")
    assert status == 200
    assert 'data-update-outcome="failed"' in text
    assert HOSTILE not in text
    status, text = await send("nope", "[]")
    assert status == 409
    assert "no handler for update" in text
    status, text = await send("add", "apple")
    assert status == 400
    assert "not JSON" in text
    status, text = await send("add", '{"a": 1}')
    assert status == 400
    assert "JSON array" in text
    page = await api.http.get("/runs/n-1")  # the updates are steps of the run
    assert page.status_code == 200
    assert "update \u00b7 add" in page.text or "update · add" in page.text
    assert HOSTILE not in page.text
    forged = await api.http.post("/runs/n-1/update", data={"csrf": "x" * 40, "name": "add"})
    assert forged.status_code == 403
    status, text = await send("add", '["done"]')
    assert status == 200
    assert (await api.outcome("n-1"))["result"] == [HOSTILE, "done"]
