"""Real processes die with a task; the task still runs at most ``max_attempts`` times and
its execution always ends.

A poison task (``os._exit`` in its body) kills each worker that takes it over, until its
last attempt dies with its runner: then it ends Failed ("runner died during the attempt")
and its execution with it. A runner SIGKILLed at each step of a task's life (claimed but
not started, mid-body, body returned but outcome not recorded) has its task taken over;
the attempts column counts the dead runner's attempt. Bounded waits with deadlines.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from proc_support import WAIT, read_lines, reaped, spawn

import cloaca
from pg_support import run_sql

# Short heartbeats: a dead worker is declared dead one second after its last heartbeat.
FAST = dict(
    heartbeat_interval_seconds=0.2,
    stale_claim_threshold_seconds=1,
    stale_claim_sweep_interval_seconds=0.2,
    scheduler_poll_interval_ms=50,
)

# -- a poison task -----------------------------------------------------------------------------

POISON_WORKER = f"""
import os
import sys
import threading

import cloaca

runs = sys.argv[2]

with cloaca.WorkflowBuilder("poisoned"):

    @cloaca.task(retry_attempts=2)
    def poison(context):
        with open(runs, "a") as out:
            out.write(f"{{os.getpid()}}\\n")
        os._exit(1)

    @cloaca.task(dependencies=[poison])
    def after(context):
        context.set("after", True)

runner = cloaca.DefaultRunner(sys.argv[1], cloaca.DefaultRunnerConfig(**{FAST!r}))
print("ready\\n", end="", flush=True)
threading.Event().wait()
"""


def test_a_poison_task_fails_after_its_attempts_and_kills_no_more_workers(
    db_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.log"
    with reaped([]) as workers:
        # Three workers: the task may kill two (its two attempts); one is left to fail it.
        workers.extend(spawn(POISON_WORKER, db_url, str(runs)) for _ in range(3))
        for worker in workers:
            read_lines(worker, {"ready"}, time.monotonic() + 2 * WAIT)
        # This process does not register the workflow (it would run the poison): it
        # starts an execution from the definition the workers recorded, and watches.
        with cloaca.DefaultRunner(db_url) as watcher:
            execution_id = watcher.start("poisoned")
            most_attempts = 0
            deadline = time.monotonic() + 3 * WAIT
            while True:
                result = watcher.get_execution(execution_id)
                most_attempts = max(most_attempts, result.task_results["poison"].attempts)
                if result.status != "Running" and result.status != "Pending":
                    break
                assert time.monotonic() < deadline, f"still {result.status}: {result}"
                time.sleep(0.05)
        dead = [w for w in workers if w.poll() is not None]
        returncodes = [w.returncode for w in dead]

    assert result.status == "Failed"
    poison = result.task_results["poison"]
    assert poison.status == "Failed"
    assert poison.error == "runner died during the attempt (attempt 2 of 2)"
    assert poison.attempts == most_attempts == 2  # never more than max_attempts
    assert result.task_results["after"].status == "Skipped"
    assert result.task_results["after"].error == "upstream failed"
    assert result.error_message == (
        "Task 'poison' failed: runner died during the attempt (attempt 2 of 2)"
    )
    # Each attempt killed the worker running it, and no other.
    ran_in = [int(line) for line in runs.read_text().split()]
    assert sorted(ran_in) == sorted(w.pid for w in dead)
    assert returncodes == [1, 1]


# -- SIGKILL at each step of a task's life -----------------------------------------------------


def fragile_workflow(attempts: int) -> str:
    """The workflow both the victim and the rescuer (this process) register. ``work`` notes
    each start of its body in the file named by $RUNS_FILE."""
    return f"""
import os
import threading

import cloaca

PAUSE_IN_BODY = False  # the victim script turns it on

with cloaca.WorkflowBuilder("fragile"):

    @cloaca.task()
    def first(context):
        context.set("first_pid", os.getpid())

    @cloaca.task(dependencies=[first], retry_attempts={attempts})
    def work(context):
        with open(os.environ["RUNS_FILE"], "a") as out:
            out.write(f"{{os.getpid()}}\\n")
        if PAUSE_IN_BODY:
            print("paused\\n", end="", flush=True)
            threading.Event().wait()  # until SIGKILL
        context.set("work_pid", os.getpid())

    @cloaca.task(dependencies=[work])
    def last(context):
        context.set("last_pid", os.getpid())
