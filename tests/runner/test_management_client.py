"""ManagementClient: reads and admin writes next to live runners, with no engine of its own
and no runner row; it never creates a database unless asked."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig, TriggerResult
from cloaca.runner.database import mask_url
from cloaca.runner.management import ManagementClient
from pg_support import drop_schema, require_postgres, run_sql

FAST = DefaultRunnerConfig(scheduler_poll_interval_ms=20)


class Once(cloaca.Trigger):
    """Never fires on its own within a test (one poll an hour)."""

    poll_interval = "1h"

    def poll(self) -> TriggerResult:
        return TriggerResult.skip()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Registers ``greet`` (quick) and ``hold`` (blocks until the event is set)."""
    gate = threading.Event()

    @cloaca.task(id="greet")
    def greet(context: Context) -> None:
        context.set("greeting", f"hello {context.get('name', 'world')}")

    @cloaca.task(id="wait_for_gate", dependencies=[])
    def wait_for_gate(context: Context) -> None:
        gate.wait(10)

    @cloaca.task(id="after_gate", dependencies=["wait_for_gate"])
    def after_gate(context: Context) -> None:
        return None

    cloaca.workflow("greet", [greet], description="says hello")
    cloaca.workflow("hold", [wait_for_gate, after_gate])
    yield gate
    gate.set()


