"""The console's ``/schedules`` page on a real server over each backend: every schedule
with its cron, zone, next fire times, paused or not, and recent runs linking to their
pages; user strings escaped; the page linked from the console's nav."""

from __future__ import annotations

from datetime import UTC, datetime

from serverkit import Api


async def test_the_schedules_page_lists_schedules_and_links_their_runs(api: Api) -> None:
    page = await api.http.get("/schedules")
    assert page.status_code == 200
    assert "No schedules." in page.text
    assert '<a href="/schedules">Schedules</a>' in (await api.http.get("/")).text
    client = api.client
    etl = await client.schedule(
        "hello", "ada", id="hourly-etl", cron="0 * * * *", timezone="Europe/Berlin"
    )
    await client.schedule("<script>x</script>", id="odd", cron="*/5 * * * *", paused=True)
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    [run] = await etl.backfill(start, start)
    text = (await api.http.get("/schedules")).text
    assert text.index('data-schedule="hourly-etl"') < text.index('data-schedule="odd"')
    assert "0 * * * *" in text
    assert "Europe/Berlin" in text
    first = (await etl.describe()).next_fire_times[0]
    assert first.isoformat() in text
    assert first.isoformat().endswith("+01:00")
    assert f'href="/runs/{run.id.replace(":", "%3A").replace("@", "%40")}"' in text
    assert '<span class="badge st-cancelled">paused</span>' in text  # the odd one
    assert "<script>x</script>" not in text
    assert "&lt;script&gt;x&lt;/script&gt;" in text
