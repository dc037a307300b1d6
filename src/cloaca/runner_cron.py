"""Cron management on the runner (filled in by the cron work)."""

from __future__ import annotations

from typing import Any


class CronManagement:
    """Mixin for :class:`~cloaca.runner.DefaultRunner`: cron schedules and history."""

    def _init_cron(self) -> list[Any]:
        return []
