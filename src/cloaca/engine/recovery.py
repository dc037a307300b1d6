"""Recovery: this runner's heartbeat, taking over stale claims, workflow timeouts."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from cloaca.config import DefaultRunnerConfig
from cloaca.store.records import ExecutionStatus
from cloaca.store.store import Store

log = logging.getLogger(__name__)


class Recovery:
    """Keeps this runner's heartbeat fresh and re-queues work of runners that went silent."""

    def __init__(
        self,
        store: Store,
        runner_id: str,
        config: DefaultRunnerConfig,
        on_requeued: Callable[[], None],
        end_execution: Callable[[str, ExecutionStatus, str], bool],
        heartbeat_wakes: bool = True,
    ) -> None:
        self._store = store
        self._runner_id = runner_id
        self._config = config
        self._on_requeued = on_requeued
        self._end_execution = end_execution
        self._next_heartbeat: datetime | None = None
        self._heartbeat_wakes = heartbeat_wakes
        self._next_sweep: datetime | None = None
        self._next_timeout_check: datetime | None = None
        self._timeout_wakes = False

    def register(self, now: datetime) -> None:
        """Record this runner as alive."""
        self._store.register_runner(self._runner_id, socket.gethostname(), os.getpid(), now)

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Heartbeat, stale-claim sweep and workflow timeouts when due; returns
        (did_work, next_due)."""
        did = False
        cfg = self._config
        if self._next_heartbeat is None or now >= self._next_heartbeat:
            if not self._store.heartbeat(self._runner_id, now):
                log.warning(
                    "runner was declared dead by a peer; registering again",
                    extra={"runner_id": self._runner_id},
                )
                self.register(now)
            self._next_heartbeat = now + timedelta(seconds=cfg.heartbeat_interval_seconds)
        if cfg.enable_recovery and (self._next_sweep is None or now >= self._next_sweep):
            did = self.sweep(now)
            self._next_sweep = now + timedelta(seconds=cfg.stale_claim_sweep_interval_seconds)
        if self._next_timeout_check is None or now >= self._next_timeout_check:
            did = self.expire_workflows(now) or did
        # Under a fake clock nobody else watches this runner's heartbeat in real time, so it
        # need not be a reason to stop time; it is refreshed whenever the runner ticks.
        heartbeat_due = self._next_heartbeat if self._heartbeat_wakes else None
        sweep_due = self._next_sweep if cfg.enable_recovery else None
        timeout_due = self._next_timeout_check if self._timeout_wakes else None
        nexts = [t for t in (heartbeat_due, sweep_due, timeout_due) if t is not None]
        return did, min(nexts) if nexts else None

    def execution_created(self, created_at: datetime) -> None:
        """An execution was created in this process: its timeout is a reason to wake up."""
        if not self._timeout_wakes:
            limit = timedelta(seconds=self._config.workflow_timeout_seconds)
            self._next_timeout_check, self._timeout_wakes = created_at + limit, True

    def sweep(self, now: datetime) -> bool:
        """Take over the task executions of runners whose heartbeat went stale."""
        threshold = now - timedelta(seconds=self._config.stale_claim_threshold_seconds)
        requeued = self._store.requeue_stale(self._runner_id, threshold, now)
        if requeued:
            log.warning(
                "took over task executions of silent runners",
                extra={"count": requeued, "runner_id": self._runner_id},
            )
            self._on_requeued()
        return bool(requeued)

    def expire_workflows(self, now: datetime) -> bool:
        """Fail executions older than ``workflow_timeout_seconds``; plan the next check for
        the moment the oldest remaining one would time out."""
        limit = timedelta(seconds=self._config.workflow_timeout_seconds)
        reason = f"workflow timed out after {self._config.workflow_timeout_seconds}s"
        timed_out = self._store.executions_older_than(now - limit)
        for execution_id in timed_out:
            self._end_execution(execution_id, ExecutionStatus.FAILED, reason)
        oldest = self._store.oldest_active_created_at()
        if oldest is None:
            # Nothing can time out before now + limit; with nothing active this check is no
            # reason to wake up (the loop's own rounds will find it due).
            self._next_timeout_check, self._timeout_wakes = now + limit, False
        else:
            # Strictly later than now, so a clock that stands still cannot spin on it.
            soonest = now + timedelta(milliseconds=1)
            self._next_timeout_check, self._timeout_wakes = max(oldest + limit, soonest), True
        return bool(timed_out)
