"""Pruning old history, for the runner and the management client (SPEC 10, retention)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from cloaca.clock import Clock
from cloaca.config import DefaultRunnerConfig
from cloaca.engine.retention import cutoff_for, prune
from cloaca.errors import ValidationError
from cloaca.store.core import Store


class Retention:
    """``prune()``: delete what is older than a cutoff, in batches."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: DefaultRunnerConfig,
        check_open: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self._check_open = check_open

    def prune(self, older_than: timedelta, *, dry_run: bool = False) -> dict[str, int]:
        """Delete history older than ``older_than`` (a positive ``timedelta``) and return
        how many rows of each kind went: ``executions`` (Completed, Failed or Cancelled,
        ended before the cutoff) with their ``task_executions`` and ``task_attempts``;
        ``trigger_executions`` (fire records of those executions, or older ones whose
        execution is gone); ``trigger_evaluations`` recorded before the cutoff;
        ``cron_executions`` (slot records of those executions, or unlinked ones older than
        the cutoff that cron recovery no longer looks at).

        Never deleted: Pending and Running executions, a fire holding a dedup hold, a cron
        slot recovery may still hand off. Deletes run in batches of 1,000 rows, each in its
        own short transaction. ``dry_run=True`` deletes nothing and returns what would go.
        """
        self._check_open()
        if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise ValidationError(f"older_than must be a positive timedelta, got {older_than!r}")
        if not isinstance(dry_run, bool):
            raise ValidationError(f"dry_run must be True or False, got {dry_run!r}")
        cutoff = cutoff_for(self._config, self._clock.now(), older_than)
        return prune(self._store, cutoff, dry_run=dry_run)
