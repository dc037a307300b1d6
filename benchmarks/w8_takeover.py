"""W8 (SQLite flavour): kill -9 a worker mid-load; how soon does a survivor take over?

A worker process runs a stream of 2-task executions (50 ms bodies) on one SQLite file and is
killed with SIGKILL while tasks are running. A surviving runner takes the task executions the
dead worker held over once its heartbeat is older than ``stale_claim_threshold_seconds``.
Figures: takeover_s (kill -> first orphaned task execution released to run again), lost
(executions not Completed in the end), threshold_s for reference.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import cloaca
from _common import emit, quick

SETTINGS = {
    "heartbeat_interval_seconds": 0.5,
    "stale_claim_threshold_seconds": 2.0,
    "stale_claim_sweep_interval_seconds": 0.25,
}

WORKER = f"""
import sys, time
import cloaca
SETTINGS = {SETTINGS!r}

@cloaca.task(id="first")
def first(context):
    time.sleep(0.05)

@cloaca.task(id="second", dependencies=["first"])
def second(context):
    time.sleep(0.05)

cloaca.workflow("w8_chain", [first, second])
with cloaca.DefaultRunner(sys.argv[1], cloaca.DefaultRunnerConfig(**SETTINGS)) as runner:
    ids = [runner.start("w8_chain", {{"n": i}}) for i in range(int(sys.argv[2]))]
    print("started", flush=True)
    time.sleep(3600)
"""


def main() -> None:
    executions = 100 if quick() else 400

    @cloaca.task(id="first")
    def first(context: cloaca.Context) -> None:
        time.sleep(0.05)

    @cloaca.task(id="second", dependencies=["first"])
    def second(context: cloaca.Context) -> None:
        time.sleep(0.05)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite://{tmp}/w8.db"
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(executions)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "started"
        time.sleep(1.0)  # mid-load
        # The survivor runs the same workflow; it is registered only now, so it claims
        # nothing before the kill.
        config = cloaca.DefaultRunnerConfig(**SETTINGS)
        with cloaca.DefaultRunner(url, config) as survivor:
            cloaca.workflow("w8_chain", [first, second])
            os.kill(worker.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            worker.wait()
            probe = sqlite3.connect(f"{tmp}/w8.db")
            orphans = probe.execute(
                "SELECT id, claimed_by FROM cloaca_task_executions WHERE status = 'Running'"
            ).fetchall()
            taken_at = None
            deadline = time.monotonic() + 60
            while orphans and taken_at is None and time.monotonic() < deadline:
                for task_id, dead in orphans:
                    row = probe.execute(
                        "SELECT status, claimed_by FROM cloaca_task_executions WHERE id = ?",
                        (task_id,),
                    ).fetchone()
                    if row != ("Running", dead):
                        taken_at = time.monotonic()
                        break
                time.sleep(0.005)
            probe.close()
            while time.monotonic() < deadline:
                active = survivor.list_executions(status="Running", limit=1)
                pending = survivor.list_executions(status="Pending", limit=1)
                if not active and not pending:
                    break
                time.sleep(0.05)
            rows = survivor.list_executions(limit=executions + 10)
            lost = sum(1 for r in rows if r["status"] != "Completed")
    takeover = (taken_at - killed_at) if taken_at is not None else float("nan")
    emit(
        "W8",
        "sqlite",
        {"executions": executions, **SETTINGS},
        {
            "takeover_s": takeover,
            "threshold_s": SETTINGS["stale_claim_threshold_seconds"],
            "orphaned_tasks": len(orphans),
            "lost": lost,
        },
    )


if __name__ == "__main__":
    main()
