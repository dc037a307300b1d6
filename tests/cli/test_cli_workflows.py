"""``cloaca workflows list|show``: recorded definitions with their declared inputs, read by a
management process that does not have the workflow's code."""

from __future__ import annotations

import json

from click.testing import CliRunner

import cloaca
from cloaca.cli.main import main
from cloaca.workflows.registry import clear_registry


def _record_etl(url: str) -> None:
    @cloaca.workflow_params(source=str, limit=(int, 100))
    @cloaca.task(id="extract")
    def extract(context: cloaca.Context) -> None:
        return None

    @cloaca.task(id="load", dependencies=["extract"], retry_attempts=3)
    def load(context: cloaca.Context) -> None:
        return None

    cloaca.workflow("etl", [extract, load])
    cloaca.DefaultRunner(url, cloaca.DefaultRunnerConfig(enable_cron_scheduling=False)).shutdown()
    clear_registry()


def run(url: str, *args: str):
    return CliRunner().invoke(main, ["--db", url, *args], catch_exceptions=False)


def test_workflows_list_and_show_give_tasks_and_declared_inputs(db_url: str) -> None:
    _record_etl(db_url)
    listed = run(db_url, "workflows", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (etl,) = json.loads(listed.output)
    assert etl["name"] == "etl"
    assert etl["params"] == {"limit": {"type": "int", "default": 100}, "source": {"type": "str"}}
    assert [(t["id"], t["dependencies"]) for t in etl["tasks"]] == [
        ("extract", []),
        ("load", ["extract"]),
    ]

    table = run(db_url, "workflows", "list")
    assert "etl" in table.output and "limit, source" in table.output

    shown = run(db_url, "workflows", "show", "etl")
    assert shown.exit_code == 0, shown.output
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in shown.output.splitlines()]
    assert ["load", "extract", str(etl["tasks"][1]["max_attempts"])] in rows, shown.output
    assert ["source", "str", "yes", "-"] in rows, shown.output
    assert ["limit", "int", "no", "100"] in rows, shown.output


def test_workflows_show_of_an_unknown_name_says_so(db_url: str) -> None:
    _record_etl(db_url)
    result = CliRunner().invoke(main, ["--db", db_url, "workflows", "show", "nope"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: workflow 'nope' is not recorded in this database"


def test_execute_checks_declared_inputs_before_anything_is_queued(db_url: str) -> None:
    _record_etl(db_url)
    bad = CliRunner().invoke(
        main, ["--db", db_url, "execute", "etl", "--no-wait", "--context", '{"limit": "x"}']
    )
    assert bad.exit_code == 1
    assert bad.output.startswith("Error: ")
    assert "source" in bad.output and "limit" in bad.output, bad.output
    assert json.loads(run(db_url, "executions", "list", "--json").output) == []
