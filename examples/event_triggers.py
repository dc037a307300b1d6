"""The seed tutorial "09 - Event Triggers" as a Python program (``make demo``).

A file-watcher trigger "finds" a file every 5th poll and fires the ``file_processing``
workflow (``validate_file`` → ``process_file``) with the file in the context. A file stays
in the inbox until it is processed, and processing takes longer than the poll interval, so
the watcher reports the same file again while its execution is still running: that fire
is deduplicated. A queue-depth trigger (parallel draining allowed) and a health-check
trigger (recovery after 3 failed checks) run alongside. After ~15 seconds the program
prints every trigger's history and evaluation counts and exits.

Run it with ``python examples/event_triggers.py``; it uses a fresh SQLite file in a
temporary directory.
"""

from __future__ import annotations

import itertools
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig, TriggerResult

RUN_SECONDS = 15.0
STARTED = time.monotonic()


def say(message: str) -> None:
    """Print a line stamped with the seconds since the program started."""
    print(f"[{time.monotonic() - STARTED:5.1f}s] {message}", flush=True)


# -- Step 1: the trigger ------------------------------------------------------------------------

INBOX: list[str] = []  # the simulated watch directory (files stay until processed)
INBOX_LOCK = threading.Lock()


class FileWatcherTrigger(cloaca.Trigger):
    """Polls a directory for new files (simulated: a file arrives every 5th poll)."""

    allow_concurrent = False  # don't process the same file twice
    # A file whose run failed stays in the inbox: retry it after 30 s, 1 min, 2 min, ...
    # (the default; "hold" would wait for `cloaca triggers fire`, "refire" retries at once).
    on_failed_run = "backoff"

    def __init__(self, name: str, watch_path: str, poll_interval: timedelta) -> None:
        super().__init__(name=name, poll_interval=poll_interval)
        self.watch_path = watch_path
        self.polls = itertools.count()

    def check_for_new_files(self) -> str | None:
        """The oldest file in the inbox; "finds" a new one every 5th poll."""
        with INBOX_LOCK:
            if next(self.polls) % 5 == 4:
                filename = f"data_{int(time.time())}.csv"
                INBOX.append(filename)
                say(f"Found new file: {filename}")
            return INBOX[0] if INBOX else None

    def poll(self) -> TriggerResult:
        filename = self.check_for_new_files()
        if filename is None:
            return TriggerResult.skip()
        ctx = Context()
        ctx.insert("filename", filename)
        ctx.insert("watch_path", self.watch_path)
        return TriggerResult.fire(ctx)


# -- Step 2: the workflow tasks ----------------------------------------------------------------


@cloaca.task(id="validate_file", dependencies=[])
def validate_file(context: Context) -> None:
    filename = context.get("filename", "unknown")
    say(f"Validating file: {filename}")
    time.sleep(0.1)
    context.insert("validated", True)


@cloaca.task(id="process_file", dependencies=["validate_file"])
def process_file(context: Context) -> None:
    filename = context.get("filename", "unknown")
    say(f"Processing file: {filename} (a big one: longer than the poll interval)")
    time.sleep(2.5)
    with INBOX_LOCK:
        if filename in INBOX:
            INBOX.remove(filename)  # processed: it leaves the inbox
    context.insert("processed", True)
    say(f"File '{filename}' processed")


# -- Common trigger patterns ------------------------------------------------------------------


class QueueDepthTrigger(cloaca.Trigger):
    """Fires when the queue reaches a threshold; parallel draining is allowed."""

    allow_concurrent = True

    def __init__(self, name: str, queue_name: str, threshold: int, poll_interval: str) -> None:
        super().__init__(name=name, poll_interval=poll_interval)
        self.queue_name = queue_name
        self.threshold = threshold
        self.depths = itertools.cycle([1, 2, 4, 6, 3, 7, 2, 0])  # simulated queue depth

    def get_queue_depth(self) -> int:
        return next(self.depths)

    def poll(self) -> TriggerResult:
        depth = self.get_queue_depth()
        if depth >= self.threshold:
            return TriggerResult.fire({"queue_name": self.queue_name, "queue_depth": depth})
        return TriggerResult.skip()


@cloaca.task(id="drain_queue")
def drain_queue(context: Context) -> None:
    say(f"Draining {context.get('queue_depth')} messages from {context.get('queue_name')}")


