"""Three runner processes on one SQLite file share per-second cron schedules: every slot in
the measured window fires exactly once (zero duplicates, zero missed). Real processes with
bounded waits; nothing asserts timings."""

from __future__ import annotations

import selectors
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig

WAIT = 30.0
RUN_SECONDS = 5.0
PROCESSES = 3
SCHEDULES = 3

WORKER = """
import sys
import threading

import cloaca

@cloaca.task(id="tick")
def tick(context):
    context.set("ran", True)

cloaca.workflow("mp_tick", [tick])
runner = cloaca.DefaultRunner(
    sys.argv[1], cloaca.DefaultRunnerConfig(cron_poll_interval_seconds=1)
)
print("ready", flush=True)
threading.Event().wait(float(sys.argv[2]))  # run for a while, then stop
print("stopping", flush=True)
runner.shutdown()
print("stopped", flush=True)
"""


def wait_for(proc: subprocess.Popen[str], word: str, deadline: float) -> float:
    """Block until ``proc`` prints a line starting with ``word``; returns the wall time."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise AssertionError(f"worker did not print {word!r} in time")
            line = proc.stdout.readline()
            if not line:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"worker exited before {word!r}: {stderr}")
            if line.startswith(word):
                return time.time()


def test_processes_sharing_a_file_fire_every_slot_exactly_once(db_url: str) -> None:
    @cloaca.task(id="tick")
    def tick(context: Context) -> None:
        context.set("ran", True)

    cloaca.workflow("mp_tick", [tick])
    manager_config = DefaultRunnerConfig(enable_cron_scheduling=False)
    with DefaultRunner(db_url, manager_config) as manager:
        ids = [
            manager.register_workflow_instance("mp_tick", f"i{i}", "* * * * * *", "UTC", {"i": i})
            for i in range(SCHEDULES)
        ]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, db_url, str(RUN_SECONDS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    try:
        deadline = time.monotonic() + WAIT
        ready = max(wait_for(w, "ready", deadline) for w in workers)
        stopping = min(wait_for(w, "stopping", deadline) for w in workers)
        for w in workers:
            wait_for(w, "stopped", deadline)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.communicate(timeout=WAIT)

    # Every whole second after all workers were ready and a second before the first stopped.
    first = datetime.fromtimestamp(int(ready) + 1, UTC)
    last = datetime.fromtimestamp(int(stopping) - 1, UTC)
    window = {first + timedelta(seconds=s) for s in range(int((last - first).total_seconds()) + 1)}
    assert len(window) >= 2, "the workers overlapped for less than two slots"
    with DefaultRunner(db_url, manager_config) as manager:
        history = {sid: manager.get_cron_execution_history(sid) for sid in ids}
        executions = [
            manager.get_execution(row["id"]).final_context for row in manager.list_executions()
        ]
    slots = Counter((c["schedule_id"], c["scheduled_time"]) for c in executions)
    assert set(slots.values()) == {1}, "a slot started more than one execution"
    for sid in ids:
        fired = {datetime.fromisoformat(r["scheduled_time"]) for r in history[sid]}
        assert len(fired) == len(history[sid])
        assert window <= fired, f"missed slots: {sorted(window - fired)}"
