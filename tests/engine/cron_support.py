"""Shared setup of the cron engine tests: a start instant and a config without chores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cloaca import DefaultRunnerConfig

START = datetime(2026, 1, 1, tzinfo=UTC)


def quiet(**overrides: Any) -> DefaultRunnerConfig:
    """A config whose periodic chores (heartbeat, sweeps, cron poll, cron recovery) stay out
    of the way, so the harness jumps from slot to slot."""
    month = 30 * 86400
    values: dict[str, Any] = {
        "heartbeat_interval_seconds": month,
        "stale_claim_threshold_seconds": 2 * month,
        "stale_claim_sweep_interval_seconds": month,
        "cron_poll_interval_seconds": month,
        "cron_recovery_interval_seconds": month,
    }
    values.update(overrides)
    return DefaultRunnerConfig(**values)
