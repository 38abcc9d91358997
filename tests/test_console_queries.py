"""The run page's query form in a real browser (Playwright driving Debian's Chromium)
against a real server, database and worker: ask a query, with arguments, see the answer
escaped (values holding markup are shown as text, never run), and see why there is none
for an unknown query, bad arguments, or a query that raises."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from queries_app import cart, misbehaves
from serverkit import Api, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("DURABLE_REQUIRE_BROWSER"):
        raise RuntimeError("DURABLE_REQUIRE_BROWSER is set but Chromium is not installed")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.async_api import Page, async_playwright, expect  # noqa: E402

MARKUP = "<script>window.pwned = 1</script>"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running(f"sqlite:///{tmp_path / 'console.db'}", workflows=[cart, misbehaves]) as a:
        yield a


@pytest.fixture
async def page(api: Api) -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(
            base_url=api.url, viewport={"width": 1280, "height": 900}
        )
        page = await context.new_page()
        errors: list[str] = []
        dialogs: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        yield page
        await browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"
        assert dialogs == [], f"a value ran as code: {dialogs}"


async def _ask(page: Page, name: str, args: str = "") -> None:
    await page.fill("input[name=query]", name)
    await page.fill("input[name=query_args]", args)
    await page.click("button:text('Ask')")


async def test_the_query_form_answers_escaped(api: Api, page: Page, tmp_path: Path) -> None:
    handle = await api.client.start(cart, "ada", id="cart-web")
    await handle.signal("add", MARKUP)
    for _ in range(500):
        if await handle.query("items") == [MARKUP]:
            break

    await page.goto("/runs/cart-web")
    await expect(page.locator("[data-run-status]")).to_have_text("running")
    await _ask(page, "items")
    result = page.locator("pre[data-query-result]")
    await expect(result).to_contain_text(MARKUP)  # shown as text
    await page.screenshot(path=tmp_path / "query.png", full_page=True)
    assert await page.evaluate("window.pwned") is None

    # The answer page has the form again, filled in: ask with arguments.
    await expect(page.locator("input[name=query]")).to_have_value("items")
    await _ask(page, "has", f'["{MARKUP}"]')
    await expect(result).to_have_text("true")
    await expect(page.locator("h1")).to_contain_text("Query has of cart-web")
    await _ask(page, "count", '[{"name": "nothing"}, 1]')
    await expect(result).to_have_text("false")

    await _ask(page, "nope")
    problem = page.locator("[data-query-reason]")
    await expect(problem).to_have_attribute("data-query-reason", "unknown_query")
    await expect(problem).to_contain_text("No query 'nope' of workflow 'cart' (cart-web)")
    await expect(problem).to_contain_text("it registers 'count', 'has', 'items', 'user'")
    await _ask(page, "has", "apple")
    await expect(problem).to_contain_text("The arguments are not JSON")
    await _ask(page, "has", '{"a": 1}')
    await expect(problem).to_contain_text("must be a JSON array")
    await _ask(page, "has", "[]")
    await expect(problem).to_have_attribute("data-query-reason", "refused")
    await expect(problem).to_contain_text("do not fit query 'has'")

    # Back on the run page: asking wrote nothing, and a closed run is asked all the same.
    await page.click("a:text('Back to the run')")
    await expect(page.locator("[data-run-status]")).to_have_text("running")
    await handle.signal("add", None)
    await expect(page.locator("[data-run-status]")).to_have_text("completed", timeout=15_000)
    await _ask(page, "items")
    await expect(result).to_contain_text(MARKUP)


async def test_a_query_that_raises_or_breaks_the_rules(api: Api, page: Page) -> None:
    handle = await api.client.start(misbehaves, id="bad-web")
    for _ in range(500):
        try:
            await handle.query("year")
            break
        except Exception:
            continue
    await page.goto("/runs/bad-web")
    await _ask(page, "raises")
    problem = page.locator("[data-query-reason]")
    await expect(problem).to_have_attribute("data-query-reason", "failed")
    await expect(problem).to_contain_text("raised ValueError: no such shelf")
    await _ask(page, "publish")
    await expect(problem).to_have_attribute("data-query-reason", "refused")
    await expect(problem).to_contain_text("called durable.publish()")
    await handle.signal("go")
    assert await handle.result(timeout=20) == "signalled"
