"""A runner process killed mid-task loses nothing: a runner opened later on the same SQLite
file takes the task over once the dead runner's heartbeat is stale, and the execution
completes. Real processes, SIGKILL, and bounded waits with deadlines."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from proc_support import WAIT, read_lines, reap, spawn

import cloaca
from cloaca.runner.management import ManagementClient

# Run in the worker process (as a script) and in the test process (via exec), so both
# register the very same workflow structure. Only the victim blocks in "long". Lines are
# printed in one write each (end=""), so the two threads' lines cannot interleave.
WORKFLOW = """
import os
import threading

import cloaca

with cloaca.WorkflowBuilder("crashy"):

    @cloaca.task()
    def first(context):
        context.set("first_pid", os.getpid())

    # The killed runner's attempt counts: a second one is left for the rescuer.
    @cloaca.task(dependencies=[first], retry_attempts=2)
    def long(context):
        if os.environ.get("CRASH_ROLE") == "victim":
            print("running\\n", end="", flush=True)
            threading.Event().wait()  # until SIGKILL
        context.set("long_pid", os.getpid())

    @cloaca.task(dependencies=[long])
    def last(context):
        context.set("last_pid", os.getpid())
"""

VICTIM = (
    WORKFLOW
    + """
import sys

# Peers take a runner's claims over once ITS OWN threshold has passed since its last beat.
config = cloaca.DefaultRunnerConfig(
    heartbeat_interval_seconds=0.05, stale_claim_threshold_seconds=0.3
)
runner = cloaca.DefaultRunner(sys.argv[1], config)
print(f"started {runner.start('crashy', {'input': 1})}\\n", end="", flush=True)
threading.Event().wait()
"""
)


@pytest.fixture
def victim(db_url: str) -> Iterator[subprocess.Popen[str]]:
    """The worker process that will be killed (killed at teardown at the latest)."""
    proc = spawn(VICTIM, db_url, env={"CRASH_ROLE": "victim"})
    yield proc
    reap(proc)


def test_a_killed_runners_task_is_taken_over_and_the_execution_completes(
    db_url: str, victim: subprocess.Popen[str]
) -> None:
    seen = read_lines(victim, {"started", "running"}, time.monotonic() + WAIT)
    execution_id = seen["started"]
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(timeout=WAIT) == -signal.SIGKILL

    namespace: dict[str, Any] = {}
    exec(WORKFLOW, namespace)  # the same workflow, registered in this process
    config = cloaca.DefaultRunnerConfig(
        heartbeat_interval_seconds=0.05,
        stale_claim_threshold_seconds=0.3,
        stale_claim_sweep_interval_seconds=0.05,
        scheduler_poll_interval_ms=20,
    )
    with ManagementClient.open(db_url) as client:  # no engine: it takes nothing over
        before = client.get_execution(execution_id)
    assert before.status == "Running"
    assert before.task_results["long"].status == "Running"  # still claimed by the dead
    with cloaca.DefaultRunner(db_url, config) as rescuer:
        result = rescuer.wait(execution_id, timeout=WAIT)
        listed = rescuer.list_executions()

    assert result.status == "Completed", result.error_message
    attempts = {tid: r.attempts for tid, r in result.task_results.items()}
    assert attempts == {"first": 1, "long": 2, "last": 1}  # only the interrupted task re-ran
    final = result.final_context.to_dict()
    assert final["input"] == 1
    assert final["first_pid"] == victim.pid  # work finished before the crash is kept
    assert final["long_pid"] == final["last_pid"] == os.getpid()
    assert [row["id"] for row in listed] == [execution_id]  # nothing lost, nothing doubled
