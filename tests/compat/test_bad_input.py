"""Every bad input of issue #2: a clear exception naming the value, and nothing half-written
left behind (no execution row, no task rows, no foreign file changed)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig
from cloaca.store.migrate import latest_version
from cloaca.testing import Harness
from pg_support import run_sql


@pytest.fixture
def runner(db_url: str) -> Iterator[DefaultRunner]:
    """A real runner on a fresh file."""
    with DefaultRunner(db_url) as made:
        yield made


def row_counts(db_url: str) -> tuple[int, int]:
    """(executions, task executions) in the database behind ``db_url``."""
    [(executions,)] = run_sql(db_url, "SELECT COUNT(*) FROM cloaca_executions")
    [(tasks,)] = run_sql(db_url, "SELECT COUNT(*) FROM cloaca_task_executions")
    return int(executions), int(tasks)


def assert_nothing_written(runner: DefaultRunner) -> None:
    """No execution (and so no task execution) exists."""
    assert runner.list_executions() == []
    assert row_counts(runner.database_url) == (0, 0)


def simple_workflow(name: str = "simple") -> None:
    """Register a one-task workflow."""
    with cloaca.WorkflowBuilder(name):

        @cloaca.task()
        def only(context: Context) -> None:
            pass


# -- workflow definitions -----------------------------------------------------------------------


def _cycle() -> None:
    with cloaca.WorkflowBuilder("cyclic"):

        @cloaca.task(dependencies=["c"])
        def a(context: Context) -> None:
            pass

        @cloaca.task(dependencies=["a"])
        def b(context: Context) -> None:
            pass

        @cloaca.task(dependencies=["b"])
        def c(context: Context) -> None:
            pass


def _self_cycle() -> None:
    with cloaca.WorkflowBuilder("cyclic"):

        @cloaca.task(dependencies=["me"])
        def me(context: Context) -> None:
            pass


def _unknown_dependency() -> None:
    with cloaca.WorkflowBuilder("cyclic"):

        @cloaca.task(dependencies=["ghost"])
        def real(context: Context) -> None:
            pass


def _empty_builder() -> None:
    with cloaca.WorkflowBuilder("cyclic"):
        pass


def _empty_workflow_call() -> None:
    cloaca.workflow("cyclic", tasks=[])


def _duplicate_ids() -> None:
    with cloaca.WorkflowBuilder("cyclic"):

        @cloaca.task(id="same")
        def first(context: Context) -> None:
            pass

        @cloaca.task(id="same")
        def second(context: Context) -> None:
            pass


def _unknown_rule_task() -> None:
    with cloaca.WorkflowBuilder("cyclic"):

        @cloaca.task()
        def real(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[real], trigger_rules=cloaca.task_failed("reel"))
        def alert(context: Context) -> None:
            pass


@pytest.mark.parametrize(
    ("define", "message"),
    [
        (_cycle, "Cycle detected in workflow 'cyclic': a -> c -> b -> a"),
        (_self_cycle, "Cycle detected in workflow 'cyclic': me -> me"),
        (_unknown_dependency, "Task 'real' in workflow 'cyclic' depends on unknown task 'ghost'"),
        (_empty_builder, "Workflow 'cyclic' cannot be empty"),
        (_empty_workflow_call, "Workflow 'cyclic' cannot be empty"),
        (_duplicate_ids, "duplicate task id 'same' in workflow 'cyclic'"),
        (
            _unknown_rule_task,
            "Trigger rule of task 'alert' in workflow 'cyclic' names unknown task",
        ),
    ],
    ids=["cycle", "self-cycle", "unknown-dep", "empty", "empty-call", "duplicate", "rule-task"],
)
def test_invalid_workflows_are_refused_and_never_registered(
    runner: DefaultRunner, define: Any, message: str
) -> None:
    with pytest.raises(ValueError) as info:
        define()
    assert message in str(info.value)
    with pytest.raises(ValueError, match="'cyclic' not found"):
        runner.execute("cyclic")
    assert_nothing_written(runner)


# -- starting executions ------------------------------------------------------------------------


def test_unknown_workflow_name(runner: DefaultRunner) -> None:
    for name in ["nope", "Simple "]:
        with pytest.raises(ValueError, match=f"Workflow {name!r} not found"):
            runner.execute(name)
        with pytest.raises(ValueError, match="not found"):
            runner.start(name)
    with pytest.raises(ValueError, match="non-empty string"):
        runner.start("")
    assert_nothing_written(runner)


def test_bad_execution_ids_and_listing_arguments(runner: DefaultRunner) -> None:
    with pytest.raises(ValueError, match="Execution 'no-such-id' not found"):
        runner.get_execution("no-such-id")
    with pytest.raises(ValueError, match="Execution 'no-such-id' not found"):
        runner.wait("no-such-id", timeout=1)
    with pytest.raises(ValueError, match="Execution 'no-such-id' not found"):
        runner.cancel_execution("no-such-id")
    with pytest.raises(ValueError, match="status 'Done' is not one of .*'Completed'"):
        runner.list_executions(status="Done")
    with pytest.raises(ValueError, match="limit -1"):
        runner.list_executions(limit=-1)
    with pytest.raises(ValueError, match="offset 'x'"):
        runner.list_executions(offset="x")  # type: ignore[arg-type]
    assert_nothing_written(runner)


@pytest.mark.parametrize(
    ("context", "error", "named"),
    [
        ({"when": object()}, TypeError, "'when'"),
        ({"nested": {"deep": {1, 2}}}, TypeError, "'nested'"),
        ({"ratio": float("inf")}, TypeError, "'ratio'"),
        ({7: "int key"}, TypeError, "7"),
        (["not", "a", "dict"], TypeError, "list"),
        ("text", TypeError, "str"),
    ],
)
def test_non_json_context_is_refused_before_anything_is_written(
    runner: DefaultRunner, context: Any, error: type[Exception], named: str
) -> None:
    simple_workflow()
    with pytest.raises(error, match=named):
        runner.start("simple", context)
    with pytest.raises(error, match=named):
        runner.execute("simple", context)
    assert_nothing_written(runner)


# -- what tasks do ------------------------------------------------------------------------------


def test_a_task_returning_something_else_fails_its_attempt(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("returns"):

        @cloaca.task(retry_attempts=1)
        def returns_dict(context: Context) -> Any:
            return {"plain": "dict"}

    result = harness.execute("returns")
    assert result.status == "Failed"
    assert result.task_results["returns_dict"].error == (
        "TypeError: task 'returns_dict' returned dict; return a Context or None"
    )


def test_a_task_storing_a_non_json_value_fails_naming_the_key(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("stores"):

        @cloaca.task(retry_attempts=1)
        def stores(context: Context) -> None:
            context.set("handle", open)

    result = harness.execute("stores")
    assert result.status == "Failed"
    error = result.task_results["stores"].error
    assert error is not None and "'handle'" in error and "not JSON-serialisable" in error


def test_a_handle_used_after_its_task_ended(harness: Harness) -> None:
    kept: list[cloaca.TaskHandle] = []
    with cloaca.WorkflowBuilder("keeps"):

        @cloaca.task()
        def keeps(context: Context, task_handle: cloaca.TaskHandle) -> None:
            kept.append(task_handle)

    assert harness.execute("keeps").status == "Completed"
    with pytest.raises(ValueError, match="'keeps' used after its task ended"):
        kept[0].defer_until(lambda: True, poll_interval_ms=1)


# -- URLs and configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("mysql://localhost/db", "Unsupported database URL 'mysql://localhost/db'"),
        ("/plain/path.db", "Unsupported database URL '/plain/path.db'"),
        ("", "Unsupported database URL ''"),
        (None, "Unsupported database URL None"),
        ("sqlite://", "Malformed SQLite URL 'sqlite://'"),
        ("sqlite:///", "Malformed SQLite URL 'sqlite:///'"),
        ("sqlite://x.db?mode=bogus", "Unsupported SQLite mode 'bogus'"),
        ("postgres://", "Malformed PostgreSQL URL 'postgres://'"),
    ],
)
def test_unsupported_or_malformed_urls(url: Any, named: str) -> None:
    with pytest.raises(ValueError) as info:
        DefaultRunner(url)
    assert named in str(info.value)
    if "Unsupported database URL" in named:
        assert "sqlite://relative/path.db" in str(info.value)  # says what is accepted


def test_invalid_config(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_concurrent_tasks=0"):
        DefaultRunner(db_url, DefaultRunnerConfig(max_concurrent_tasks=0))
    with pytest.raises(ValueError, match="config must be a DefaultRunnerConfig, got dict"):
        DefaultRunner(db_url, {"max_concurrent_tasks": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown DefaultRunnerConfig field 'max_tasks'"):
        DefaultRunnerConfig(max_tasks=2)
    assert not (tmp_path / "cloaca.db").exists()  # nothing opened


# -- foreign and future databases ---------------------------------------------------------------


def test_a_sqlite_file_of_another_application_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (9.5)")
    conn.close()
    with pytest.raises(ValueError) as info:
        DefaultRunner(f"sqlite://{path}")
    message = str(info.value)
    assert "not a cloaca database" in message and str(path) in message and "invoices" in message
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = conn.execute("SELECT total FROM invoices").fetchall()
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    assert tables == {"invoices"} and rows == [(9.5,)]
    assert journal == "delete"  # not switched to WAL behind the application's back


def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 50
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        DefaultRunner(f"sqlite://{path}")
    assert "is not a SQLite database" in str(info.value) and str(path) in str(info.value)
    assert path.read_bytes() == content


def test_a_database_from_a_newer_cloaca_is_refused(backend: str, db_url: str) -> None:
    DefaultRunner(db_url).shutdown()  # a current cloaca database
    newer = latest_version(backend) + 1
    run_sql(
        db_url,
        "INSERT INTO cloaca_schema_version (version, applied_at) VALUES (:v, 'later')",
        {"v": newer},
    )
    with pytest.raises(ValueError) as info:
        DefaultRunner(db_url)
    assert f"database schema version {newer} is newer" in str(info.value)
    assert row_counts(db_url) == (0, 0)


def test_a_stale_threshold_not_above_the_heartbeat_interval_is_refused() -> None:
    with pytest.raises(ValueError, match=r"stale_claim_threshold_seconds=10 must be greater"):
        cloaca.DefaultRunnerConfig(heartbeat_interval_seconds=100, stale_claim_threshold_seconds=10)
    config = cloaca.DefaultRunnerConfig()
    config.heartbeat_interval_seconds = 120  # fields set one by one are checked at the runner
    with pytest.raises(ValueError, match="heartbeat_interval_seconds=120"):
        cloaca.DefaultRunner(":memory:", config)
