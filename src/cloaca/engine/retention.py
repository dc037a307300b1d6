"""Retention: pruning old executions, fire and cron records and evaluations in batches.

:func:`prune` is what ``prune()`` on a runner or a ManagementClient and ``cloaca db prune``
run: batch after batch, each in its own short write transaction (a long prune never holds
SQLite's write lock for long), until nothing older than the cutoff is left. The
:class:`Pruner` is the engine part that does the same every ``prune_interval_seconds``
when ``execution_retention_days`` is set, one batch of each kind per round so the loop
keeps claiming work in between. Deletes are conditional and idempotent, so several
runners pruning at once only share the work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from cloaca.config import DefaultRunnerConfig
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.retention import KINDS, Cutoff

log = logging.getLogger(__name__)

#: Rows per delete statement, and so per transaction.
BATCH = 1000


def cutoff_for(config: DefaultRunnerConfig, now: datetime, older_than: timedelta) -> Cutoff:
    """The cutoff ``older_than`` before ``now``; unlinked cron records also wait until cron
    recovery no longer looks at their slot."""
    horizon = now - timedelta(seconds=config.cron_max_recovery_age_seconds)
    return Cutoff(before=now - older_than, recovery_horizon=horizon)


def empty_counts() -> dict[str, int]:
    """Zero rows of every kind."""
    return dict.fromkeys(KINDS, 0)


def _batch(delete: Callable[[Tx, Cutoff, int], int], cutoff: Cutoff, batch: int, tx: Tx) -> int:
    return delete(tx, cutoff, batch)


def prune_round(store: Store, cutoff: Cutoff, batch: int = BATCH) -> tuple[dict[str, int], bool]:
    """One batch of each kind, each in its own write transaction. Returns the rows deleted
    per kind and whether a batch came back full (more may be left)."""
    counts = empty_counts()
    more = False
    done = store.write_retrying(
        lambda tx: store.retention.delete_executions(tx, cutoff, batch), "pruning executions"
    )
    for kind, n in done.items():
        counts[kind] += n
    more = more or done["executions"] >= batch
    deletes: tuple[tuple[str, Callable[[Tx, Cutoff, int], int]], ...] = (
        ("trigger_executions", store.retention.delete_orphan_fires),
        ("cron_executions", store.retention.delete_orphan_cron_records),
        ("trigger_evaluations", store.retention.delete_evaluations),
    )
    for kind, delete in deletes:
        n = store.write_retrying(partial(_batch, delete, cutoff, batch), f"pruning {kind}")
        counts[kind] += n
        more = more or n >= batch
    return counts, more


def prune(
    store: Store, cutoff: Cutoff, *, dry_run: bool = False, batch: int = BATCH
) -> dict[str, int]:
    """Delete everything older than ``cutoff`` (see ``Store.retention``), in batches of
    ``batch`` rows; returns the rows deleted per kind. ``dry_run`` deletes nothing and
    returns what would be deleted now."""
    if dry_run:
        return store.retention.count(cutoff)
    total = empty_counts()
    while True:
        counts, more = prune_round(store, cutoff, batch)
        for kind, n in counts.items():
            total[kind] += n
        if not more:
            return total


class Pruner:
    """The engine part that applies ``execution_retention_days`` every
    ``prune_interval_seconds`` (a no-op while it is 0)."""

    def __init__(self, store: Store, config: DefaultRunnerConfig, batch: int = BATCH) -> None:
        self._store = store
        self._config = config
        self._batch = batch
        self._next: datetime | None = None
        self._running: dict[str, int] | None = None

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        days = self._config.execution_retention_days
        if days <= 0:
            return False, None
        if self._next is not None and now < self._next:
            return False, self._next
        cutoff = cutoff_for(self._config, now, timedelta(days=days))
        try:
            counts, more = prune_round(self._store, cutoff, self._batch)
        except Exception:
            # Not a reason to retry at every round: try again at the next interval.
            log.exception("pruning old history failed")
            self._running = None
            self._next = now + timedelta(seconds=self._config.prune_interval_seconds)
            return False, self._next
        running = self._running or empty_counts()
        for kind, n in counts.items():
            running[kind] += n
        if more:
            self._running = running
            return True, now  # the next round goes on with the next batches
        self._running = None
        self._next = now + timedelta(seconds=self._config.prune_interval_seconds)
        if any(running.values()):
            log.info(
                "pruned rows older than %d days: %s",
                days,
                ", ".join(f"{n} {kind}" for kind, n in running.items() if n),
                extra={"pruned": running},
            )
        return any(counts.values()), self._next
