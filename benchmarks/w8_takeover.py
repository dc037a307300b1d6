"""W8: kill -9 a worker mid-load; how soon does a survivor take over? (SQLite and PostgreSQL)

A worker process runs a stream of 2-task executions (50 ms bodies) and is killed with SIGKILL
while tasks are running. A surviving runner in this process takes over the task executions the
dead worker held once its heartbeat is older than ``stale_claim_threshold_seconds``.
Figures: takeover_s (kill -> first orphaned task execution released to run again; the bound
is threshold + heartbeat interval + sweep interval), victim_heartbeat_age_s (how old the
victim's last heartbeat was at the kill: it must be fresh, or the figure measures a worker
that was already dead), lost (executions not Completed in the end). Run once per backend
(``--postgres``); the worker opens the same database through the URL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime

import cloaca
from _common import backend, database_url, emit, query, quick

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


def _running(url: str) -> list[tuple[str, str]]:
    return [
        (str(task_id), str(owner))
        for task_id, owner in query(
            url, "SELECT id, claimed_by FROM cloaca_task_executions WHERE status = 'Running'"
        )
    ]


def _heartbeat_age(url: str, runner_id: str) -> float:
    (beat,) = query(url, "SELECT heartbeat_at FROM cloaca_runners WHERE id = ?", (runner_id,))[0]
    at = datetime.fromisoformat(str(beat).replace("Z", "+00:00"))
    return (datetime.now(UTC) - at).total_seconds()


def _wait_for_takeover(url: str, orphans: list[tuple[str, str]], deadline: float) -> float | None:
    while orphans and time.monotonic() < deadline:
        for task_id, dead in orphans:
            rows = query(
                url,
                "SELECT status, claimed_by FROM cloaca_task_executions WHERE id = ?",
                (task_id,),
            )
            if rows and tuple(map(str, rows[0])) != ("Running", dead):
                return time.monotonic()
        time.sleep(0.005)
    return None


def main() -> None:
    executions = 100 if quick() else 400

    @cloaca.task(id="first")
    def first(context: cloaca.Context) -> None:
        time.sleep(0.05)

    @cloaca.task(id="second", dependencies=["first"])
    def second(context: cloaca.Context) -> None:
        time.sleep(0.05)

    with tempfile.TemporaryDirectory() as tmp, database_url(tmp, "w8") as url:
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(executions)], stdout=subprocess.PIPE, text=True
        )
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "started"
        time.sleep(1.0)  # mid-load
        # The survivor runs the same workflow. It may claim Ready work before the kill:
        # only the worker's claims are orphans (counting the survivor's own, which end after
        # one 50 ms body, once reported a "takeover" of 0.06 s).
        config = cloaca.DefaultRunnerConfig(**SETTINGS)
        with cloaca.DefaultRunner(url, config) as survivor:
            cloaca.workflow("w8_chain", [first, second])
            victims = {owner for _, owner in _running(url)} - {survivor.runner_id}
            heartbeat_age = max((_heartbeat_age(url, v) for v in victims), default=float("nan"))
            os.kill(worker.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            worker.wait()
            orphans = [(t, o) for t, o in _running(url) if o in victims]
            deadline = time.monotonic() + 60
            taken_at = _wait_for_takeover(url, orphans, deadline)
            while time.monotonic() < deadline:
                active = survivor.list_executions(status="Running", limit=1)
                pending = survivor.list_executions(status="Pending", limit=1)
                if not active and not pending:
                    break
                time.sleep(0.05)
            rows = survivor.list_executions(limit=executions + 10)
            lost = executions - sum(1 for r in rows if r["status"] == "Completed")
    takeover = (taken_at - killed_at) if taken_at is not None else float("nan")
    emit(
        "W8",
        backend(),
        {"executions": executions, **SETTINGS},
        {
            "takeover_s": takeover,
            "bound_s": SETTINGS["stale_claim_threshold_seconds"]
            + SETTINGS["heartbeat_interval_seconds"]
            + SETTINGS["stale_claim_sweep_interval_seconds"],
            "victim_heartbeat_age_s": heartbeat_age,
            "orphaned_tasks": len(orphans),
            "lost": lost,
        },
    )


if __name__ == "__main__":
    main()
