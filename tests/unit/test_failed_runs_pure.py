"""The failed-run decision on its own: streaks, the cap, pruned history, active runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloaca.engine.triggers.failed_runs import RUNS_READ, backoff_after_failures, decide
from cloaca.store.trigger_records import ContextRun, EvaluationOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE, CAP = timedelta(seconds=30), timedelta(hours=1)


def _decide(policy: str, runs: list[ContextRun], now: datetime, concurrent: bool = False):
    return decide(policy, runs, now, allow_concurrent=concurrent, base=BASE, cap=CAP)


def _failed(n: int) -> list[ContextRun]:
    return [ContextRun(f"e{i}", "Failed", T0) for i in range(n)]


def test_the_wait_doubles_per_failure_and_stops_at_the_cap() -> None:
    waits = [backoff_after_failures(n, BASE, CAP).total_seconds() for n in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff_after_failures(10_000, BASE, CAP) == CAP
    with pytest.raises(ValueError, match="failures must be >= 1, got 0"):
        backoff_after_failures(0, BASE, CAP)


def test_a_streak_counts_failures_until_a_completed_run() -> None:
    runs = [*_failed(2), ContextRun("ok", "Completed", T0), *_failed(5)]
    refused = _decide("backoff", runs, T0 + timedelta(seconds=59))
    assert refused is not None and refused.outcome is EvaluationOutcome.BACKING_OFF
    assert "2 failed runs in a row" in refused.message
    assert _decide("backoff", runs, T0 + timedelta(seconds=60)) is None


def test_a_streak_as_long_as_what_is_read_says_so() -> None:
    refused = _decide("backoff", _failed(RUNS_READ), T0)
    assert refused is not None and f"{RUNS_READ}+ failed runs in a row" in refused.message


def test_a_pruned_run_ends_the_history_and_refire_never_refuses() -> None:
    assert _decide("hold", [ContextRun("gone", None, None), *_failed(3)], T0) is None
    assert _decide("refire", _failed(3), T0) is None
    assert _decide("hold", [], T0) is None


def test_an_active_run_is_left_to_dedup_unless_concurrent_fires_are_allowed() -> None:
    runs = [ContextRun("again", "Running", None), *_failed(1)]
    later = T0 + timedelta(hours=2)
    assert _decide("backoff", runs, later) is None  # the dedup hold refuses it
    refused = _decide("backoff", runs, later, concurrent=True)
    assert refused is not None and "its refire again is still running" in refused.message
    held = _decide("hold", runs, later, concurrent=True)
    assert held is not None and held.outcome is EvaluationOutcome.HELD
