"""Trigger persistence operations, mixed into :class:`~cloaca.store.store.Store`."""

from __future__ import annotations


class TriggerStore:
    """Trigger schedules and their records (queries in ``sql/<dialect>/trigger.sql``)."""
