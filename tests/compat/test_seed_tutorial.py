"""The seed tutorial "09 - Event Triggers", section by section, in Python.

Each test follows one section of ``shared/seed/09-event-triggers.md``: the FileWatcher
program (steps 1-3), context passing, deduplication, the queue-depth and health-check
patterns, the four best practices, Python management from a second process, and combining
triggers with cron. Time is a fake clock (``cloaca.testing``) except where the point is a
real process or real polling.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerError, TriggerResult
from cloaca.testing import Harness

# -- Step 1: the trigger -----------------------------------------------------------------------


class FileWatcherTrigger(cloaca.Trigger):
    """The tutorial's trigger: polls a directory, "finds" a file every 5th poll."""

    allow_concurrent = False  # don't process the same file twice

    def __init__(self, name: str, watch_path: str, poll_interval: timedelta) -> None:
        super().__init__(name=name, poll_interval=poll_interval)
        self.watch_path = watch_path
        self.counter = itertools.count()  # simulates file arrivals
        self.stamp = itertools.count(1_700_000_000)

    def check_for_new_files(self) -> str | None:
        if next(self.counter) % 5 == 4:
            return f"data_{next(self.stamp)}.csv"
        return None

    def poll(self) -> TriggerResult:
        filename = self.check_for_new_files()
        if filename is None:
            return TriggerResult.skip()
        ctx = Context()
        ctx.insert("filename", filename)
        ctx.insert("watch_path", self.watch_path)
        return TriggerResult.fire(ctx)


# -- Step 2: the tasks ---------------------------------------------------------------------------


@pytest.fixture
def file_processing() -> list[str]:
    """The tutorial's two tasks as the ``file_processing`` workflow; returns the task log."""
    log: list[str] = []

    @cloaca.task(id="validate_file", dependencies=[])
    def validate_file(context: Context) -> None:
        log.append(f"validate {context.get('filename', 'unknown')}")
        context.insert("validated", True)

    @cloaca.task(id="process_file", dependencies=["validate_file"])
    def process_file(context: Context) -> None:
        log.append(f"process {context.get('filename', 'unknown')}")
        context.insert("processed", True)

    cloaca.workflow("file_processing", [validate_file, process_file])
    return log


def _config() -> DefaultRunnerConfig:
    config = DefaultRunnerConfig()
    config.enable_trigger_scheduling = True
    config.trigger_base_poll_interval = timedelta(seconds=1)
    return config


# -- Step 3: register and run --------------------------------------------------------------------


def test_step_3_the_file_watcher_program_runs_for_30_seconds(file_processing: list[str]) -> None:
    with Harness(config=_config()) as h:
        trigger = FileWatcherTrigger("file_watcher", "/data/inbox", timedelta(seconds=2))
        cloaca.register_trigger(trigger)
        h.runner.register_trigger("file_watcher", "file_processing")
        h.advance(30)  # "Running for 30 seconds..."
        executions = h.runner.list_executions(workflow_name="file_processing")
        history = h.runner.get_trigger_execution_history("file_watcher")
        polls = h.runner.get_trigger_evaluations("file_watcher", limit=100)
    assert len(polls) == 16  # t = 0, 2, ..., 30
    assert [e["status"] for e in executions] == ["Completed"] * 3  # 5th, 10th, 15th poll
    assert len(history) == 3
    assert file_processing == [
        "validate data_1700000000.csv",
        "process data_1700000000.csv",
        "validate data_1700000001.csv",
        "process data_1700000001.csv",
        "validate data_1700000002.csv",
        "process data_1700000002.csv",
    ]


def test_step_3_with_real_polling_and_the_tutorial_url_form(
    tmp_path: Path, file_processing: list[str]
) -> None:
    config = _config()
    config.trigger_base_poll_interval = timedelta(milliseconds=20)
    url = f"sqlite://{tmp_path / 'triggers.db'}?mode=rwc"
    runner = cloaca.DefaultRunner.with_config(url, config)
    try:
        trigger = FileWatcherTrigger("file_watcher", "/data/inbox", timedelta(milliseconds=20))
        cloaca.register_trigger(trigger)
        runner.register_trigger("file_watcher", "file_processing")
        deadline = time.monotonic() + 20
        while sum(1 for line in file_processing if line.startswith("process")) < 2:
            assert time.monotonic() < deadline, "no fires within the deadline"
            time.sleep(0.02)
    finally:
        runner.shutdown()
    assert file_processing[:2] == ["validate data_1700000000.csv", "process data_1700000000.csv"]


