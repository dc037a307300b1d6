"""Cron and event triggers side by side on one runner (the seed tutorial's "Combining
Triggers with Cron Scheduling"): a nightly cron report and a file-watcher trigger start the
same workflow; each execution's context says which started it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerResult
from cloaca.testing import Harness

START = datetime(2026, 1, 1, 22, 50, tzinfo=UTC)


def test_cron_and_a_trigger_drive_the_same_workflow(new_harness: Callable[..., Harness]) -> None:
    processed: list[dict[str, Any]] = []
    inbox: list[str] = []

    @cloaca.task(id="process_files")
    def process_files(context: Context) -> None:
        processed.append(context.to_dict())

    cloaca.workflow("file_processing", [process_files])

    @cloaca.trigger(name="file_watcher", poll_interval="10s")
    def file_watcher() -> TriggerResult:
        if not inbox:
            return TriggerResult.skip()
        return TriggerResult.fire({"file": inbox.pop(0)})

    config = DefaultRunnerConfig(cron_poll_interval_seconds=3600)
    with new_harness(config=config, start=START) as h:
        # Time-based: sweep everything up at 00:00 in Berlin (23:00 UTC) ...
        cron_id = h.runner.register_cron_workflow("file_processing", "0 0 * * *", "Europe/Berlin")
        # ... and condition-based: process each file as soon as it appears.
        h.runner.register_trigger("file_watcher", "file_processing")
        h.advance(timedelta(minutes=5))
        inbox.append("a.csv")
        h.advance(timedelta(seconds=10))
        h.advance(timedelta(minutes=10))

    by_cron = [c for c in processed if "schedule_id" in c]
    by_trigger = [c for c in processed if "trigger_name" in c]
    assert [c["file"] for c in by_trigger] == ["a.csv"]
    assert by_trigger[0]["trigger_name"] == "file_watcher"
    assert [c["scheduled_time"] for c in by_cron] == ["2026-01-01T23:00:00Z"]
    assert by_cron[0]["schedule_id"] == cron_id
    assert len(processed) == 2
