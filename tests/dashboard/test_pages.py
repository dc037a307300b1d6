"""Every dashboard page over HTTP against a database filled by a real runner, on both
backends: what each page shows, the filters, keyset paging, bad input."""

from __future__ import annotations

from html import unescape

import pytest

import cloaca
from cloaca.testing import Harness
from dashboard_support import TRIGGER, Site, dashboard, get


def test_executions_page_lists_newest_first_with_origin(site: Site) -> None:
    client, base, made = site.client, site.base, site.made
    page = get(base, "/executions")
    assert page.status_code == 200
    html = page.text
    newest = client.list_executions(limit=1)[0]["id"]
    assert html.index(newest[:8]) < html.index(made.completed[0][:8])
    assert f"trigger {TRIGGER}" in html
    assert f'href="/cron/{made.cron_schedule_id}"' in html
    assert "cannot parse row 17" in html  # the failed execution's error


@pytest.mark.parametrize(
    ("query", "shown", "hidden"),
    [
        ("status=Failed", "failed", "completed"),
        ("started_by=api", "completed", "trigger_fired"),
        ("started_by=trigger", "trigger_fired", "completed"),
        ("workflow=file_processing", "trigger_fired", "failed"),
    ],
)
def test_executions_filters(site: Site, query: str, shown: str, hidden: str) -> None:
    client, base, made = site.client, site.base, site.made
    fired = [e["id"] for e in client.list_executions(workflow_name="file_processing")]
    groups = {"failed": made.failed, "completed": made.completed, "trigger_fired": fired}
    html = get(base, f"/executions?{query}").text
    assert fired, "the trigger never fired: the filler changed?"
    assert all(f"/executions/{e}" in html for e in groups[shown])
    assert not any(f"/executions/{e}" in html for e in groups[hidden])


def test_executions_keyset_pages_cover_everything_once(site: Site) -> None:
    client = site.client
    every = [e["id"] for e in client.list_executions(limit=1000)]
    seen: list[str] = []
    before = None
    while page := client.list_executions_page(None, None, None, before, 4):
        seen += [e["id"] for e in page]
        before = page[-1]["id"]
    assert seen == every


def test_executions_page_links_the_next_page(site: Site) -> None:
    client, base = site.client, site.base
    ids = [e["id"] for e in client.list_executions(limit=1000)]
    assert len(ids) > 2
    html = get(base, f"/executions?before={ids[0]}").text
    assert f"/executions/{ids[1]}" in html and f'/executions/{ids[0]}"' not in html
    assert "newest" in html


def test_execution_page_shows_tasks_errors_and_contexts(site: Site) -> None:
    base, made = site.base, site.made
    html = get(base, f"/executions/{made.failed[0]}").text
    for task_id in ("extract", "transform", "load", "report"):
        assert task_id in html
    assert "ValueError: cannot parse row 17" in html
    # Every attempt of the failed task, each with the traceback of its raising line.
    assert html.count("Traceback of attempt") == 3
    assert html.count("raise ValueError(f&#34;cannot parse row 17") == 3
    assert html.count("dashboard_support.py") == 3
    assert '"fail": true' in html  # input context
    assert '"rows": 120' in html  # final context
    assert 'class="bar s-completed"' in html and 'class="bar s-failed"' in html


def test_workflow_pages(site: Site) -> None:
    base = site.base
    listing = get(base, "/workflows").text
    assert "nightly_etl" in listing and "file_processing" in listing
    html = get(base, "/workflows/nightly_etl").text
    assert html.count('class="node"') == 4
    assert html.count('class="edge"') == 3
    assert "declares no inputs" in html


def test_trigger_pages_show_why_it_did_or_did_not_fire(site: Site) -> None:
    client, base = site.client, site.base
    listing = get(base, "/triggers").text
    assert TRIGGER in listing and "enabled" in listing
    html = get(base, f"/triggers/{TRIGGER}").text
    outcomes = {e["outcome"] for e in client.get_trigger_evaluations(TRIGGER, 100)}
    assert outcomes >= {"fired", "skipped", "error"}
    assert "ConnectionError: inbox share not mounted" in html
    assert "poll returned skip" in html
    assert html.count('class="mark o-') == len(client.get_trigger_evaluations(TRIGGER, 100))
    fired = client.get_trigger_execution_history(TRIGGER)[0]["workflow_execution_id"]
    assert f"/executions/{fired}" in html


def test_cron_pages_show_next_runs_and_history(site: Site) -> None:
    client, base, made = site.client, site.base, site.made
    assert "*/5 * * * *" in get(base, "/cron").text
    html = get(base, f"/cron/{made.cron_schedule_id}").text
    assert "Next runs" in html and html.count("<li>") == 5
    history = client.get_cron_execution_history(made.cron_schedule_id)
    assert history
    assert all(f"/executions/{h['workflow_execution_id']}" in html for h in history)


def test_runners_page_lists_live_runners(site: Site) -> None:
    client, base = site.client, site.base
    html = get(base, "/runners").text
    assert "No runner is alive" in html  # the filler's runner has shut down
    assert client.list_runners() == []


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/executions/no-such-id", 404, "no-such-id"),
        ("/executions?status=Done", 400, "'Done' is not one of"),
        ("/executions?started_by=robot", 400, "'robot' is not one of"),
        ("/workflows/nope", 404, "'nope' not found"),
        ("/triggers/nope", 404, "'nope' not found"),
        ("/cron/not-a-schedule", 404, "not-a-schedule"),
    ],
)
def test_bad_addresses_get_a_clear_page(site: Site, path: str, status: int, says: str) -> None:
    base = site.base
    page = get(base, path)
    assert page.status_code == status
    assert says in unescape(page.text)


def test_trigger_page_says_why_a_failed_context_is_backing_off(db_url: str) -> None:
    @cloaca.task(id="process", retry_attempts=1)
    def process(context: cloaca.Context) -> None:
        raise RuntimeError("bad file")

    cloaca.workflow("fragile", [process])

    @cloaca.trigger(name="stuck_file", poll_interval="5s")
    def stuck_file() -> cloaca.TriggerResult:
        return cloaca.TriggerResult.fire({"filename": "bad.csv"})

    with Harness(db_url) as h:
        h.runner.register_trigger(stuck_file, "fragile")
        h.advance(10)
        [failed] = h.runner.list_executions()
    with dashboard(db_url) as (_, base):
        html = get(base, "/triggers/stuck_file").text
    assert "back off, longer after each failure" in html
    assert 'class="outcome o-backing_off">backing_off' in html
    assert f"(execution {failed['id']}" in html
    assert "next refire after 2026-01-01T00:00:30Z" in html
