"""The dashboard's actions on both backends: each is a CSRF-checked POST that changes the
database through the ManagementClient, and read-only mode refuses them all."""

from __future__ import annotations

import httpx
import pytest

from dashboard_support import dashboard, fill_small, get, post_action


def test_cancel_a_pending_execution(db_url: str) -> None:
    fill_small(db_url)
    with dashboard(db_url) as (client, base):
        execution_id = client.start("solo")  # no worker is running: it stays Pending
        page = f"/executions/{execution_id}"
        assert "Cancel" in get(base, page).text
        after = post_action(base, page, f"{page}/cancel")
        assert after.status_code == 200 and "cancelled" in after.text
        assert client.get_execution(execution_id).status == "Cancelled"
        assert "Cancel</button>" not in after.text  # nothing left to cancel


def test_disable_and_enable_a_trigger(db_url: str) -> None:
    fill_small(db_url)
    with dashboard(db_url) as (client, base):
        page = "/triggers/watcher"
        post_action(base, page, f"{page}/enabled", enabled="false")
        assert client.get_trigger_schedule("watcher")["enabled"] is False
        after = post_action(base, page, f"{page}/enabled", enabled="true")
        assert client.get_trigger_schedule("watcher")["enabled"] is True
        assert "enabled" in after.text


def test_fire_a_trigger_with_a_context(db_url: str) -> None:
    fill_small(db_url)
    with dashboard(db_url) as (client, base):
        page = "/triggers/watcher"
        after = post_action(base, page, f"{page}/fire", context='{"file": "a.csv"}')
        fired = client.get_trigger_execution_history("watcher")
        assert len(fired) == 1
        execution_id = fired[0]["workflow_execution_id"]
        assert f"fired execution {execution_id}" in after.text
        assert client.get_execution(execution_id).final_context.get("file") == "a.csv"
        again = post_action(base, page, f"{page}/fire", context='{"file": "a.csv"}')
        assert "deduplicated" in again.text  # the same context is still active


def test_fire_with_a_bad_context_says_why(db_url: str) -> None:
    fill_small(db_url)
    with dashboard(db_url) as (client, base):
        page = "/triggers/watcher"
        after = post_action(base, page, f"{page}/fire", context="[1, 2")
        assert after.status_code == 400 and "is not valid JSON" in after.text
        assert client.get_trigger_execution_history("watcher") == []


def test_disable_and_enable_a_cron_schedule(db_url: str) -> None:
    schedule_id = fill_small(db_url)
    with dashboard(db_url) as (client, base):
        page = f"/cron/{schedule_id}"
        after = post_action(base, page, f"{page}/enabled", enabled="false")
        assert client.get_cron_schedule(schedule_id)["enabled"] is False
        assert "no runs planned" in after.text
        post_action(base, page, f"{page}/enabled", enabled="true")
        assert client.get_cron_schedule(schedule_id)["enabled"] is True


@pytest.mark.parametrize("token", [None, "forged"])
def test_actions_without_the_csrf_token_are_refused(db_url: str, token: str | None) -> None:
    fill_small(db_url)
    with dashboard(db_url) as (client, base), httpx.Client(base_url=base) as http:
        http.get("/triggers/watcher")  # sets the CSRF cookie
        data = {"enabled": "false"} | ({"csrf": token} if token else {})
        refused = http.post("/triggers/watcher/enabled", data=data)
        assert refused.status_code == 403 and "CSRF" in refused.text
        assert client.get_trigger_schedule("watcher")["enabled"] is True


def test_read_only_mode_hides_and_refuses_actions(db_url: str) -> None:
    fill_small(db_url)
    with dashboard(db_url, read_only=True) as (client, base):
        html = get(base, "/triggers/watcher").text
        assert "read-only" in html and '<form method="post"' not in html
        with httpx.Client(base_url=base) as http:
            http.get("/triggers/watcher")
            refused = http.post("/triggers/watcher/fire", data={"csrf": "x"})
        assert refused.status_code == 403 and "read-only" in refused.text
        assert client.get_trigger_execution_history("watcher") == []
