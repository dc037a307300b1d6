"""Edges of an execution's life: re-registered workflows, abandoned claims, bad results,
and the timeout of a task that deferred."""

from __future__ import annotations

import threading
import time

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig
from cloaca.testing import Harness


def test_an_execution_keeps_the_structure_it_started_with(harness: Harness) -> None:
    ran: list[str] = []

    def define(with_c: bool) -> None:
        with cloaca.WorkflowBuilder("evolving"):

            @cloaca.task(id="a")
            def a(context: Context) -> None:
                ran.append("a")

            @cloaca.task(id="b", dependencies=["a"])
            def b(context: Context) -> None:
                ran.append("b")

            if with_c:

                @cloaca.task(id="c", dependencies=["b"])
                def c(context: Context) -> None:
                    ran.append("c")

    define(with_c=False)
    old = harness.runner.start("evolving")
    define(with_c=True)  # a deploy re-registers the workflow with another shape
    new = harness.runner.start("evolving")
    harness.run_until_idle()

    old_result = harness.runner.get_execution(old)
    new_result = harness.runner.get_execution(new)
    assert old_result.status == "Completed"
    assert set(old_result.task_results) == {"a", "b"}
    assert new_result.status == "Completed"
    assert set(new_result.task_results) == {"a", "b", "c"}
    assert sorted(ran) == ["a", "a", "b", "b", "c"]


def test_a_task_returning_a_non_context_fails_without_retrying(harness: Harness) -> None:
    calls: list[int] = []

    @cloaca.task(id="bad", retry_attempts=3, retry_delay_ms=1)
    def bad(context: Context) -> object:
        calls.append(1)
        return {"not": "a context"}

    cloaca.workflow("bad_result", [bad])
    result = harness.execute("bad_result")
    harness.advance(5)
    result = harness.runner.get_execution(result.execution_id)
    assert result.status == "Failed"
    assert calls == [1]
    assert result.task_results["bad"].attempts == 1
    assert "returned dict; return a Context or None" in (result.error_message or "")


def test_the_claim_of_a_dead_runner_on_a_cancelled_execution_is_not_run_again(
    harness: Harness,
) -> None:
    calls: list[int] = []

    @cloaca.task(id="work")
    def work(context: Context) -> None:
        calls.append(1)

    cloaca.workflow("abandoned", [work])
    runner = harness.runner
    execution_id = runner.start("abandoned")
    store = runner._store
    now = harness.clock.now()
    # A runner that no longer exists (no heartbeat row) claimed the task, then the
    # execution was cancelled.
    claimed = store.claim_ready("ghost-runner", ["abandoned"], 10, now)
    assert [c.task_id for c in claimed] == ["work"]
    assert runner.cancel_execution(execution_id)

    assert store.requeue_stale(runner.runner_id, now, now) == 0
    harness.advance(120)
    result = runner.get_execution(execution_id)
    assert result.status == "Cancelled"
    assert calls == []
    assert result.task_results["work"].status == "Skipped"
    assert "abandoned" in (result.task_results["work"].error or "")


def test_the_timeout_still_applies_after_defer_until_returns(db_url: str) -> None:
    release = threading.Event()
    finished = threading.Event()

    @cloaca.task(id="defers", timeout=0.5, retry_attempts=1)
    def defers(context: Context, handle: cloaca.TaskHandle) -> None:
        handle.defer_until(release.is_set, poll_interval_ms=10)
        time.sleep(1.5)  # runs past its 0.5 s budget once it holds a slot again
        finished.set()

    cloaca.workflow("defer_then_overrun", [defers])
    with DefaultRunner(db_url, DefaultRunnerConfig(max_concurrent_tasks=1)) as runner:
        execution_id = runner.start("defer_then_overrun")
        time.sleep(0.7)  # deferred longer than the timeout: waiting does not count
        assert runner.get_execution(execution_id).status == "Running"
        release.set()
        result = runner.wait(execution_id, timeout=10)
        assert result.status == "Failed"
        assert "timed out after 0.5s" in (result.task_results["defers"].error or "")
        assert not finished.is_set()  # the verdict came from the timeout, not the body
