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

    def register(self, now: datetime) -> None:
        """Record this runner as alive."""
        self._store.register_runner(self._runner_id, socket.gethostname(), os.getpid(), now)

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Heartbeat and sweep when due; returns (did_work, next_due)."""
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
        # The sweep also enforces workflow timeouts, so it runs even without recovery.
        if self._next_sweep is None or now >= self._next_sweep:
            did = self.sweep(now)
            self._next_sweep = now + timedelta(seconds=cfg.stale_claim_sweep_interval_seconds)
        # Under a fake clock nobody else watches this runner's heartbeat in real time, so it
        # need not be a reason to stop time; it is refreshed whenever the runner ticks.
        heartbeat_due = self._next_heartbeat if self._heartbeat_wakes else None
        nexts = [t for t in (heartbeat_due, self._next_sweep) if t is not None]
        return did, min(nexts) if nexts else None

    def sweep(self, now: datetime) -> bool:
        """Take over stale claims (when recovery is enabled) and end executions past the
        workflow timeout."""
        requeued = 0
        if self._config.enable_recovery:
            threshold = now - timedelta(seconds=self._config.stale_claim_threshold_seconds)
            requeued = self._store.requeue_stale(self._runner_id, threshold, now)
        if requeued:
            log.warning(
                "took over task executions of silent runners",
                extra={"count": requeued, "runner_id": self._runner_id},
            )
            self._on_requeued()
        limit = self._config.workflow_timeout_seconds
        timed_out = self._store.executions_older_than(now - timedelta(seconds=limit))
        for execution_id in timed_out:
            self._end_execution(
                execution_id, ExecutionStatus.FAILED, f"workflow timed out after {limit}s"
            )
        return bool(requeued or timed_out)
