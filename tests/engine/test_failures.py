"""Failures are visible (SPEC 10): every failed attempt leaves its traceback in the
database, in the attempt history that ``get_execution`` returns, in the log (WARNING, with
``exc_info``, saying whether it retries), and in ``on_failure`` when the callback asks.

Under the Harness (fake clock, inline tasks) on both backends; sync timeouts and the
write-transaction budget need a threaded runner, with bounded waits.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig
from cloaca.engine.failures import MAX_TRACEBACK_CHARS
from cloaca.runner.management import ManagementClient
from cloaca.testing import DEFAULT_START, Harness

WAIT = 10.0  # seconds: the bound of every real-time wait (never reached when green)


def _line_of(fn: Any, text: str) -> int:
    """The line number in this file of the first line of ``fn`` that contains ``text``."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


def _stored_attempt_rows(h: Harness, execution_id: str) -> list[dict[str, Any]]:
    """The attempt-history rows in the database, read directly."""
    with h.runner._store.read() as tx:
        return [dict(r) for r in tx.all("task_attempts_list", {"execution_id": execution_id})]


def lookup(data: dict[str, Any]) -> Any:
    return data["missing"]  # the raising line the stored traceback names


# -- what is stored --------------------------------------------------------------------------


def test_a_key_error_in_a_helper_is_stored_with_the_helpers_file_and_line(
    harness: Harness,
) -> None:
    with cloaca.WorkflowBuilder("keyed"):

        @cloaca.task(retry_attempts=1)
        def reads(context: Context) -> None:
            lookup({"present": 1})

    result = harness.execute("keyed")
    task = result.task_results["reads"]
    assert (result.status, task.status, task.error) == ("Failed", "Failed", "KeyError: 'missing'")
    assert task.traceback is not None
    where = f'File "{__file__}", line {_line_of(lookup, "raising line")}, in lookup'
    assert where in task.traceback
    assert f"line {_line_of(reads, 'lookup(')}, in reads" in task.traceback
    assert task.traceback.rstrip().endswith("KeyError: 'missing'")
    # The body's frames come first: the engine's frames that led into it are left out.
    assert "cloaca/engine" not in task.traceback
    [attempt] = task.attempts_history
    assert (attempt.attempt, attempt.outcome, attempt.error) == (1, "failed", task.error)
    assert attempt.traceback == task.traceback
    assert attempt.runner_id == harness.runner.runner_id
    assert attempt.started_at is not None and attempt.completed_at is not None


def test_three_attempts_leave_three_rows_with_distinct_errors(harness: Harness) -> None:
    calls: list[int] = []
    with cloaca.WorkflowBuilder("thrice"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=1000, retry_jitter=False)
        def flaky(context: Context) -> None:
            calls.append(1)
            raise RuntimeError(f"failure number {len(calls)}")

    execution_id = harness.runner.start("thrice")
    harness.advance(30)
    result = harness.runner.get_execution(execution_id)
    task = result.task_results["flaky"]
    assert (result.status, task.attempts, len(calls)) == ("Failed", 3, 3)
    history = task.attempts_history
    assert [a.attempt for a in history] == [1, 2, 3]
    assert [a.outcome for a in history] == ["failed"] * 3
    assert [a.error for a in history] == [f"RuntimeError: failure number {n}" for n in (1, 2, 3)]
    assert all(
        a.traceback is not None and a.traceback.rstrip().endswith(a.error or "?") for a in history
    )
    # Each attempt started when its retry was due: one second apart.
    assert len({a.started_at for a in history}) == 3
    assert (task.error, task.traceback) == (history[-1].error, history[-1].traceback)
    assert len(_stored_attempt_rows(harness, execution_id)) == 3


