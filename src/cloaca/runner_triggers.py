"""Trigger management on the runner (filled in by the event-trigger work)."""

from __future__ import annotations

from typing import Any


class TriggerManagement:
    """Mixin for :class:`~cloaca.runner.DefaultRunner`: trigger schedules and history."""

    def _init_triggers(self) -> list[Any]:
        return []

    def _shutdown_triggers(self) -> None:
        return None