"""


# Worker scripts print each line in ONE write (``end=""``): print() writes the newline
# separately, and a line printed by another thread could land in between.

# Pauses the victim at one step of ``work``'s life, by wrapping engine methods in this
# script only: "claimed" (the claim committed, the body not started), "body" (mid-body),
# "returned" (the body returned, its outcome not recorded yet).
VICTIM = """
import sys
import threading

from cloaca.engine.executor import Executor

url, point = sys.argv[1], sys.argv[2]


def pause():
    print("paused\\n", end="", flush=True)
    threading.Event().wait()  # until SIGKILL


if point == "claimed":
    dispatch = Executor._dispatch

    def pause_and_dispatch(self, claimed, *args, **kwargs):
        if claimed.task_id == "work":  # its claim committed; its body is not started
            pause()
        return dispatch(self, claimed, *args, **kwargs)

    Executor._dispatch = pause_and_dispatch
elif point == "body":
    PAUSE_IN_BODY = True
elif point == "returned":
    finish = Executor._finish

    def pause_and_finish(self, attempt, *args, **kwargs):
        if attempt.claimed.task_id == "work":
            pause()
        return finish(self, attempt, *args, **kwargs)

    Executor._finish = pause_and_finish

runner = cloaca.DefaultRunner(url, cloaca.DefaultRunnerConfig(**FAST))
print(f"started {runner.start('fragile', {'input': 1})}\\n", end="", flush=True)
threading.Event().wait()
"""

POINTS = ["claimed", "body", "returned"]


@pytest.mark.parametrize("attempts", [2, 1], ids=["attempt_left", "last_attempt"])
@pytest.mark.parametrize("point", POINTS)
def test_a_runner_killed_at_any_step_of_a_task_loses_nothing(
    db_url: str, tmp_path: Path, point: str, attempts: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs.log"
    runs.touch()
    monkeypatch.setenv("RUNS_FILE", str(runs))
    workflow = fragile_workflow(attempts)
    victim_script = f"{workflow}\nFAST = {FAST!r}\n{VICTIM}"
    with reaped([spawn(victim_script, db_url, point)]) as (victim,):
        seen = read_lines(victim, {"started", "paused"}, time.monotonic() + 2 * WAIT)
        execution_id = seen["started"]
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(timeout=WAIT) == -signal.SIGKILL
    victim_runs = len(runs.read_text().split())
    assert victim_runs == (0 if point == "claimed" else 1)
    # Still claimed by the dead runner, its attempt counted, before anyone takes over.
    claim = "SELECT status, attempt FROM cloaca_task_executions WHERE task_id = 'work'"
    assert run_sql(db_url, claim) == [("Running", 1)]

    namespace: dict[str, Any] = {}
    exec(workflow, namespace)  # the same workflow, without the victim's pause
    with cloaca.DefaultRunner(db_url, cloaca.DefaultRunnerConfig(**FAST)) as rescuer:
        result = rescuer.wait(execution_id, timeout=2 * WAIT)
        listed = rescuer.list_executions()

    work = result.task_results["work"]
    body_runs = [int(pid) for pid in runs.read_text().split()]
    assert len(body_runs) <= attempts  # the body never ran more often than allowed
    assert [row["id"] for row in listed] == [execution_id]  # nothing lost, nothing doubled
    final = result.final_context.to_dict()
    assert final["first_pid"] == victim.pid  # work done before the kill is kept
    if attempts == 1:  # the dead runner's attempt was the last: nothing runs it again
        assert body_runs == [victim.pid] * victim_runs
        assert result.status == "Failed"
        assert (work.status, work.attempts) == ("Failed", 1)
        assert work.error == "runner died during the attempt (attempt 1 of 1)"
        assert result.task_results["last"].status == "Skipped"
        return
    assert result.status == "Completed", result.error_message
    assert (work.status, work.attempts) == ("Completed", 2)  # the dead runner's counted
    assert body_runs == [victim.pid] * victim_runs + [os.getpid()]
    assert final["work_pid"] == final["last_pid"] == os.getpid()
