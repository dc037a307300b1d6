"""``cloaca cron ...`` and ``cloaca triggers ...`` from a management process."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import cloaca
from cloaca.cli.main import main
from cloaca.testing import Harness
from cloaca.workflows.registry import clear_registry


@pytest.fixture
def url(db_url: str) -> str:
    db = db_url

    @cloaca.task(id="noop")
    def noop(context: cloaca.Context) -> None:
        return None

    cloaca.workflow("nightly", [noop])
    # A worker process once recorded the workflow's definition.
    cloaca.DefaultRunner(db, cloaca.DefaultRunnerConfig(enable_cron_scheduling=False)).shutdown()
    # The CLI process, like a management shell, does not have the workflow's code: what it
    # starts waits for a worker instead of running inside the command.
    clear_registry()
    return db


def run(url: str, *args: str):
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def test_cron_add_list_disable_enable_delete(url: str) -> None:
    added = run(url, "cron", "add", "nightly", "0 2 * * *", "--tz", "Europe/Berlin")
    assert added.exit_code == 0, added.output
    schedule_id = added.output.strip()

    rows = json.loads(run(url, "cron", "list", "--json").output)
    assert [(r["id"], r["timezone"], r["enabled"]) for r in rows] == [
        (schedule_id, "Europe/Berlin", True)
    ]
    table = run(url, "cron", "list").output
    assert "0 2 * * *" in table and "Europe/Berlin" in table

    assert run(url, "cron", "disable", schedule_id).exit_code == 0
    assert json.loads(run(url, "cron", "list", "--json").output)[0]["enabled"] is False
    assert run(url, "cron", "enable", schedule_id).exit_code == 0
    assert json.loads(run(url, "cron", "list", "--json").output)[0]["enabled"] is True
    assert json.loads(run(url, "cron", "history", schedule_id, "--json").output) == []

    assert run(url, "cron", "delete", schedule_id).exit_code == 0
    assert json.loads(run(url, "cron", "list", "--json").output) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cron", "add", "nightly", "61 * * * *"], "Invalid cron expression"),
        (["cron", "add", "nightly", "0 2 * * *", "--tz", "Mars/Olympus"], "Invalid timezone"),
        (["cron", "add", "missing", "0 2 * * *"], "not found"),
        (["cron", "enable", "not-a-uuid"], "Invalid schedule ID"),
    ],
)
def test_cron_user_errors_are_one_line_exit_1(url: str, args: list[str], message: str) -> None:
    result = run(url, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_cron_catchup_choice_is_a_usage_error(url: str) -> None:
    assert run(url, "cron", "add", "nightly", "0 2 * * *", "--catchup", "sometimes").exit_code == 2


def test_triggers_list_show_disable_enable_fire_history_evaluations(url: str) -> None:
    with cloaca.DefaultRunner(
        url, cloaca.DefaultRunnerConfig(enable_trigger_scheduling=False)
    ) as r:

        @cloaca.trigger(name="inbox", poll_interval="5s")
        def inbox() -> bool:
            return False

        r.register_trigger("inbox", "nightly")
    cloaca.triggers.definition.unregister_trigger("inbox")  # the CLI process does not have the code

    rows = json.loads(run(url, "triggers", "list", "--json").output)
    assert [(r["trigger_name"], r["workflow_name"], r["enabled"]) for r in rows] == [
        ("inbox", "nightly", True)
    ]
    assert "inbox" in run(url, "triggers", "list").output
    assert (
        json.loads(run(url, "triggers", "show", "inbox", "--json").output)["poll_interval_ms"]
        == 5000
    )

    assert run(url, "triggers", "disable", "inbox").output.strip() == "trigger inbox disabled"
    assert json.loads(run(url, "triggers", "show", "inbox", "--json").output)["enabled"] is False
    assert run(url, "triggers", "enable", "inbox").exit_code == 0

    fired = run(url, "triggers", "fire", "inbox", "--context", '{"file": "a.csv"}')
    assert fired.exit_code == 0, fired.output
    execution_id = fired.output.strip()
    again = run(url, "triggers", "fire", "inbox", "--context", '{"file": "a.csv"}')
    assert "deduplicated" in again.output  # nobody ran the first one yet: still active

    history = json.loads(run(url, "triggers", "history", "inbox", "--json").output)
    assert [h["workflow_execution_id"] for h in history] == [execution_id]
    outcomes = [
        e["outcome"]
        for e in json.loads(run(url, "triggers", "evaluations", "inbox", "--json").output)
    ]
    assert sorted(outcomes) == ["deduplicated", "fired"]


def test_unknown_trigger_is_one_line_exit_1(url: str) -> None:
    for args in (["triggers", "show", "nope"], ["triggers", "disable", "nope"]):
        result = run(url, *args)
        assert result.exit_code == 1
        assert "nope" in result.output and "Traceback" not in result.output


def test_triggers_show_and_list_the_failed_run_policy_and_evaluations_say_why(url: str) -> None:
    @cloaca.task(id="process", retry_attempts=1)
    def process(context: cloaca.Context) -> None:
        raise RuntimeError("bad file")

    cloaca.workflow("fragile", [process])

    @cloaca.trigger(name="stuck_file", poll_interval="5s", on_failed_run="hold")
    def stuck_file() -> cloaca.TriggerResult:
        return cloaca.TriggerResult.fire({"filename": "bad.csv"})

    with Harness(url) as h:
        h.runner.register_trigger(stuck_file, "fragile")
        h.advance(5)
    shown = json.loads(run(url, "triggers", "show", "stuck_file", "--json").output)
    assert shown["on_failed_run"] == "hold"
    assert "on_failed_run" in run(url, "triggers", "list").output
    [held, fired] = json.loads(run(url, "triggers", "evaluations", "stuck_file", "--json").output)
    assert (held["outcome"], fired["outcome"]) == ("held", "fired")
    assert "held until a manual fire" in held["message"]
    table = run(url, "triggers", "evaluations", "stuck_file").output
    assert "held" in table
