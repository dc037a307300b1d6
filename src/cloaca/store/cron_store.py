"""Cron persistence operations, mixed into :class:`~cloaca.store.store.Store`."""

from __future__ import annotations


class CronStore:
    """Cron schedules and their records (queries in ``sql/<dialect>/cron.sql``)."""
