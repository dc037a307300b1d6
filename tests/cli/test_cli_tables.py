"""What ``cloaca`` prints and accepts back: tables that fit 100 columns, short ids and any
unique prefix of one, human durations and times, who started an execution, statuses in any
case, cancelling, and a warning when no worker would run what ``execute`` queues (#11)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest
from cli_support import cloaca as run_cli
from cli_support import write_app

import cloaca
from cloaca.cli.formatting import duration, timestamp
from cloaca.runner.management import ManagementClient
from cloaca.testing import Harness
from cloaca.workflows.registry import clear_registry

TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


@pytest.fixture
def recorded(db_url: str, tmp_path: Path) -> str:
    """A database where a worker once recorded the test app's workflows; this process,
    like an operator's shell, does not have their code."""
    assert run_cli("--db", db_url, "execute", "hello", "--app", write_app(tmp_path)).exit_code == 0
    clear_registry()
    return db_url


def _queue(url: str, count: int) -> list[str]:
    client = ManagementClient.open(url)
    try:
        return [client.start("hello", {"n": i}) for i in range(count)]
    finally:
        client.close()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.35, "350ms"),
        (0.0004, "0ms"),
        (1.23, "1.2s"),
        (12, "12s"),
        (123, "2m03s"),
        (3725, "1h02m"),
    ],
)
def test_durations_are_human(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_timestamps_are_to_the_second_in_local_time() -> None:
    assert TIME.fullmatch(timestamp("2026-12-03T13:05:22.123456+00:00"))
    assert timestamp("2026-12-03T13:05:22.5") == "2026-12-03 13:05:22"


def test_executions_list_fits_100_columns_with_short_ids(recorded: str) -> None:
    _queue(recorded, 3)
    listed = run_cli("--db", recorded, "executions", "list", env={"COLUMNS": "100"})
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert max(len(line) for line in lines) <= 100, listed.output
    full = [
        r["id"]
        for r in json.loads(run_cli("--db", recorded, "executions", "list", "--json").output)
    ]
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == len(full) == 4, listed.output  # one line per execution: nothing wraps
    for row, execution_id in zip(rows, full, strict=True):
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[0] == execution_id[:8]
        assert execution_id not in listed.output
        assert TIME.fullmatch(cells[4]), cells
    completed = [c.strip() for c in rows[-1].strip("│").split("│")]
    assert completed[2] == "Completed" and re.fullmatch(r"\d+ms|\d+\.\ds", completed[5])
    wide = run_cli("--db", recorded, "executions", "list", "--wide")
    assert all(execution_id in wide.output for execution_id in full)


def test_any_unique_prefix_is_accepted_and_an_ambiguous_one_lists_candidates(
    recorded: str,
) -> None:
    ids = _queue(recorded, 17)  # 17 ids over 16 hex digits: two share their first character
    by_first: dict[str, list[str]] = defaultdict(list)
    for execution_id in ids:
        by_first[execution_id[0]].append(execution_id)
    shared = next(group for group in by_first.values() if len(group) > 1)

    target = ids[5]
    shown = run_cli("--db", recorded, "executions", "show", target[:8], "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["execution_id"] == target
    assert run_cli("--db", recorded, "executions", "show", target.upper()[:10]).exit_code == 0

    ambiguous = run_cli("--db", recorded, "executions", "show", shared[0][0])
    assert ambiguous.exit_code == 1
    assert f"execution id prefix {shared[0][0]!r} is ambiguous" in ambiguous.output
    assert all(candidate in ambiguous.output for candidate in sorted(shared)[:10])
    assert len(ambiguous.output.strip().splitlines()) == 1

    missing = run_cli("--db", recorded, "executions", "show", "0000000000")
    assert missing.exit_code == 1 and "no execution id starts with '0000000000'" in missing.output


def test_cron_ids_accept_a_prefix(recorded: str) -> None:
    added = run_cli("--db", recorded, "cron", "add", "hello", "0 2 * * *")
    schedule_id = added.output.strip()
    listed = run_cli("--db", recorded, "cron", "list")
    assert schedule_id[:8] in listed.output and schedule_id not in listed.output
    assert run_cli("--db", recorded, "cron", "disable", schedule_id[:8]).exit_code == 0
    rows = json.loads(run_cli("--db", recorded, "cron", "list", "--json").output)
    assert [(r["id"], r["enabled"]) for r in rows] == [(schedule_id, False)]
    assert run_cli("--db", recorded, "cron", "history", schedule_id[:6]).exit_code == 0
    assert run_cli("--db", recorded, "cron", "delete", schedule_id[:8]).exit_code == 0
    assert json.loads(run_cli("--db", recorded, "cron", "list", "--json").output) == []


def test_executions_list_says_what_started_each_run_and_filters_on_it(
    backend: str, db_url: str
) -> None:
    @cloaca.task(id="noop")
    def noop(context: cloaca.Context) -> None:
        return None

    cloaca.workflow("nightly", [noop])

    @cloaca.trigger(name="inbox", poll_interval="5s")
    def inbox() -> cloaca.TriggerResult:
        return cloaca.TriggerResult.fire({"file": "a.csv"})

    with Harness(db_url) as h:
        h.runner.register_trigger("inbox", "nightly")
        schedule_id = h.runner.register_cron_workflow("nightly", "* * * * *", "UTC")
        h.runner.start("nightly")
        h.advance(60)
    listed = run_cli("--db", db_url, "executions", "list")
    assert "trigger inbox" in listed.output
    assert f"cron {schedule_id[:8]}" in listed.output
    assert "manual" in listed.output
    for started_by, shown in (
        ("trigger", "trigger inbox"),
        ("CRON", f"cron {schedule_id[:8]}"),
        ("manual", "manual"),
    ):
        rows = json.loads(
            run_cli(
                "--db", db_url, "executions", "list", "--started-by", started_by, "--json"
            ).output
        )
        assert rows and {r["started_by"] for r in rows} == {
            {"trigger": "trigger", "CRON": "cron", "manual": "api"}[started_by]
        }
        assert (
            shown
            in run_cli("--db", db_url, "executions", "list", "--started-by", started_by).output
        )


def test_status_is_case_insensitive_and_a_bad_one_lists_the_accepted(
    recorded: str, tmp_path: Path
) -> None:
    app = write_app(tmp_path)
    assert run_cli("--db", recorded, "execute", "broken", "--app", app).exit_code == 1
    failed = json.loads(
        run_cli("--db", recorded, "executions", "list", "--status", "failed", "--json").output
    )
    assert [r["workflow_name"] for r in failed] == ["broken"]
    bad = run_cli("--db", recorded, "executions", "list", "--status", "broke")
    assert bad.exit_code == 2
    for status in ("pending", "running", "completed", "failed", "cancelled"):
        assert status in bad.output.lower()


def test_cancel_a_pending_execution_by_prefix_then_again_is_exit_1(recorded: str) -> None:
    (execution_id,) = _queue(recorded, 1)
    cancelled = run_cli("--db", recorded, "executions", "cancel", execution_id[:8])
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.output.strip() == f"execution {execution_id} cancelled"
    shown = json.loads(
        run_cli("--db", recorded, "executions", "show", execution_id, "--json").output
    )
    assert shown["status"] == "Cancelled"
    assert {t["status"] for t in shown["tasks"]} <= {"Cancelled", "Skipped", "NotStarted"}
    again = run_cli("--db", recorded, "executions", "cancel", execution_id)
    assert again.exit_code == 1
    assert f"execution {execution_id} is already Cancelled: nothing to cancel" in again.output
    unknown = run_cli(
        "--db", recorded, "executions", "cancel", "ffffffff-ffff-ffff-ffff-ffffffffffff"
    )
    assert unknown.exit_code == 1 and "not found" in unknown.output


def test_execute_without_a_live_worker_warns_and_still_honours_timeout(recorded: str) -> None:
    result = run_cli("--db", recorded, "execute", "hello", "--timeout", "0.3")
    assert result.exit_code == 1
    assert "no live worker on this database" in result.stderr
    assert "will run when `cloaca run APP` starts" in result.stderr
    # The execution is queued, not lost: it is Pending.
    rows = json.loads(run_cli("--db", recorded, "executions", "list", "--json").output)
    assert [r["status"] for r in rows] == ["Pending", "Completed"]


def test_execute_with_a_live_worker_does_not_warn(db_url: str, tmp_path: Path) -> None:
    from cli_support import APP

    exec(compile(APP, "app", "exec"), {})  # this process's worker knows the workflows
    with cloaca.DefaultRunner(db_url):
        result = run_cli("--db", db_url, "execute", "hello", "--json", "--timeout", "20")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "Completed"
    assert "Warning" not in result.stderr
