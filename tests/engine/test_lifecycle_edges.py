"""Edges of an execution's life: re-registered workflows, abandoned claims, bad results,
and the timeout of a task that deferred."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

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
    claimed = store.tasks.claim_ready("ghost-runner", ["abandoned"], 10, now)
    assert [c.task_id for c in claimed] == ["work"]
    assert runner.cancel_execution(execution_id)

    assert store.runners.requeue_stale(runner.runner_id, now, now) == 0
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


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_defer_until_under_the_harness_is_rechecked_each_round(
    kind: str, new_harness: Callable[..., Harness]
) -> None:
    gate = {"open": False}
    looks: list[int] = []

    def condition() -> bool:
        looks.append(1)
        return gate["open"]

    if kind == "sync":

        @cloaca.task(id="waits")
        def waits(context: Context, handle: cloaca.TaskHandle) -> None:
            handle.defer_until(condition)
            context.set("after", True)

    else:

        @cloaca.task(id="waits")
        async def waits(context: Context, handle: cloaca.TaskHandle) -> None:
            await handle.defer_until(condition)
            context.set("after", True)

    cloaca.workflow("gated", [waits])
    with new_harness() as h:
        result = h.execute("gated")  # returns: the task waits on a condition, not on time
        assert result.status == "Running"
        assert result.task_results["waits"].sub_status == "Deferred"
        h.run_until_idle()
        assert h.runner.get_execution(result.execution_id).status == "Running"
        gate["open"] = True
        h.run_until_idle()
        done = h.runner.get_execution(result.execution_id)
        assert done.status == "Completed"
        assert done.final_context.get("after") is True
        assert done.task_results["waits"].sub_status is None


CANCEL_SCRIPT = """
import asyncio, sys, time
import cloaca

@cloaca.task(id="forever")
async def forever(context):
    await asyncio.sleep(10**6)

@cloaca.task(id="quick")
def quick(context):
    context.set("ran", True)

cloaca.workflow("stuck", [forever])
cloaca.workflow("next", [quick])
config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=1)
runner = cloaca.DefaultRunner(sys.argv[1], config)
execution_id = runner.start("stuck")
deadline = time.monotonic() + 10
while runner.get_execution(execution_id).task_results["forever"].status != "Running":
    assert time.monotonic() < deadline, "never started"
    time.sleep(0.01)
assert runner.cancel_execution(execution_id)
print(runner.execute("next").status)  # the cancelled body gave its only slot back
print(runner.get_execution(execution_id).task_results["forever"].error)
runner.start("stuck")  # still running when the runner shuts down: cancelled, not waited on
time.sleep(0.2)
runner.shutdown(timeout=0.5)
"""


def test_cancelling_an_async_task_frees_its_slot_and_the_process_exits(db_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CANCEL_SCRIPT, db_url],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    status, error = proc.stdout.strip().splitlines()
    assert status == "Completed"
    assert "cancelled" in error


def test_a_workflow_times_out_at_its_limit_not_at_the_next_sweep(
    new_harness: Callable[..., Harness],
) -> None:
    config = DefaultRunnerConfig(
        workflow_timeout_seconds=5, stale_claim_sweep_interval_seconds=3600
    )

    @cloaca.task(id="stalls", retry_attempts=5, retry_delay_ms=100_000, retry_jitter=False)
    def stalls(context: Context) -> None:
        raise RuntimeError("not yet")

    cloaca.workflow("stalling", [stalls])
    with new_harness(config=config) as h:
        h.advance(100)  # idle for a while first
        execution_id = h.runner.start("stalling")
        h.advance(4.9)
        assert h.runner.get_execution(execution_id).status == "Running"
        h.advance(0.2)
        result = h.runner.get_execution(execution_id)
        assert result.status == "Failed"
        assert result.error_message == "workflow timed out after 5s"


WORKER_SCRIPT = """
import asyncio, sys, time
import cloaca

@cloaca.task(id="forever")
async def forever(context):
    await asyncio.sleep(10**6)

cloaca.workflow("remote_stuck", [forever])
with cloaca.DefaultRunner(sys.argv[1]) as runner:
    execution_id = runner.start("remote_stuck")
    deadline = time.monotonic() + 10
    while runner.get_execution(execution_id).task_results["forever"].status != "Running":
        assert time.monotonic() < deadline, "never started"
        time.sleep(0.01)
    print(execution_id, flush=True)
    deadline = time.monotonic() + 15
    while runner.get_execution(execution_id).task_results["forever"].status == "Running":
        assert time.monotonic() < deadline, "the async body was never cancelled"
        time.sleep(0.02)
    print(runner.get_execution(execution_id).task_results["forever"].error, flush=True)
"""


def test_a_cancel_from_another_process_cancels_the_async_body(db_url: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        execution_id = worker.stdout.readline().strip()
        assert execution_id, worker.stderr.read() if worker.stderr else ""
        # A management process: it has no workflows registered and runs nothing.
        with DefaultRunner(db_url) as manager:
            assert manager.cancel_execution(execution_id)
        out, err = worker.communicate(timeout=30)
        assert worker.returncode == 0, err
        assert "cancelled" in out
    finally:
        if worker.poll() is None:
            worker.kill()
