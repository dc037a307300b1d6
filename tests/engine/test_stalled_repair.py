"""The last-resort sweep: an active execution that nothing moves on is re-planned."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest

import cloaca
from cloaca import Context
from cloaca.clock import to_db_time
from cloaca.testing import Harness
from pg_support import run_sql


@pytest.fixture
def file_harness(db_url: str) -> Iterator[Harness]:
    """A Harness on a database the test can also reach with raw SQL (a SQLite file, or a
    PostgreSQL schema)."""
    h = Harness(db_url)
    yield h
    h.close()


def _chain() -> None:
    @cloaca.task(id="a")
    def a(context: Context) -> None:
        context.set("a", 1)

    @cloaca.task(id="b", dependencies=["a"])
    def b(context: Context) -> None:
        context.set("b", context.get("a", 0) + 1)

    cloaca.workflow("chain", [a, b])


def _complete_by_hand(url: str, execution_id: str, task_id: str, output: str, stamp: str) -> None:
    """Make a task Completed behind the planner's back: nothing plans its dependants."""
    run_sql(
        url,
        "UPDATE cloaca_task_executions SET status = 'Completed', output = :output, "
        "ready_at = NULL, claimed_by = NULL, completed_at = :stamp "
        "WHERE execution_id = :id AND task_id = :task",
        {"output": output, "stamp": stamp, "id": execution_id, "task": task_id},
    )


def test_a_stalled_execution_is_replanned_after_the_stale_threshold(
    file_harness: Harness, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    _chain()
    runner = file_harness.runner
    execution_id = runner.start("chain")
    stamp = to_db_time(file_harness.clock.now())
    _complete_by_hand(db_url, execution_id, "a", '{"a": 1}', stamp)

    threshold = runner.config.stale_claim_threshold_seconds
    with caplog.at_level(logging.WARNING):
        file_harness.advance(threshold - 1)  # quiet, but not for long enough yet
        result = runner.get_execution(execution_id)
        assert result.status == "Pending"  # never claimed: the task was set by hand
        assert result.task_results["b"].status == "NotStarted"
        assert "repaired stalled execution" not in caplog.text

        file_harness.advance(runner.config.stale_claim_sweep_interval_seconds + 1)
    result = runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert result.task_results["b"].status == "Completed"
    assert result.final_context.get("b") == 2  # b read a's recorded output
    assert f"repaired stalled execution {execution_id}" in caplog.text


def test_an_execution_whose_tasks_all_finished_is_ended(file_harness: Harness, db_url: str) -> None:
    _chain()
    runner = file_harness.runner
    execution_id = runner.start("chain")
    stamp = to_db_time(file_harness.clock.now())
    _complete_by_hand(db_url, execution_id, "a", '{"a": 1}', stamp)
    _complete_by_hand(db_url, execution_id, "b", '{"b": 7}', stamp)

    file_harness.advance(runner.config.stale_claim_threshold_seconds * 2)
    result = runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert result.final_context.get("b") == 7


def test_a_quiet_execution_with_work_running_is_left_alone(
    file_harness: Harness, db_url: str
) -> None:
    """A long-running task is not a stall: the sweep must not touch its execution."""
    _chain()
    runner = file_harness.runner
    execution_id = runner.start("chain")
    # Another (live-looking) runner holds a's claim for a long time.
    run_sql(
        db_url,
        "UPDATE cloaca_task_executions SET status = 'Running', claimed_by = :me, attempt = 1 "
        "WHERE execution_id = :id AND task_id = 'a'",
        {"me": runner.runner_id, "id": execution_id},
    )
    file_harness.advance(runner.config.stale_claim_threshold_seconds * 3)
    result = runner.get_execution(execution_id)
    assert result.status == "Pending"  # never claimed: the task was set by hand
    assert result.task_results["a"].status == "Running"
    assert result.task_results["b"].status == "NotStarted"


def test_the_harness_refreshes_the_heartbeat_without_a_thread(
    file_harness: Harness, db_url: str
) -> None:
    runner = file_harness.runner
    assert runner.engine.heartbeat._thread is None  # fake time: no real-time heartbeat thread
    file_harness.advance(100)

    rows = run_sql(
        db_url, "SELECT heartbeat_at FROM cloaca_runners WHERE id = :id", {"id": runner.runner_id}
    )
    interval = runner.config.heartbeat_interval_seconds
    latest = to_db_time(file_harness.clock.now())
    earliest = to_db_time(file_harness.clock.now() - timedelta(seconds=interval))
    assert rows and earliest <= str(rows[0][0]) <= latest


def test_a_wide_execution_whose_end_failed_is_ended_by_the_repair(
    file_harness: Harness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tasks nothing depends on are recorded without reading their execution's count
    (PostgreSQL); unless this process recorded all the others (then it knows the end), the
    one that counts the last ends the execution in a transaction of its own. If that
    transaction fails (or the process dies before it), every task is final, and the
    stalled-execution repair ends the execution with every output."""
    from cloaca.engine import planner
    from cloaca.store.executions import ExecutionQueries

    # As when the other tasks ran in other processes: their outputs are not known here.
    monkeypatch.setattr(ExecutionQueries, "known_outputs", lambda *args: None)

    for name in ("x", "y", "z"):
        cloaca.task(id=name)(lambda context, name=name: context.set(name, True))
    cloaca.workflow("wide", ["x", "y", "z"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the database refused")

    monkeypatch.setattr(planner, "end_counted", refuse)
    runner = file_harness.runner
    execution_id = runner.start("wide")
    file_harness.run_until_idle()
    stalled = runner.get_execution(execution_id)
    assert {t.status for t in stalled.task_results.values()} == {"Completed"}
    if backend == "postgres":  # SQLite reads the count and ends it in the same transaction
        assert stalled.status == "Running"

    monkeypatch.undo()
    threshold = runner.config.stale_claim_threshold_seconds
    file_harness.advance(threshold + runner.config.stale_claim_sweep_interval_seconds + 1)
    result = runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert {k: result.final_context.get(k) for k in "xyz"} == {"x": True, "y": True, "z": True}


def test_a_wide_execution_ends_with_every_output(harness: Harness) -> None:
    """Many tasks nothing depends on, finishing in batches: the execution ends once, with
    every task's output, whichever outcome counted the last task."""
    names = [f"t{i}" for i in range(12)]
    for name in names:
        cloaca.task(id=name)(lambda context, name=name: context.set(name, 1))
    cloaca.workflow("wide12", names)
    result = harness.execute("wide12", {"input": 1})
    assert result.status == "Completed"
    assert dict(result.final_context) == {"input": 1, **{n: 1 for n in names}}
