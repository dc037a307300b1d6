"""A ManagementClient in the test process manages a worker running in another process
(each backend): what it starts or fires is run there, a cancel reaches it, and the only
runner row is the worker's."""

from __future__ import annotations

import time
from pathlib import Path

from proc_support import WAIT, read_lines, reap, spawn

from cloaca.runner.management import ManagementClient

WORKER = r"""
import sys
import time
from pathlib import Path

import cloaca

db, gate = sys.argv[1], Path(sys.argv[2])


@cloaca.task(id="greet")
def greet(context):
    context.set("greeting", "hello " + context.get("name", "world"))


@cloaca.task(id="held")
def held(context):
    deadline = time.monotonic() + 20
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@cloaca.task(id="after", dependencies=["held"])
def after(context):
    context.set("after_ran", True)


class Never(cloaca.Trigger):
    name = "never"
    poll_interval = "1h"

    def poll(self):
        return cloaca.TriggerResult.skip()


cloaca.workflow("greet", [greet])
cloaca.workflow("hold", [held, after])
config = cloaca.DefaultRunnerConfig(scheduler_poll_interval_ms=20)
with cloaca.DefaultRunner(db, config) as runner:
    runner.register_trigger(Never(), "greet")
    print("ready", runner.runner_id, flush=True)
    deadline = time.monotonic() + 60
    while not (gate.parent / "stop").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""


def test_a_client_manages_a_worker_in_another_process(db_url: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    worker = spawn(WORKER, db_url, str(gate))
    try:
        runner_id = read_lines(worker, {"ready"}, time.monotonic() + WAIT)["ready"]
        with ManagementClient.open(db_url) as client:
            [row] = client.list_runners()
            assert (row["id"], row["pid"]) == (runner_id, worker.pid)

            started = client.start("greet", {"name": "from afar"})
            result = client.wait(started, timeout=WAIT)
            assert result.status == "Completed"
            assert result.final_context.get("greeting") == "hello from afar"

            client.set_trigger_enabled("never", False)
            assert client.get_trigger_schedule("never")["enabled"] is False
            fired = client.fire_trigger("never", {"name": "a fire"})
            assert fired is not None
            assert client.wait(fired, timeout=WAIT).final_context.get("greeting") == (
                "hello a fire"
            )

            held = client.start("hold")
            deadline = time.monotonic() + WAIT
            while client.get_execution(held).status != "Running":
                assert time.monotonic() < deadline, "the worker never claimed the task"
                time.sleep(0.02)
            assert client.list_runners()[0]["running_tasks"] == 1
            assert client.cancel_execution(held) is True
            gate.touch()
            cancelled = client.wait(held, timeout=WAIT)
            assert cancelled.status == "Cancelled"
            assert cancelled.final_context.get("after_ran") is None  # nothing new started

            assert [r["id"] for r in client.list_runners()] == [runner_id]
    finally:
        gate.touch()
        (tmp_path / "stop").touch()
        try:
            worker.wait(WAIT)
        finally:
            reap(worker)
