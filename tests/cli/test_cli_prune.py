"""``cloaca db prune --older-than ... [--dry-run] [--json]`` as a user types it, on both
backends. History is made on the fake clock at 2026-01-01; the command runs on the real
clock, so everything made is "older than" any cutoff below a few hours."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

import cloaca
from cloaca import Context
from cloaca.cli.main import main
from cloaca.runner.management import ManagementClient
from cloaca.testing import FakeClock, Harness


def run(url: str, *args: str):
    return CliRunner().invoke(main, ["--db", url, "db", "prune", *args], catch_exceptions=False)


@pytest.fixture
def url(db_url: str) -> str:
    """Two finished executions made long ago and one made just now (on the real time)."""

    @cloaca.task(id="ok")
    def ok(context: Context) -> None:
        return None

    cloaca.workflow("ok_wf", [ok])
    with Harness(db_url) as h:
        h.execute("ok_wf")
        h.execute("ok_wf")
    now = datetime.now(UTC)
    with Harness(db_url, clock=FakeClock(now - timedelta(minutes=5))) as h:
        h.execute("ok_wf")
    return db_url


def _executions(url: str) -> int:
    with ManagementClient.open(url) as client:
        return len(client.list_executions(limit=100))


def test_a_dry_run_counts_and_deletes_nothing_then_prune_deletes(url: str) -> None:
    dry = run(url, "--older-than", "1h", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    payload = json.loads(dry.output)
    assert payload["dry_run"] is True and payload["older_than"] == "1h"
    assert payload["deleted"]["executions"] == 2
    assert payload["deleted"]["task_executions"] == 2
    assert _executions(url) == 3
    done = run(url, "--older-than", "1h", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["deleted"] == payload["deleted"]
    assert _executions(url) == 2 - 2 + 1
    again = json.loads(run(url, "--older-than", "1h", "--json").output)
    assert set(again["deleted"].values()) == {0}


def test_the_table_says_what_was_deleted(url: str) -> None:
    dry = run(url, "--older-than", "90m", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would delete" in dry.output and "executions" in dry.output
    assert "dry run: nothing was deleted" in dry.output
    done = run(url, "--older-than", "3600s")
    assert "deleted" in done.output and "task_executions" in done.output
    assert _executions(url) == 1


@pytest.mark.parametrize("age", ["3650d", "87600h"])
def test_every_unit_is_accepted_and_a_long_age_keeps_everything(url: str, age: str) -> None:
    result = run(url, "--older-than", age, "--json")
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["deleted"].values()) == {0}
    assert _executions(url) == 3


@pytest.mark.parametrize("bad", ["30", "30 days", "1w", "0d", "-5h", "1.5h", "d"])
def test_a_bad_duration_exits_1_naming_it_and_the_accepted_forms(url: str, bad: str) -> None:
    result = run(url, "--older-than", bad)
    assert result.exit_code == 1
    assert f"--older-than {bad!r}" in result.output
    assert "30d (days), 12h (hours), 90m (minutes) or 3600s (seconds)" in result.output
    assert "Traceback" not in result.output
    assert _executions(url) == 3


def test_older_than_is_required(url: str) -> None:
    result = run(url)
    assert result.exit_code == 2
    assert "--older-than" in result.output