class HealthCheckTrigger(cloaca.Trigger):
    """Fires a recovery workflow after ``failure_threshold`` failed health checks in a row."""

    allow_concurrent = False

    def __init__(self, name: str, service_name: str, failure_threshold: int) -> None:
        super().__init__(name=name, poll_interval="1s")
        self.service_name = service_name
        self.failure_threshold = failure_threshold
        self.consecutive_failures = 0
        self.health = itertools.cycle([True, True, False, False, False, True, True, True])

    def check_service_health(self) -> bool:
        return next(self.health)

    def poll(self) -> TriggerResult:
        if self.check_service_health():
            self.consecutive_failures = 0
            return TriggerResult.skip()
        self.consecutive_failures += 1
        failures = self.consecutive_failures
        if failures >= self.failure_threshold:
            self.consecutive_failures = 0
            return TriggerResult.fire(
                {"service_name": self.service_name, "consecutive_failures": failures}
            )
        return TriggerResult.skip()


@cloaca.task(id="restart_service")
def restart_service(context: Context) -> None:
    say(
        f"Restarting {context.get('service_name')} after "
        f"{context.get('consecutive_failures')} failed health checks"
    )


# -- Printing what the engine does ---------------------------------------------------------------


class FireLog(logging.Handler):
    """Prints the engine's fire and dedup log lines as they happen."""

    def emit(self, record: logging.LogRecord) -> None:
        say(record.getMessage())


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table."""
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def report(runner: DefaultRunner) -> None:
    """Trigger schedules with evaluation counts, then each trigger's fire history."""
    outcomes = ["fired", "deduplicated", "skipped", "error", "timeout"]
    rows = []
    for schedule in runner.list_trigger_schedules():
        name = schedule["trigger_name"]
        counts = Counter(e["outcome"] for e in runner.get_trigger_evaluations(name, limit=1000))
        rows.append(
            [
                name,
                schedule["workflow_name"],
                f"{schedule['poll_interval_ms'] / 1000:g}s",
                "yes" if schedule["allow_concurrent"] else "no",
                *(counts.get(o, 0) for o in outcomes),
            ]
        )
    print("\nTrigger schedules and evaluations")
    print(table(["trigger", "workflow", "every", "concurrent", *outcomes], rows))
    for schedule in runner.list_trigger_schedules():
        name = schedule["trigger_name"]
        history = runner.get_trigger_execution_history(name)
        print(f"\nHistory of {name} ({len(history)} fires, newest first)")
        rows = []
        for fire in history:
            execution = runner.get_execution(fire["workflow_execution_id"])
            context = execution.final_context
            detail = (
                context.get("filename") or context.get("queue_depth") or context.get("service_name")
            )
            rows.append(
                [
                    fire["started_at"],
                    fire["completed_at"] or "-",
                    execution.status,
                    detail,
                    fire["context_hash"][:12],
                ]
            )
        print(table(["started", "completed", "status", "context", "hash"], rows))


# -- Step 3: register and run --------------------------------------------------------------------


def main() -> None:
    engine_log = logging.getLogger("cloaca.engine.triggers.fire")
    engine_log.setLevel(logging.INFO)
    engine_log.addHandler(FireLog())

    # Configure the runner with trigger scheduling.
    config = DefaultRunnerConfig()
    config.enable_trigger_scheduling = True
    config.trigger_base_poll_interval = timedelta(seconds=1)

    with tempfile.TemporaryDirectory() as tmp:
        # `make demo` keeps the database (CLOACA_DEMO_DB) for the dashboard to show.
        path = os.environ.get("CLOACA_DEMO_DB") or f"{tmp}/triggers.db"
        runner = DefaultRunner.with_config(f"sqlite://{path}?mode=rwc", config)

        # Create the workflows.
        cloaca.workflow("file_processing", [validate_file, process_file])
        cloaca.workflow("drain_queue", [drain_queue])
        cloaca.workflow("recover_service", [restart_service])

        # Create and register the triggers, then their schedules.
        trigger = FileWatcherTrigger("file_watcher", "/data/inbox", timedelta(seconds=2))
        cloaca.register_trigger(trigger)
        runner.register_trigger("file_watcher", "file_processing")
        runner.register_trigger(QueueDepthTrigger("queue_depth", "orders", 5, "1s"), "drain_queue")
        runner.register_trigger(
            HealthCheckTrigger("payments_health", "payments", 3), "recover_service"
        )

        say(f"Triggers registered. Running for {RUN_SECONDS:g} seconds...")
        time.sleep(RUN_SECONDS)
        runner.shutdown()  # waits for running tasks
        engine_log.removeHandler(engine_log.handlers[0])

        # Read the results from the database with a management-only runner.
        manager = DefaultRunner(
            f"sqlite://{path}",
            DefaultRunnerConfig(enable_trigger_scheduling=False, enable_cron_scheduling=False),
        )
        try:
            report(manager)
        finally:
            manager.shutdown()


if __name__ == "__main__":
    main()