# -- Context passing ---------------------------------------------------------------------------


def test_context_passing_from_the_trigger_to_every_task(file_processing: list[str]) -> None:
    with Harness(config=_config()) as h:
        h.runner.register_trigger(
            FileWatcherTrigger("file_watcher", "/data/inbox", timedelta(seconds=2)),
            "file_processing",
        )
        h.advance(8)  # the 5th poll fires
        [execution] = h.runner.list_executions()
        result = h.runner.get_execution(execution["id"])
    final = result.final_context.to_dict()
    assert final == {
        "filename": "data_1700000000.csv",
        "watch_path": "/data/inbox",
        "trigger_name": "file_watcher",
        "triggered_at": "2026-01-01T00:00:08Z",
        "validated": True,
        "processed": True,
    }


# -- Deduplication -----------------------------------------------------------------------------


def test_deduplication_skips_a_fire_whose_context_is_already_running(
    file_processing: list[str],
) -> None:
    class SameFileTwice(FileWatcherTrigger):
        def poll(self) -> TriggerResult:
            return TriggerResult.fire({"filename": "report.csv", "watch_path": self.watch_path})

    with Harness(config=_config()) as h:
        h.runner.register_trigger(
            SameFileTwice("file_watcher", "/data/inbox", timedelta(seconds=2)), "file_processing"
        )
        h.poll_triggers()  # fires; the execution is now running (not finished)
        h.clock.advance(2)
        h.poll_triggers()  # same context hash while active: skipped
        outcomes = [e["outcome"] for e in h.runner.get_trigger_evaluations("file_watcher")]
        assert outcomes == ["deduplicated", "fired"]
        h.run_until_idle()  # the execution finishes and releases the hold
        h.advance(2)
        outcomes = [e["outcome"] for e in h.runner.get_trigger_evaluations("file_watcher")]
        assert outcomes[0] == "fired"
        assert len(h.runner.list_executions()) == 2


# -- Common trigger patterns -------------------------------------------------------------------


class QueueDepthTrigger(cloaca.Trigger):
    """Fires when a queue exceeds a threshold; parallel draining is fine."""

    allow_concurrent = True

    def __init__(self, name: str, queue: list[Any], threshold: int, poll_interval: str) -> None:
        super().__init__(name=name, poll_interval=poll_interval)
        self.queue = queue
        self.threshold = threshold

    def get_queue_depth(self) -> int:
        return len(self.queue)

    def poll(self) -> TriggerResult:
        depth = self.get_queue_depth()
        if depth >= self.threshold:
            ctx = Context()
            ctx.insert("queue_depth", depth)
            return TriggerResult.fire(ctx)
        return TriggerResult.skip()


def test_queue_depth_pattern_fires_at_the_threshold_and_drains_in_parallel() -> None:
    queue: list[int] = []
    drained: list[int] = []

    @cloaca.task(id="drain")
    def drain(context: Context) -> None:
        drained.append(context.get("queue_depth"))

    cloaca.workflow("drain_queue", [drain])
    with Harness() as h:
        h.runner.register_trigger(QueueDepthTrigger("queue_depth", queue, 3, "5s"), "drain_queue")
        queue.extend([1, 2])
        h.advance(5)
        assert drained == []
        queue.append(3)
        h.clock.advance(5)
        h.poll_triggers()
        h.clock.advance(5)
        h.poll_triggers()
        # Same depth twice while the first drain runs: allow_concurrent lets both run.
        assert [e["status"] for e in h.runner.list_executions()] == ["Pending", "Pending"]
        h.run_until_idle()
    assert drained == [3, 3]


