"""A person's walk through the dashboard in headless Chromium (Debian's package, driven by
Playwright): every page by its links, an action and its effect, the live refresh. The
walk runs on SQLite; one PostgreSQL page shows the same. Screenshots of the main pages go
to ``$CLOACA_SCREENSHOTS`` (``docs/img`` refreshes the README's) or the test's tmp dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard_support import TRIGGER, Site, dashboard, fill_small


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CLOACA_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("backend", ["sqlite"])
def test_walk_through_every_page(site: Site, page: Any, tmp_path: Path) -> None:
    base, made = site.base, site.made
    shots = _shots(tmp_path)
    page.goto(base + "/")
    assert page.url.endswith("/executions")
    assert page.locator("table.list tbody tr").count() >= len(made.completed)
    page.screenshot(path=str(shots / "executions.png"), full_page=True)

    page.select_option("select[name=status]", "Failed")
    page.click("text=Filter")
    page.wait_for_url("**status=Failed**")
    page.click(f"a[href='/executions/{made.failed[0]}']")
    page.wait_for_selector("text=cannot parse row 17")
    assert page.locator(".timeline .row").count() == 4
    assert page.locator("table.attempts tbody tr:not(.traceback)").count() == 3  # 3 attempts
    assert not page.locator("details pre").first.is_visible()  # folded until asked for
    page.click("text=Traceback of attempt 3")
    shown = page.locator("details[open] pre").first
    assert shown.is_visible()
    # The raising line of the task body, as a person reads it in the unfolded traceback.
    assert 'raise ValueError(f"cannot parse row 17' in shown.inner_text()
    page.screenshot(path=str(shots / "execution.png"), full_page=True)

    page.click("header >> text=Workflows")
    page.click("a[href='/workflows/nightly_etl']")
    assert page.locator("svg .node").count() == 4
    page.screenshot(path=str(shots / "workflow.png"), full_page=True)

    page.click("header >> text=Triggers")
    page.click(f"table >> a[href='/triggers/{TRIGGER}']")
    page.wait_for_selector("text=inbox share not mounted")
    assert page.locator(".strip .mark.o-fired").count() > 0
    page.screenshot(path=str(shots / "trigger.png"), full_page=True)

    page.click("header >> text=Cron")
    page.click(f"a[href='/cron/{made.cron_schedule_id}']")
    assert page.locator("ol.upcoming li").count() == 5
    page.screenshot(path=str(shots / "cron.png"), full_page=True)

    page.click("header >> text=Runners")
    page.wait_for_selector("text=No runner is alive")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_disable_a_trigger_and_fire_it_from_the_browser(db_url: str, page: Any) -> None:
    fill_small(db_url)
    with dashboard(db_url) as (client, base):
        page.goto(base + "/triggers/watcher")
        page.click("button:has-text('Disable')")
        page.wait_for_selector("text=disabled")
        assert client.get_trigger_schedule("watcher")["enabled"] is False
        page.fill("input[name=context]", '{"file": "b.csv"}')
        page.click("button:has-text('Fire now')")
        page.wait_for_selector("text=fired execution")
        fired = client.get_trigger_execution_history("watcher")
        assert len(fired) == 1
        execution_id = fired[0]["workflow_execution_id"]
        page.click(f"a[href='/executions/{execution_id}'] >> nth=0")
        page.wait_for_selector(f"text={execution_id}")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_live_refresh_shows_new_executions(db_url: str, page: Any) -> None:
    fill_small(db_url)
    with dashboard(db_url, refresh_seconds=0.3) as (client, base):
        page.goto(base + "/executions")
        page.wait_for_selector("text=No executions")
        execution_id = client.start("solo")
        page.wait_for_selector(f"a[href='/executions/{execution_id}']")


@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_smoke_page(site: Site, page: Any) -> None:
    base, made = site.base, site.made
    page.goto(f"{base}/executions/{made.failed[0]}")
    page.wait_for_selector("text=cannot parse row 17")
    page.click("header >> text=Triggers")
    page.wait_for_selector(f"text={TRIGGER}")