def test_a_success_after_failures_ends_the_history_and_clears_the_task_error(
    harness: Harness,
) -> None:
    calls: list[int] = []
    with cloaca.WorkflowBuilder("recovers"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=0)
        def flaky(context: Context) -> None:
            calls.append(1)
            if len(calls) < 3:
                raise ConnectionError(f"refused {len(calls)}")

    result = harness.execute("recovers")
    task = result.task_results["flaky"]
    assert (result.status, task.error, task.traceback) == ("Completed", None, None)
    assert [(a.attempt, a.outcome, a.error) for a in task.attempts_history] == [
        (1, "failed", "ConnectionError: refused 1"),
        (2, "failed", "ConnectionError: refused 2"),
        (3, "completed", None),
    ]
    assert task.attempts_history[2].traceback is None


def test_a_first_attempt_that_completes_writes_no_history_row(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("fine"):

        @cloaca.task()
        def first(context: Context) -> None:
            context.set("done", True)

        @cloaca.task(dependencies=[first])
        def second(context: Context) -> None:
            pass

    result = harness.execute("fine")
    assert result.status == "Completed"
    assert _stored_attempt_rows(harness, result.execution_id) == []
    for task in result.task_results.values():
        # Read back from the task row alone.
        [only] = task.attempts_history
        assert (only.attempt, only.outcome, only.error, only.traceback) == (
            1,
            "completed",
            None,
            None,
        )
        assert (only.started_at, only.completed_at) == (task.started_at, task.completed_at)
        assert task.traceback is None


def test_a_running_attempt_is_in_the_history_as_running(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("waits"):

        @cloaca.task()
        def step(context: Context) -> None:
            pass

    runner, store = harness.runner, harness.runner._store
    execution_id = runner.start("waits")
    [claim] = store.tasks.claim_ready(runner.runner_id, ["waits"], 1, harness.clock.now())
    [running] = runner.get_execution(execution_id).task_results["step"].attempts_history
    assert (running.attempt, running.outcome, running.runner_id) == (
        1,
        "running",
        runner.runner_id,
    )
    assert running.completed_at is None
    assert claim.attempt == 1


def test_a_long_traceback_is_capped_with_a_marker_keeping_its_end(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("long"):

        @cloaca.task(retry_attempts=1)
        def verbose(context: Context) -> None:
            cause = ValueError("y" * 100_000)  # formatted first: the chain's root cause
            raise RuntimeError("at the end") from cause

    task = harness.execute("long").task_results["verbose"]
    assert task.traceback is not None
    assert len(task.traceback) <= MAX_TRACEBACK_CHARS
    assert "characters cut: a stored traceback is at most" in task.traceback
    assert task.traceback.startswith("ValueError: yyyy")
    assert f"line {_line_of(verbose, 'raise RuntimeError')}, in verbose" in task.traceback
    assert task.traceback.rstrip().endswith("RuntimeError: at the end")


# -- every kind of failure the engine turns into an outcome ------------------------------------


def test_a_timed_out_async_attempt_stores_where_it_was_awaiting(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("async_slow"):

        @cloaca.task(timeout=0.02, retry_attempts=1)
        async def stuck(context: Context) -> None:
            await asyncio.sleep(WAIT)  # the await it was cancelled at

    task = harness.execute("async_slow").task_results["stuck"]
    assert task.error == "Task 'stuck' timed out after 0.02s"
    assert task.traceback is not None
    assert task.traceback.startswith("Stack of the task when it timed out, at the await")
    assert f"line {_line_of(stuck, 'cancelled at')}, in stuck" in task.traceback
    assert "cloaca/engine" not in task.traceback
    assert [a.outcome for a in task.attempts_history] == ["timed_out"]


def test_a_timed_out_sync_attempt_stores_the_stack_of_its_thread(db_url: str) -> None:
    release = threading.Event()
    with cloaca.WorkflowBuilder("sync_slow"):

        @cloaca.task(timeout=0.1, retry_attempts=1)
        def stuck(context: Context) -> None:
            release.wait(WAIT)  # where the thread is when the timeout strikes

    with DefaultRunner(db_url) as runner:
        try:
            result = runner.wait(runner.start("sync_slow"), timeout=WAIT)
        finally:
            release.set()
    task = result.task_results["stuck"]
    assert task.error == "Task 'stuck' timed out after 0.1s"
    assert task.traceback is not None
    assert task.traceback.startswith("Stack of the task's thread when it timed out")
    assert f"line {_line_of(stuck, 'timeout strikes')}, in stuck" in task.traceback
    [attempt] = task.attempts_history
    assert (attempt.outcome, attempt.error) == ("timed_out", task.error)


class Abort(BaseException):
    """A BaseException outside the Exception hierarchy, raised by user code."""


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_base_exception_is_stored_as_the_user_raised_it(harness: Harness, kind: str) -> None:
    with cloaca.WorkflowBuilder("aborts"):
        if kind == "sync":

            @cloaca.task(retry_attempts=1)
            def stops(context: Context) -> None:
                raise Abort("stop right there")

        else:

            @cloaca.task(retry_attempts=1)
            async def stops(context: Context) -> None:
                raise Abort("stop right there")

    task = harness.execute("aborts").task_results["stops"]
    assert task.error == "Abort: stop right there"
    assert task.traceback is not None
    assert task.traceback.rstrip().endswith("Abort: stop right there")
    assert "EscapedBaseException" not in task.traceback
    assert f"line {_line_of(stops, 'raise Abort')}, in stops" in task.traceback


def test_a_bad_result_and_a_too_large_output_store_their_reason(
    new_harness: Any,
) -> None:
    h = new_harness(config=DefaultRunnerConfig(max_context_bytes=200))
    with cloaca.WorkflowBuilder("bad_result"):

        @cloaca.task(retry_attempts=2)
        def returns_a_number(context: Context) -> Any:
            return 5

    with cloaca.WorkflowBuilder("too_big"):

        @cloaca.task(retry_attempts=2)
        def grows(context: Context) -> None:
            context.set("blob", "x" * 1000)

    bad = h.execute("bad_result").task_results["returns_a_number"]
    assert bad.error is not None and bad.error.startswith("TypeError: task 'returns_a_number'")
    assert bad.traceback is not None and "BadTaskResult" in bad.traceback
    big = h.execute("too_big").task_results["grows"]
    assert big.error is not None and big.error.startswith("ContextLimitError")
    assert big.traceback is not None and "ContextLimitError" in big.traceback
    # Neither is retried: the same code would give the same result again.
    for task in (bad, big):
        assert [(a.attempt, a.outcome) for a in task.attempts_history] == [(1, "failed")]


@pytest.mark.parametrize("attempts", [1, 2])
def test_a_dead_runners_attempt_is_in_the_history(harness: Harness, attempts: int) -> None:
    with cloaca.WorkflowBuilder("taken_over"):

        @cloaca.task(retry_attempts=attempts)
        def work(context: Context) -> None:
            pass

    runner, store = harness.runner, harness.runner._store
    execution_id = runner.start("taken_over")
    now = harness.clock.now()
    store.runners.register("ghost", "elsewhere", 1, now)
    store.tasks.claim_ready("ghost", ["taken_over"], 10, now)
    harness.advance(120)  # past the stale threshold: this runner's sweep takes it over
    task = runner.get_execution(execution_id).task_results["work"]
    lost = task.attempts_history[0]
    assert (lost.attempt, lost.outcome, lost.runner_id, lost.traceback) == (
        1,
        "runner_died",
        "ghost",
        None,
    )
    assert lost.error == f"runner died during the attempt (attempt 1 of {attempts})"
    if attempts == 2:
        assert [(a.attempt, a.outcome) for a in task.attempts_history[1:]] == [(2, "completed")]
        assert (task.status, task.error) == ("Completed", None)
    else:
        assert len(task.attempts_history) == 1 and task.status == "Failed"


def test_deleting_an_execution_deletes_its_attempt_history(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("doomed"):

        @cloaca.task(retry_attempts=2, retry_delay_ms=0)
        def fails(context: Context) -> None:
            raise RuntimeError("no")

    kept = harness.execute("doomed").execution_id
    deleted = harness.execute("doomed").execution_id
    assert len(_stored_attempt_rows(harness, deleted)) == 2
    with harness.runner._store.write() as tx:
        # What a prune does: delete the execution row, nothing else.
        tx.script(f"DELETE FROM cloaca_executions WHERE id = '{deleted}'")
    assert _stored_attempt_rows(harness, deleted) == []
    assert len(_stored_attempt_rows(harness, kept)) == 2


# -- logged ----------------------------------------------------------------------------------


def test_each_failed_attempt_is_logged_with_its_traceback_and_what_comes_next(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    with cloaca.WorkflowBuilder("logged"):

        @cloaca.task(retry_attempts=2, retry_delay_ms=1500, retry_jitter=False)
        def fails(context: Context) -> None:
            lookup({})

    with caplog.at_level(logging.WARNING, logger="cloaca"):
        execution_id = harness.runner.start("logged")
        harness.advance(10)
    assert harness.runner.get_execution(execution_id).status == "Failed"
    records = [r for r in caplog.records if "of execution" in r.getMessage()]
    assert [r.levelno for r in records] == [logging.WARNING] * 2
    assert all(r.name.startswith("cloaca.") for r in records)
    first, second = (r.getMessage() for r in records)
    assert first == (
        f"task 'fails' of execution {execution_id} failed: KeyError: 'missing'; "
        "will retry in 1.5s (attempt 1/2)"
    )
    assert second.endswith("KeyError: 'missing'; giving up (attempt 2/2)")
    for record in records:
        assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)
    assert "in lookup" in caplog.text and "raising line" in caplog.text


def test_a_poll_error_is_logged_with_its_traceback(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    @cloaca.task(id="noop")
    def noop(context: Context) -> None:
        pass

    cloaca.workflow("polled", [noop])

    def mount_check() -> None:
        raise ConnectionError("inbox share not mounted")  # the poll's raising line

    @cloaca.trigger(name="inbox", on="polled", poll_interval="1s")
    def inbox() -> cloaca.TriggerResult:
        mount_check()
        return cloaca.TriggerResult.skip()

    harness.runner.register_trigger("inbox", "polled")
    with caplog.at_level(logging.WARNING, logger="cloaca"):
        harness.advance(1)
    records = [r for r in caplog.records if "poll failed" in r.getMessage()]
    assert records  # one per poll
    for record in records:
        assert record.levelno == logging.WARNING and record.name.startswith("cloaca.")
        assert record.exc_info is not None and isinstance(record.exc_info[1], ConnectionError)
    assert "the poll's raising line" in caplog.text and "in mount_check" in caplog.text


# -- on_failure ------------------------------------------------------------------------------


def _failing_with(callback: Any) -> None:
    with cloaca.WorkflowBuilder("calls_back"):

        @cloaca.task(retry_attempts=1, on_failure=callback)
        def fails(context: Context) -> None:
            lookup({})


def test_on_failure_with_the_upstream_three_parameters_is_called_as_before(
    harness: Harness,
) -> None:
    seen: list[tuple[Any, ...]] = []

    def upstream(task_id: str, error: str, context: Context) -> None:
        seen.append((task_id, error, type(context).__name__))

    def variadic(*args: Any) -> None:
        seen.append(args[:2] + (len(args),))

    _failing_with(upstream)
    harness.execute("calls_back")
    cloaca.workflows.registry.clear_registry()
    _failing_with(variadic)
    harness.execute("calls_back")
    assert seen == [
        ("fails", "KeyError: 'missing'", "Context"),
        ("fails", "KeyError: 'missing'", 3),
    ]


@pytest.mark.parametrize("form", ["keyword", "keyword_only", "fourth_positional"])
def test_on_failure_gets_the_traceback_when_it_asks_for_it(harness: Harness, form: str) -> None:
    seen: list[str | None] = []

    def keyword(task_id: str, error: str, context: Context, traceback: str | None = None) -> None:
        seen.append(traceback)

    def keyword_only(task_id: str, error: str, context: Context, *, traceback: str) -> None:
        seen.append(traceback)

    def fourth_positional(task_id: str, error: str, context: Context, tb: str) -> None:
        seen.append(tb)

    callbacks = {
        "keyword": keyword,
        "keyword_only": keyword_only,
        "fourth_positional": fourth_positional,
    }
    _failing_with(callbacks[form])
    result = harness.execute("calls_back")
    stored = result.task_results["fails"].traceback
    assert stored is not None and "in lookup" in stored
    assert seen == [stored]


# -- the write-transaction budget ----------------------------------------------------------------


def test_a_failed_attempt_costs_no_write_transaction_more_than_a_success(
    harness: Harness,
) -> None:
    """The history row of a failed attempt rides on the transaction that records its
    outcome: a failing one-task execution costs exactly the write transactions of one that
    completes. (Under the Harness, whose rounds claim in transactions of their own, that
    is more than the two a threaded runner spends; the benchmarks measure those.)"""
    with cloaca.WorkflowBuilder("one_task"):

        @cloaca.task(retry_attempts=1)
        def only(context: Context) -> None:
            if context.get("fail"):
                raise RuntimeError("failed on purpose")

    db = harness.runner._store.db
    harness.execute("one_task")  # warm-up: the first rounds' own work (sweeps, schedules)

    def cost(fail: bool) -> list[int]:
        costs = []
        for _ in range(3):
            before = db.write_transactions
            result = harness.execute("one_task", {"fail": fail})
            costs.append(db.write_transactions - before)
            assert result.status == ("Failed" if fail else "Completed")
            assert (result.task_results["only"].traceback is not None) is fail
        return costs

    completing = cost(False)
    assert len(set(completing)) == 1  # the same every time: a fair measure
    assert cost(True) == completing


def test_a_management_client_reads_the_same_history(db_url: str) -> None:
    with cloaca.WorkflowBuilder("managed"):

        @cloaca.task(retry_attempts=2, retry_delay_ms=0)
        def fails(context: Context) -> None:
            lookup({})

    with Harness(db_url) as h:
        ran = h.execute("managed")
    with ManagementClient.open(db_url) as client:
        read = client.get_execution(ran.execution_id)
    assert read.task_results == ran.task_results
    history = read.task_results["fails"].attempts_history
    assert [a.outcome for a in history] == ["failed"] * 2
    assert all(a.traceback and "in lookup" in a.traceback for a in history)


def test_a_database_from_before_the_attempt_history_upgrades_and_reads(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloaca.runner.database import open_store
    from cloaca.store import migrate
    from cloaca.store.records import NewTask, TaskStatus

    with cloaca.WorkflowBuilder("old"):

        @cloaca.task()
        def step(context: Context) -> None:
            pass

    real = migrate.load_migrations
    monkeypatch.setattr(migrate, "load_migrations", lambda d: [m for m in real(d) if m[0] <= 2])
    store = open_store(db_url)
    try:
        assert store.migrate() == 2
        with store.write() as tx:  # a task that failed before tracebacks were stored
            store.executions.insert(
                tx,
                execution_id="before-0003",
                workflow_name="old",
                version="v1",
                context_json="{}",
                tasks=[NewTask("step", 0, 1, TaskStatus.FAILED, "RuntimeError: long ago")],
                now=DEFAULT_START,
            )
    finally:
        store.close()
    monkeypatch.undo()
    with Harness(db_url) as h:  # migrates to the latest schema
        old = h.runner.get_execution("before-0003").task_results["step"]
        assert (old.status, old.error, old.traceback, old.attempts_history) == (
            "Failed",
            "RuntimeError: long ago",
            None,
            (),
        )
        assert h.execute("old").status == "Completed"