def test_a_client_next_to_a_live_runner_starts_lists_shows_and_cancels(
    db_url: str, release: threading.Event
) -> None:
    with DefaultRunner(db_url, FAST) as runner, ManagementClient.open(db_url) as client:
        # A start from the client is run by the runner's workers (NOTIFY / data_version).
        execution_id = client.start("greet", {"name": "ada"})
        result = client.wait(execution_id, timeout=10)
        assert result.status == "Completed"
        assert result.final_context.get("greeting") == "hello ada"
        assert client.get_execution(execution_id) == runner.get_execution(execution_id)
        assert client.list_executions() == runner.list_executions()
        assert [r["id"] for r in client.list_executions(workflow_name="greet")] == [execution_id]

        held = client.start("hold")
        assert client.cancel_execution(held) is True
        release.set()
        assert runner.wait(held, timeout=10).status == "Cancelled"
        assert client.cancel_execution(held) is False  # already terminal

        [workflow] = [w for w in client.list_workflows() if w["name"] == "greet"]
        assert workflow["description"] == "says hello"
        assert workflow["tasks"] == [
            {"id": "greet", "dependencies": [], "max_attempts": 3, "trigger_rules": None}
        ]
        [hold] = [w for w in client.list_workflows() if w["name"] == "hold"]
        assert hold["tasks"][1]["dependencies"] == ["wait_for_gate"]

        # Only the runner has a row; the client never inserted one. The cancelled task's
        # plain def body was released: it ends (and its claim with it) a moment later.
        deadline = time.monotonic() + 10
        while (row := client.list_runners()[0])["running_tasks"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [r["id"] for r in client.list_runners()] == [runner.runner_id]
        assert row["pid"] == os.getpid()
        assert row["running_tasks"] == 0 and row["trigger_leases"] == 0
        current, latest = client.schema_version()
        assert current == latest >= 1


def test_a_client_fires_and_toggles_triggers_and_manages_cron(
    db_url: str, release: threading.Event
) -> None:
    with DefaultRunner(db_url, FAST) as runner, ManagementClient.open(db_url) as client:
        runner.register_trigger(Once(name="nightly_check"), "greet")
        [schedule] = client.list_trigger_schedules()  # (the runner may be polling it now)
        assert schedule["id"] == runner.get_trigger_schedule("nightly_check")["id"]
        assert (schedule["trigger_name"], schedule["workflow_name"]) == ("nightly_check", "greet")

        client.set_trigger_enabled("nightly_check", False)
        assert runner.get_trigger_schedule("nightly_check")["enabled"] is False
        client.set_trigger_enabled("nightly_check", True)
        assert runner.get_trigger_schedule("nightly_check")["enabled"] is True

        fired = client.fire_trigger("nightly_check", {"name": "trigger"})
        assert fired is not None
        assert runner.wait(fired, timeout=10).final_context.get("greeting") == "hello trigger"
        [fire] = client.get_trigger_execution_history("nightly_check")
        assert fire["workflow_execution_id"] == fired
        evaluations = client.get_trigger_evaluations("nightly_check")
        assert [e["message"] for e in evaluations if e["outcome"] == "fired"] == ["manual fire"]

        schedule_id = client.register_cron_workflow("greet", "0 3 * * *")
        assert runner.get_cron_schedule(schedule_id)["cron_expression"] == "0 3 * * *"
        client.update_cron_schedule(schedule_id, "0 4 * * *")
        client.set_cron_schedule_enabled(schedule_id, False)
        assert runner.list_cron_schedules() == client.list_cron_schedules()
        assert client.get_cron_schedule(schedule_id)["enabled"] is False
        assert client.get_cron_execution_history(schedule_id) == []
        assert client.get_cron_execution_stats("2020-01-01T00:00:00Z")["total_executions"] == 0
        client.delete_cron_schedule(schedule_id)
        assert runner.list_cron_schedules() == []

        assert [r["id"] for r in client.list_runners()] == [runner.runner_id]


def test_unknown_names_and_closed_clients_raise(db_url: str) -> None:
    DefaultRunner(db_url).shutdown()  # creates the tables
    client = ManagementClient.open(db_url)
    with pytest.raises(ValueError, match="'nope' not found"):
        client.start("nope")
    with pytest.raises(ValueError, match="not found"):
        client.set_trigger_enabled("nope", True)
    assert client.list_runners() == []
    client.close()
    client.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        client.list_executions()


def test_opening_a_missing_sqlite_file_raises_and_creates_nothing(tmp_path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(ValueError, match=f"not found at sqlite://{path}"):
        ManagementClient.open(f"sqlite://{path}")
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_opening_a_sqlite_file_without_cloaca_tables_raises_and_leaves_it(tmp_path) -> None:
    path = tmp_path / "other.db"
    run_sql(f"sqlite://{path}", "CREATE TABLE mine (x INTEGER)")
    with pytest.raises(ValueError, match="holds no cloaca tables"):
        ManagementClient.open(f"sqlite://{path}")
    tables = run_sql(f"sqlite://{path}", "SELECT name FROM sqlite_master WHERE type = 'table'")
    assert tables == [("mine",)]


def test_create_true_creates_and_migrates(db_url: str) -> None:
    with ManagementClient.open(db_url, create=True) as client:
        current, latest = client.schema_version()
        assert current == latest >= 1
        assert client.migrate() == latest
        assert client.list_workflows() == [] and client.list_runners() == []
    with ManagementClient.open(db_url) as reopened:  # now it exists
        assert reopened.list_executions() == []


def test_opening_a_postgres_schema_without_tables_raises_and_creates_nothing() -> None:
    url = require_postgres()
    empty = "cloaca_mc_empty_schema"
    missing = "cloaca_mc_missing_schema"
    drop_schema(url, missing)
    run_sql(url, f'CREATE SCHEMA IF NOT EXISTS "{empty}"')
    try:
        with pytest.raises(ValueError, match=f"schema '{empty}'"):
            ManagementClient.open(url, schema=empty)
        with pytest.raises(ValueError, match="not found at postgresql://"):
            ManagementClient.open(url, schema=missing)
        count = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :schema"
        assert run_sql(url, count, {"schema": empty}) == [(0,)]
        exists = "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = :schema"
        assert run_sql(url, exists, {"schema": missing}) == [(0,)]
        with ManagementClient.open(url, schema=empty, create=True) as client:
            assert client.list_executions() == []
    finally:
        drop_schema(url, empty)


def test_error_messages_mask_passwords() -> None:
    assert mask_url("postgresql://bob:s3cret@db.example:5433/app?x=1") == (
        "postgresql://bob:***@db.example:5433/app?x=1"
    )
    assert mask_url("postgresql://bob@db/app") == "postgresql://bob@db/app"
    assert mask_url("sqlite:///tmp/a.db") == "sqlite:///tmp/a.db"