class HealthCheckTrigger(cloaca.Trigger):
    """Fires a recovery workflow after N consecutive failed health checks."""

    allow_concurrent = False

    def __init__(self, name: str, service_name: str, failure_threshold: int, health: list[bool]):
        super().__init__(name=name, poll_interval="10s")
        self.service_name = service_name
        self.failure_threshold = failure_threshold
        self.consecutive_failures = 0
        self._lock = threading.Lock()  # polls may run on a worker thread
        self.health = health

    def check_service_health(self) -> bool:
        return self.health.pop(0) if self.health else True

    def poll(self) -> TriggerResult:
        with self._lock:
            if self.check_service_health():
                self.consecutive_failures = 0
                return TriggerResult.skip()
            self.consecutive_failures += 1
            failures = self.consecutive_failures
            if failures >= self.failure_threshold:
                self.consecutive_failures = 0
                ctx = Context()
                ctx.insert("service_name", self.service_name)
                ctx.insert("consecutive_failures", failures)
                return TriggerResult.fire(ctx)
            return TriggerResult.skip()


def test_health_check_pattern_fires_recovery_after_consecutive_failures() -> None:
    recoveries: list[dict[str, Any]] = []

    @cloaca.task(id="restart_service")
    def restart_service(context: Context) -> None:
        recoveries.append(
            {k: context.get(k) for k in ("service_name", "consecutive_failures", "trigger_name")}
        )

    cloaca.workflow("recover_service", [restart_service])
    #         ok    fail   fail   ok     fail   fail   fail   ok
    health = [True, False, False, True, False, False, False, True]
    with Harness() as h:
        h.runner.register_trigger(
            HealthCheckTrigger("payments_health", "payments", 3, health), "recover_service"
        )
        h.advance(70)
    assert recoveries == [
        {"service_name": "payments", "consecutive_failures": 3, "trigger_name": "payments_health"}
    ]


# -- Best practices ----------------------------------------------------------------------------


def test_best_practice_1_poll_cost_is_visible_in_the_evaluation_log(
    file_processing: list[str],
) -> None:
    @cloaca.trigger(name="heavy", poll_interval="1m")
    def heavy() -> bool:
        time.sleep(0.02)  # "Bad: heavy processing in poll" shows up as duration_ms
        return False

    @cloaca.trigger(name="light", poll_interval="1m")
    def light() -> bool:
        return False

    with Harness() as h:
        h.runner.register_trigger("heavy", "file_processing")
        h.runner.register_trigger("light", "file_processing")
        h.advance(0)
        [slow] = h.runner.get_trigger_evaluations("heavy")
        [fast] = h.runner.get_trigger_evaluations("light")
    assert slow["duration_ms"] >= 20 > fast["duration_ms"]


def test_best_practice_2_identifying_context_beats_fire_none(file_processing: list[str]) -> None:
    files = iter(["a.csv", "b.csv"])

    @cloaca.trigger(name="anonymous", poll_interval="1s")
    def anonymous() -> TriggerResult:
        return TriggerResult.fire(None)  # "All fires look identical!"

    @cloaca.trigger(name="identified", poll_interval="1s")
    def identified() -> TriggerResult:
        name = next(files)
        return TriggerResult.fire({"filename": name, "file_hash": f"sha-{name}"})

    with Harness() as h:
        h.runner.register_trigger("anonymous", "file_processing")
        h.runner.register_trigger("identified", "file_processing")
        for _ in range(2):  # two polls each while nothing has finished yet
            h.poll_triggers()
            h.clock.advance(1)
        anonymous_outcomes = [e["outcome"] for e in h.runner.get_trigger_evaluations("anonymous")]
        identified_outcomes = [e["outcome"] for e in h.runner.get_trigger_evaluations("identified")]
    assert anonymous_outcomes == ["deduplicated", "fired"]
    assert identified_outcomes == ["fired", "fired"]


def test_best_practice_3_choose_concurrency_per_use_case(file_processing: list[str]) -> None:
    with Harness() as h:
        h.runner.register_trigger(
            FileWatcherTrigger("files", "/in", timedelta(seconds=1)), "file_processing"
        )
        h.runner.register_trigger(QueueDepthTrigger("queue", [1], 1, "1s"), "file_processing")
        schedules = {s["trigger_name"]: s for s in h.runner.list_trigger_schedules()}
    assert schedules["files"]["allow_concurrent"] is False  # file processing, recovery
    assert schedules["queue"]["allow_concurrent"] is True  # queue draining, scaling


