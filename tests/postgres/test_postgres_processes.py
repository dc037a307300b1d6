"""Several worker processes on one PostgreSQL schema: each due trigger poll and each cron
slot happens once cluster-wide, and each fire starts exactly one execution."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import cloaca

WORKER = """
import sys, time
import cloaca
from cloaca import TriggerResult

url, schema, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
counter = iter(range(10**9))

@cloaca.task(id="record")
def record(context):
    context.set("done", True)

cloaca.workflow("pg_mp", [record])

@cloaca.trigger(name="pg_mp_tick", poll_interval="200ms", allow_concurrent=True)
def tick():
    return TriggerResult.fire({"n": next(counter), "pid": __import__("os").getpid()})

config = cloaca.DefaultRunnerConfig(trigger_base_poll_interval=0.05)
with cloaca.DefaultRunner(url, config, schema=schema) as runner:
    runner.register_trigger("pg_mp_tick", "pg_mp")
    runner.register_cron_workflow("pg_mp", "* * * * * *")
    print("up", flush=True)
    time.sleep(seconds)
"""


def test_two_processes_poll_each_due_instant_once_and_fire_each_slot_once(pg_schema) -> None:
    url, schema = pg_schema
    cloaca.DefaultRunner.with_schema(url, schema).shutdown()  # migrate once up front
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, schema, "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        outputs = [w.communicate(timeout=60) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]

    with cloaca.DefaultRunner.with_schema(url, schema) as viewer:
        evaluations = viewer.get_trigger_evaluations("pg_mp_tick", 1000)
        polled_instants = Counter(e["scheduled_at"] for e in evaluations)
        assert len(evaluations) >= 8
        assert set(polled_instants.values()) == {1}  # no instant polled twice
        assert len({e["runner_id"] for e in evaluations}) == 2  # both processes polled
        fired = [e for e in evaluations if e["outcome"] == "fired"]
        history = viewer.get_trigger_execution_history("pg_mp_tick", limit=1000)
        assert len(history) == len(fired)  # one execution per fire
        assert len({h["workflow_execution_id"] for h in history}) == len(history)

        (schedule,) = viewer.list_cron_schedules()
        slots = viewer.get_cron_execution_history(schedule["id"], limit=100)
        assert len(slots) >= 2
        assert len({s["scheduled_time"] for s in slots}) == len(slots)  # each slot once


NOTIFY_WORKER = """
import sys, time
import cloaca

@cloaca.task(id="echo")
def echo(context):
    context.set("echoed", context.get("value"))

cloaca.workflow("pg_notify_echo", [echo])
# Every timer is a minute away: only a notification can wake this worker in time.
config = cloaca.DefaultRunnerConfig(
    scheduler_poll_interval_ms=60_000,
    heartbeat_interval_seconds=60,
    stale_claim_threshold_seconds=120,
    stale_claim_sweep_interval_seconds=60,
    enable_trigger_scheduling=False,
    enable_cron_scheduling=False,
)
with cloaca.DefaultRunner(sys.argv[1], config, schema=sys.argv[2]) as runner:
    print("up", flush=True)
    sys.stdin.readline()
"""


def test_work_and_results_cross_processes_by_notification_not_by_polling(pg_schema) -> None:
    url, schema = pg_schema
    worker = subprocess.Popen(
        [sys.executable, "-c", NOTIFY_WORKER, url, schema],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "up"
        config = cloaca.DefaultRunnerConfig(scheduler_poll_interval_ms=60_000)
        with cloaca.DefaultRunner(url, config, schema=schema) as client:
            for value in range(3):
                # Far less than the worker's timers: it must be woken by the start's NOTIFY.
                result = client.wait(client.start("pg_notify_echo", {"value": value}), 8)
                assert result.status == "Completed"
                assert result.final_context.get("echoed") == value
    finally:
        if worker.stdin is not None:
            worker.stdin.write("stop\n")
            worker.stdin.flush()
        worker.communicate(timeout=30)
