"""The console in a real browser: Playwright driving Debian's Chromium against a real
server, database and worker. Open the list, filter it, open a run and a step, send a
signal and watch the run finish live (no reload), cancel another run through its
confirmation, retry a terminated run. Screenshots of each page go to the test's temp folder.

Chromium is required in CI (``DURABLE_REQUIRE_BROWSER=1``, set by .ci/run, which installs
Debian's package); elsewhere these tests skip when it is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from serverkit import Api, running

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("DURABLE_REQUIRE_BROWSER"):
        raise RuntimeError("DURABLE_REQUIRE_BROWSER is set but Chromium is not installed")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.async_api import Page, async_playwright, expect  # noqa: E402


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running(f"sqlite:///{tmp_path / 'console.db'}") as api:
        yield api


@pytest.fixture
async def page(api: Api) -> AsyncIterator[Page]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(
            base_url=api.url, viewport={"width": 1280, "height": 900}
        )
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        await browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"


async def test_list_filter_run_step_signal_live_and_cancel(
    api: Api, page: Page, tmp_path: Path
) -> None:
    await api.start("hello", "ada", 2, id="greeting")
    await api.outcome("greeting")
    await api.start("approval", "o-7", id="order-7", tags={"customer": "acme"})
    await api.start("approval", "o-8", id="order-8")

    await page.goto("/")
    await expect(page.locator("tr[data-id]")).to_have_count(3)
    await page.screenshot(path=tmp_path / "runs.png", full_page=True)
    await page.select_option("select[name=status]", "completed")
    await page.click("button:text('Filter')")
    await expect(page.locator("tr[data-id]")).to_have_count(1)
    await expect(page.locator("tr[data-id]")).to_have_attribute("data-id", "greeting")

    await page.click("a.run-link:text('greeting')")
    await expect(page.locator("[data-run-status]")).to_have_text("completed")
    await expect(page.locator("tr[data-seq]")).to_have_count(4)
    await page.locator("tr[data-seq] a").first.click()
    await expect(page.locator(".step-detail h2")).to_contain_text("activity greet")
    await page.screenshot(path=tmp_path / "step.png", full_page=True)

    await page.goto("/runs/order-7")
    await expect(page.locator("[data-run-status]")).to_have_text("running")
    await expect(page.locator("#live-state")).to_be_visible()  # subscribed to its events
    await page.fill("input[name=name]", "approve")
    await page.fill("input[name=value]", '"yes"')
    await page.click("button:text('Send signal')")
    await expect(page.locator(".notice")).to_contain_text("Signal sent")
    # The run finishes in the worker after the page loaded: the page follows by itself.
    await expect(page.locator("[data-run-status]")).to_have_text("completed", timeout=15_000)
    await expect(page.locator("pre.result")).to_contain_text("o-7: yes")
    await page.screenshot(path=tmp_path / "signalled.png", full_page=True)

    await page.goto("/runs/order-8")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("button:text('Cancel…')")
    await expect(page.locator("[data-run-status]")).to_have_text("cancelled", timeout=15_000)
    await page.screenshot(path=tmp_path / "cancelled.png", full_page=True)


async def test_the_graph_folds_a_fan_out_into_one_node_that_expands(
    api: Api, page: Page, tmp_path: Path
) -> None:
    names = [f"n{i}" for i in range(12)]
    await api.start("fan_out", names, id="fan")
    await page.goto("/runs/fan")
    group = page.locator(".graph svg [data-group]")
    await expect(group).to_have_count(1, timeout=15_000)
    await expect(group).to_have_attribute("data-count", "12", timeout=15_000)
    await expect(page.locator(".graph svg [data-kind=signal]")).to_have_count(1, timeout=15_000)
    await page.screenshot(path=tmp_path / "graph.png", full_page=True)
    await group.click()  # expands the group: one node per item
    await expect(page.locator(".graph svg [data-kind=activity][data-seq]")).to_have_count(12)
    await page.screenshot(path=tmp_path / "graph-expanded.png", full_page=True)


async def test_a_sample_run_is_drawn_with_its_fan_out_group(tmp_path: Path) -> None:
    """samples/media_pipeline.py run for real, then its run page in the browser: the
    graph has its seven nodes — three analyses gathered into one fan-out group of 3 — and
    the step with retried attempts lists each attempt's error."""
    from samples import media_pipeline

    url = f"sqlite:///{tmp_path / 'media.db'}"
    await media_pipeline.main(url)
    async with running(url, worker=False) as api, async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(base_url=api.url, viewport={"width": 1280, "height": 900})
        await page.goto("/runs/video-keynote")
        nodes = page.locator(".graph svg [data-seq], .graph svg [data-group]")
        await expect(nodes).to_have_count(7)
        group = page.locator(".graph svg [data-group]")
        await expect(group).to_have_attribute("data-count", "3")
        await page.screenshot(path=tmp_path / "sample-run.png", full_page=True)
        await page.locator("tr[data-seq] a", has_text="recognize_faces").first.click()
        detail = page.locator(".step-detail")
        await expect(detail).to_contain_text("Attempts")
        await expect(detail.locator("table.attempts tbody tr")).to_have_count(3)
        await page.screenshot(path=tmp_path / "sample-step.png", full_page=True)
        await browser.close()


async def test_a_declined_confirmation_sends_nothing(api: Api, page: Page) -> None:
    await api.start("approval", "o-9", id="order-9")
    await page.goto("/runs/order-9")
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.click("button:text('Terminate…')")
    await page.wait_for_timeout(300)
    assert (await api.http.get("/v1/workflows/order-9")).json()["status"] in ("pending", "running")


async def test_retry_a_terminated_run_from_its_page_and_it_goes_on(
    api: Api, page: Page, tmp_path: Path
) -> None:
    await api.start("approval", "o-10", id="order-10")
    await api.client.get_handle("order-10").read("state", timeout=15)  # waiting for approval
    await api.client.get_handle("order-10").terminate("by mistake")
    await page.goto("/runs/order-10")
    await expect(page.locator("[data-run-status]")).to_have_text("terminated")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.click("button:text('Retry…')")
    await expect(page.locator(".notice")).to_contain_text("Re-opened where it stopped")
    await expect(page.locator("[data-run-status]")).to_have_text("running", timeout=15_000)
    await page.screenshot(path=tmp_path / "retried.png", full_page=True)
    await page.fill("input[name=name]", "approve")
    await page.fill("input[name=value]", '"yes"')
    await page.click("button:text('Send signal')")
    await expect(page.locator("[data-run-status]")).to_have_text("completed", timeout=15_000)
    await expect(page.locator("pre.result")).to_contain_text("o-10: yes")