def test_best_practice_4_errors_are_handled_gracefully(file_processing: list[str]) -> None:
    checks = iter([ConnectionError("db down"), True, ConnectionError("db down"), False])

    def check_condition() -> bool:
        value = next(checks)
        if isinstance(value, Exception):
            raise value
        return value

    @cloaca.trigger(name="graceful", poll_interval="1s")
    def graceful() -> TriggerResult:
        try:
            condition = check_condition()
        except ConnectionError:
            return TriggerResult.skip()  # continue polling
        return TriggerResult.fire(None) if condition else TriggerResult.skip()

    @cloaca.trigger(name="careless", poll_interval="1s")
    def careless() -> TriggerResult:
        raise TriggerError("check failed")  # the engine records it and keeps polling

    with Harness() as h:
        h.runner.register_trigger("graceful", "file_processing")
        h.runner.register_trigger("careless", "file_processing")
        h.advance(3)
        graceful_outcomes = [e["outcome"] for e in h.runner.get_trigger_evaluations("graceful")]
        careless_outcomes = [e["outcome"] for e in h.runner.get_trigger_evaluations("careless")]
    assert graceful_outcomes == ["skipped", "skipped", "fired", "skipped"]
    assert careless_outcomes[-1] == "error" and len(careless_outcomes) >= 2


# -- Python management -------------------------------------------------------------------------

MANAGEMENT_SNIPPET = """
import cloaca

runner = cloaca.DefaultRunner("sqlite://triggers.db")

# List all triggers
schedules = runner.list_trigger_schedules()
for schedule in schedules:
    print(f"{schedule['trigger_name']}: {schedule['enabled']}")

# Enable/disable triggers
runner.set_trigger_enabled("file_watcher", False)

# View execution history
history = runner.get_trigger_execution_history("file_watcher")
for execution in history:
    print(f"Started: {execution['started_at']}")
runner.shutdown()
"""


def test_python_management_from_a_second_process(
    tmp_path: Path, file_processing: list[str]
) -> None:
    worker_trigger = FileWatcherTrigger("file_watcher", "/data/inbox", timedelta(seconds=2))
    with Harness(f"sqlite://{tmp_path / 'triggers.db'}", _config()) as worker:
        worker.runner.register_trigger(worker_trigger, "file_processing")
        worker.advance(18)  # two fires
        script = tmp_path / "manage.py"
        script.write_text(textwrap.dedent(MANAGEMENT_SNIPPET))
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,  # "sqlite://triggers.db" is relative to the working directory
            capture_output=True,
            text=True,
            timeout=50,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0] == "file_watcher: True"
        assert lines[1:] == ["Started: 2026-01-01T00:00:18Z", "Started: 2026-01-01T00:00:08Z"]
        polls_before = len(worker.runner.get_trigger_evaluations("file_watcher"))
        worker.advance(30)  # disabled by the other process: not polled any more
        assert len(worker.runner.get_trigger_evaluations("file_watcher")) == polls_before
        schedule = worker.runner.get_trigger_schedule("file_watcher")
        assert schedule is not None and schedule["enabled"] is False


# -- Combining triggers with cron --------------------------------------------------------------


def test_combining_triggers_with_cron(file_processing: list[str]) -> None:
    with Harness(config=_config()) as h:
        h.runner.register_trigger(
            FileWatcherTrigger("file_watcher", "/data/inbox", timedelta(seconds=1)),
            "file_processing",
        )
        h.runner.register_cron_workflow("file_processing", "* * * * * *")  # every second
        h.advance(9)
        contexts = [
            h.runner.get_execution(e["id"]).final_context.to_dict()
            for e in h.runner.list_executions(limit=1000)
        ]
    by_trigger = [c for c in contexts if "trigger_name" in c]
    by_cron = [c for c in contexts if "scheduled_time" in c]
    assert len(by_trigger) == 2  # the 5th and 10th poll (t = 4 s, 9 s)
    assert {c["filename"] for c in by_trigger} == {"data_1700000000.csv", "data_1700000001.csv"}
    assert len(by_cron) >= 9
    assert all(c["processed"] for c in contexts)
