"""Deterministic testing of workflows, triggers and cron: a fake clock and a driver.

``Harness`` opens a runner whose engine loop is NOT started: nothing happens until the test
says so. ``harness.advance(seconds)`` moves the fake clock forward, stopping at every instant
where something is due (a retry, a trigger poll, a cron slot), and runs everything that is
due there in the calling thread, tasks included. A minute of schedule takes milliseconds::

    from cloaca.testing import Harness

    with Harness() as h:
        h.runner.register_trigger("file_watcher", "file_processing")
        h.advance(10)                     # ten seconds of polling, instantly
        assert h.runner.get_trigger_execution_history("file_watcher")

Task and poll bodies run for real: timeouts of ``async def`` tasks and polls are enforced in
real time, those of plain ``def`` tasks not at all. A task waiting in ``defer_until`` does not
block the test; each engine round looks at its condition once more.

The Harness uses nothing but the runner's public seam: ``DefaultRunner(url, clock=...,
start_engine=False)`` starts no thread, and ``runner.engine.step()`` /
``runner.engine.run_until_idle()`` run the engine's rounds by hand
(``runner.engine.poll_triggers()`` runs the trigger part alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context
from cloaca.errors import ValidationError
from cloaca.runner.default import DefaultRunner
from cloaca.runner.results import WorkflowResult

DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or DEFAULT_START
        if start.tzinfo is None:
            raise ValidationError(f"FakeClock start {start!r} must be timezone-aware")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """The current fake instant (aware UTC)."""
        return self._now

    def set(self, instant: datetime) -> None:
        """Jump to ``instant`` (never backwards)."""
        if instant.tzinfo is None:
            raise ValidationError(f"FakeClock.set({instant!r}) needs a timezone-aware datetime")
        instant = instant.astimezone(UTC)
        if instant < self._now:
            raise ValidationError(f"FakeClock cannot go back from {self._now} to {instant}")
        self._now = instant

    def advance(self, seconds: float | timedelta) -> datetime:
        """Move forward and return the new instant."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        self.set(self._now + delta)
        return self._now


class Harness:
    """A manually driven runner on a fake clock (in-memory SQLite by default)."""

    def __init__(
        self,
        database_url: str = ":memory:",
        config: DefaultRunnerConfig | None = None,
        clock: FakeClock | None = None,
        start: datetime | None = None,
        schema: str | None = None,
    ) -> None:
        self.clock = clock or FakeClock(start)
        self.runner = DefaultRunner(
            database_url, config, clock=self.clock, start_engine=False, schema=schema
        )

    def run_until_idle(self, max_rounds: int = 100_000) -> int:
        """Run everything due at the current instant until nothing more is; returns rounds."""
        return self.runner.engine.run_until_idle(max_rounds)

    def poll_triggers(self) -> bool:
        """Poll every trigger due now and record what it returns, without running the
        executions it fires (they stay Pending); True if one was polled."""
        return self.runner.engine.poll_triggers()

    def next_due(self) -> datetime | None:
        """The earliest instant at which some part of the engine wants to run."""
        _, due = self.runner.engine.step()
        return due

    def advance(self, seconds: float | timedelta) -> None:
        """Move the clock forward, running everything due at each instant on the way."""
        delta = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if delta < timedelta(0):
            raise ValidationError(f"advance({seconds!r}): time only moves forward")
        target = self.clock.now() + delta
        self.run_until_idle()
        while True:
            due = self.next_due()
            if due is None or due > target:
                break
            if due > self.clock.now():
                self.clock.set(due)
            self.run_until_idle()
        self.clock.set(target)
        self.run_until_idle()

    def execute(
        self, workflow_name: str, context: Context | Mapping[str, Any] | None = None
    ) -> WorkflowResult:
        """Start an execution and run the engine (fake time stands still) until idle."""
        execution_id = self.runner.start(workflow_name, context)
        self.run_until_idle()
        return self.runner.get_execution(execution_id)

    def close(self) -> None:
        """Shut the runner down."""
        self.runner.shutdown()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
