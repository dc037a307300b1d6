"""``cloaca executions show``: after the task table, the traceback of every failed
attempt; ``--json`` carries each task's traceback and attempt history."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloaca.cli.main import main

APP = textwrap.dedent(
    """
    import cloaca

    calls = []

    def parse(text):
        calls.append(text)
        raise ValueError(f"bad row {len(calls)}")  # the raising line

    @cloaca.task(id="load", retry_attempts=2, retry_delay_ms=0)
    def load(context):
        parse(context.get("text", ""))

    @cloaca.task(id="fine")
    def fine(context):
        context.set("fine", True)

    cloaca.workflow("parses", [load])
    cloaca.workflow("fine", [fine])
    """
)


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Any:
    app = tmp_path / "failing_app.py"
    app.write_text(APP)
    runner = CliRunner()

    def invoke(*args: str, with_app: bool = False) -> Any:
        extra = ["--app", str(app)] if with_app else []
        return runner.invoke(main, ["--db", db_url, *args, *extra], catch_exceptions=False)

    return invoke


def _execute(cli: Any, workflow: str) -> str:
    result = cli("execute", workflow, "--json", with_app=True)
    return str(json.loads(result.output)["execution_id"])


def test_show_prints_each_failed_attempts_traceback_after_the_tasks(cli: Any) -> None:
    execution_id = _execute(cli, "parses")
    shown = cli("executions", "show", execution_id)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    first, second = text.index("attempt 1: failed"), text.index("attempt 2: failed")
    assert text.index("load") < first < second  # after the task table, in attempt order
    assert text.count("Traceback (most recent call last):") == 2
    assert text.count('raise ValueError(f"bad row {len(calls)}")  # the raising line') == 2
    assert "failing_app.py" in text and ", in parse" in text
    assert "ValueError: bad row 1" in text[first:second]
    assert "ValueError: bad row 2" in text[second:]


def test_show_json_has_tracebacks_and_the_attempt_history(cli: Any) -> None:
    execution_id = _execute(cli, "parses")
    detail = json.loads(cli("executions", "show", execution_id, "--json").output)
    [task] = detail["tasks"]
    assert (task["task"], task["status"], task["attempts"]) == ("load", "Failed", 2)
    assert task["error"] == "ValueError: bad row 2"
    assert task["traceback"].rstrip().endswith("ValueError: bad row 2")
    history = task["attempts_history"]
    assert [(a["attempt"], a["outcome"], a["error"]) for a in history] == [
        (1, "failed", "ValueError: bad row 1"),
        (2, "failed", "ValueError: bad row 2"),
    ]
    assert all("in parse" in a["traceback"] and a["runner_id"] for a in history)
    assert history[1]["traceback"] == task["traceback"]


def test_show_of_a_completed_execution_prints_no_traceback(cli: Any) -> None:
    execution_id = _execute(cli, "fine")
    shown = cli("executions", "show", execution_id)
    assert shown.exit_code == 0 and "Completed" in shown.output
    assert "Traceback" not in shown.output and "attempt 1:" not in shown.output
    detail = json.loads(cli("executions", "show", execution_id, "--json").output)
    [task] = detail["tasks"]
    assert task["traceback"] is None
    assert [a["outcome"] for a in task["attempts_history"]] == ["completed"]


def test_show_fits_100_columns_with_short_times_and_how_long_each_task_took(
    db_url: str, cli: Any
) -> None:
    execution_id = _execute(cli, "parses")
    shown = CliRunner().invoke(
        main, ["--db", db_url, "executions", "show", execution_id[:8]], env={"COLUMNS": "100"}
    )
    assert shown.exit_code == 0, shown.output
    table = [line for line in shown.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 100, shown.output
    [row] = [line for line in table if line.startswith("│")]
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[:3] == ["load", "Failed", "2"]
    assert len(cells[3]) == len("2026-12-03 14:26:29")  # to the second
    assert cells[4].endswith(("ms", "s")) and "ValueError: bad row 2" in cells[5]
    assert "attempt 1: failed at " in shown.output
