"""The ``cloaca`` command: worker, execute, executions, db — as a user types them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import APP
from click.testing import CliRunner

from cloaca.cli.main import main
from cloaca.workflows.registry import clear_registry


@pytest.fixture
def app(tmp_path: Path) -> str:
    path = tmp_path / "cli_app.py"
    path.write_text(APP)
    return str(path)


@pytest.fixture
def cli(db_url: str):
    url = db_url
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, ["--db", url, *args], catch_exceptions=False)

    return invoke


def test_execute_with_app_prints_result_and_history_lists_it(cli, app) -> None:
    result = cli("execute", "hello", "--app", app, "--context", '{"name": "ada"}', "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["status"] == "Completed"
    assert payload["final_context"]["greeting"] == "hello ada"

    listed = cli("executions", "list", "--json")
    rows = json.loads(listed.output)
    assert [r["workflow_name"] for r in rows] == ["hello"]

    shown = cli("executions", "show", payload["execution_id"], "--json")
    detail = json.loads(shown.output)
    assert detail["tasks"][0]["task"] == "greet"
    assert detail["tasks"][0]["attempts"] == 1


def test_failed_execution_exits_1_with_the_error(cli, app) -> None:
    result = cli("execute", "broken", "--app", app, "--json")
    assert result.exit_code == 1
    assert "kaboom" in json.loads(result.output)["error_message"]


def test_table_output_is_readable(cli, app) -> None:
    cli("execute", "hello", "--app", app)
    listed = cli("executions", "list")
    assert listed.exit_code == 0
    assert "hello" in listed.output and "Completed" in listed.output


def test_unknown_workflow_is_one_line_exit_1(cli) -> None:
    result = cli("execute", "nope", "--no-wait")
    assert result.exit_code == 1
    assert "not found" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_context_json_exit_1(cli) -> None:
    result = cli("execute", "hello", "--context", "{not json")
    assert result.exit_code == 1
    assert "not valid JSON" in result.output


def test_bad_database_url_exit_1() -> None:
    result = CliRunner().invoke(main, ["--db", "mysql://x", "executions", "list"])
    assert result.exit_code == 1
    assert "Unsupported database URL 'mysql://x'" in result.output


def test_usage_error_exit_2(cli) -> None:
    assert cli("executions", "list", "--limit", "zero").exit_code == 2
    assert cli("no-such-command").exit_code == 2


def test_db_migrate_and_status(cli) -> None:
    assert "schema at version" in cli("db", "migrate").output
    status = json.loads(cli("db", "status", "--json").output)
    assert status["up_to_date"] is True
    assert status["schema_version"] == status["latest_version"] >= 1


def test_run_worker_for_a_while_executes_pending_work(cli, app, tmp_path) -> None:
    # The first run records the workflow's definition in the database.
    assert cli("execute", "hello", "--app", app).exit_code == 0
    clear_registry()  # a fresh client process knows no workflows
    # A client without the app can start it, but nothing in its process runs it...
    queued = cli("execute", "hello", "--no-wait", "--context", '{"name": "queued"}')
    assert queued.exit_code == 0
    execution_id = queued.stdout.strip()  # a warning (no live worker) goes to stderr
    pending = json.loads(cli("executions", "show", execution_id, "--json").output)
    assert pending["status"] == "Pending"
    # ...until a worker with the app comes up.
    result = cli("run", app, "--for", "1")
    assert result.exit_code == 0, result.output
    assert "running on" in result.output
    done = json.loads(cli("executions", "show", execution_id, "--json").output)
    assert done["status"] == "Completed"
    assert done["final_context"]["greeting"] == "hello queued"


def test_missing_app_file_exit_1(cli, tmp_path) -> None:
    result = cli("run", str(tmp_path / "missing.py"), "--for", "0")
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_run_calls_the_apps_configure_hook(cli, tmp_path) -> None:
    app = tmp_path / "configured_app.py"
    app.write_text(
        APP
        + textwrap.dedent(
            """
            def configure(runner):
                runner.register_cron_workflow("hello", "0 3 * * *", "UTC")
            """
        )
    )
    assert cli("run", str(app), "--for", "0.2").exit_code == 0
    schedules = json.loads(cli("cron", "list", "--json").output)
    assert [(s["workflow_name"], s["cron_expression"]) for s in schedules] == [
        ("hello", "0 3 * * *")
    ]


def test_error_messages_keep_their_quotes(cli) -> None:
    assert cli("db", "migrate").exit_code == 0
    result = cli("cron", "enable", "zzz")
    assert result.exit_code == 1
    assert result.output.rstrip().endswith("'"), result.output  # the quoted example is whole


def test_run_accepts_a_module_in_the_current_directory(cli, tmp_path, monkeypatch) -> None:
    (tmp_path / "module_form_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "module_form_app", raising=False)
    result = cli("run", "module_form_app", "--for", "0.1")
    assert result.exit_code == 0, result.output
    sys.modules.pop("module_form_app", None)


@pytest.mark.parametrize(
    "args",
    [
        ("executions", "list"),
        ("executions", "show", "x"),
        ("triggers", "list"),
        ("cron", "disable", "x"),
        ("db", "status"),
        ("db", "prune", "--older-than", "30d"),
        ("execute", "hello", "--no-wait"),
    ],
)
def test_management_commands_on_a_missing_database_fail_and_create_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    path = tmp_path / "typo.db"
    result = CliRunner().invoke(main, ["--db", f"sqlite://{path}", *args])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cloaca database not found at sqlite://{path}")
    assert len(result.output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_management_commands_on_an_empty_postgres_schema_create_nothing() -> None:
    # PostgreSQL only: the SQLite form of this (a missing file) is the test above.
    from pg_support import fresh_database, run_sql

    with fresh_database() as url:
        result = CliRunner().invoke(main, ["--db", url, "triggers", "list"])
        assert result.exit_code == 1
        assert "cloaca database not found at postgresql://" in result.output
        assert run_sql(
            url,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
        ) == [(0,)]


def test_management_commands_never_insert_a_runner_row(cli, app, db_url: str) -> None:
    from pg_support import run_sql

    assert cli("execute", "hello", "--app", app).exit_code == 0  # a runner, shut down since
    clear_registry()
    for args in (("executions", "list"), ("triggers", "list"), ("cron", "list"), ("db", "status")):
        assert cli(*args).exit_code == 0
    assert cli("execute", "hello", "--no-wait").exit_code == 0
    assert run_sql(db_url, "SELECT COUNT(*) FROM cloaca_runners") == [(0,)]
