"""Recovery: taking over stale claims, repairing stalled executions, workflow timeouts.

(The heartbeat that keeps this runner's own claims alive is ``engine/heartbeat.py``.)"""

from __future__ import annotations

import functools
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from cloaca.config import DefaultRunnerConfig
from cloaca.engine import planner
from cloaca.engine.shape import Shape
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.records import ClaimedTask, ExecutionStatus, TaskStatus

log = logging.getLogger(__name__)

#: Stalled executions repaired per sweep (the rest wait for the next one).
REPAIR_BATCH = 50


class Recovery:
    """Re-queues work of runners that went silent, repairs executions nothing moves on,
    and fails executions past their workflow timeout."""

    def __init__(
        self,
        store: Store,
        runner_id: str,
        config: DefaultRunnerConfig,
        on_requeued: Callable[[], None],
        end_execution: Callable[[str, ExecutionStatus, str], bool],
        shape_for: Callable[[str, str], Shape | None],
        on_repaired: Callable[[str, ExecutionStatus | None], None],
    ) -> None:
        self._store = store
        self._runner_id = runner_id
        self._config = config
        self._on_requeued = on_requeued
        self._end_execution = end_execution
        self._shape_for = shape_for
        self._on_repaired = on_repaired
        self._next_sweep: datetime | None = None
        self._next_timeout_check: datetime | None = None
        self._timeout_wakes = False

    def register(self, now: datetime) -> None:
        """Record this runner as alive."""
        self._store.runners.register(
            self._runner_id,
            socket.gethostname(),
            os.getpid(),
            now,
            stale_after=self._config.stale_claim_threshold_seconds,
        )

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Stale-claim sweep (with the stalled-execution repair) and workflow timeouts when
        due; returns (did_work, next_due)."""
        did = False
        cfg = self._config
        if cfg.enable_recovery and (self._next_sweep is None or now >= self._next_sweep):
            did = self.sweep(now)
            did = self.repair_stalled(now) or did
            self._next_sweep = now + timedelta(seconds=cfg.stale_claim_sweep_interval_seconds)
        if self._next_timeout_check is None or now >= self._next_timeout_check:
            did = self.expire_workflows(now) or did
        sweep_due = self._next_sweep if cfg.enable_recovery else None
        timeout_due = self._next_timeout_check if self._timeout_wakes else None
        nexts = [t for t in (sweep_due, timeout_due) if t is not None]
        return did, min(nexts) if nexts else None

    def execution_created(self, created_at: datetime) -> None:
        """An execution was created in this process: its timeout is a reason to wake up."""
        if not self._timeout_wakes:
            limit = timedelta(seconds=self._config.workflow_timeout_seconds)
            self._next_timeout_check, self._timeout_wakes = created_at + limit, True

    def sweep(self, now: datetime) -> bool:
        """Take over the task executions of runners whose heartbeat went stale.

        The dead runner's attempt counts, so a task that kills its runner (``os._exit``, out
        of memory) runs at most ``max_attempts`` times: on its last attempt it ends Failed
        and its execution is planned on (dependants skipped, the execution ended when
        nothing is left) in the same transaction, as a failure reported by a live runner
        would be."""
        threshold = now - timedelta(seconds=self._config.stale_claim_threshold_seconds)
        failed: list[ClaimedTask] = []
        ended: dict[str, ExecutionStatus] = {}

        def plan_failed(tx: Tx, tasks: list[ClaimedTask]) -> None:
            failed[:] = tasks
            ended.clear()  # should the store run the transaction again
            shapes: dict[tuple[str, str], Shape | None] = {}
            for task in tasks:
                key = (task.workflow_name, task.workflow_version)
                if key not in shapes:
                    # Read in this transaction (SQLite has one connection per runner).
                    definition = self._store.workflows.version_definition(tx, *key)
                    shapes[key] = Shape.from_definition(definition) if definition else None
                shape = shapes[key]
                if shape is not None:
                    status = planner.advance(
                        self._store,
                        tx,
                        shape,
                        task.execution_id,
                        task.task_id,
                        TaskStatus.FAILED,
                        now,
                    )
                else:  # never recorded: nothing to plan by, so the execution ends here
                    reason = f"Task {task.task_id!r} failed: runner died during the attempt"
                    status = ExecutionStatus.FAILED
                    if not planner.terminate(
                        self._store, tx, task.execution_id, status, now, reason
                    ):
                        status = None
                if status is not None:
                    ended[task.execution_id] = status

        taken = self._store.runners.requeue_stale(self._runner_id, threshold, now, plan_failed)
        if taken:
            log.warning(
                "took over task executions of silent runners",
                extra={"count": taken, "runner_id": self._runner_id},
            )
        if failed:
            log.error(
                "task executions failed: their runner died during their last attempt",
                extra={
                    "runner_id": self._runner_id,
                    "task_executions": [(t.execution_id, t.task_id, t.attempt) for t in failed],
                },
            )
        for execution_id, status in ended.items():
            self._on_repaired(execution_id, status)  # wakes whoever waits on it
        if taken:
            self._on_requeued()  # requeued tasks, or dependants a failure made Ready
        return bool(taken)

    def repair_stalled(self, now: datetime) -> bool:
        """Last resort: re-plan active executions that made no progress for the stale
        threshold although nothing is Ready or Running in them (a task could run, or every
        task is finished but the execution was never ended). Each is repaired in its own
        transaction, logged with a WARNING; returns True if one changed."""
        quiet_since = now - timedelta(seconds=self._config.stale_claim_threshold_seconds)
        repaired = False
        for execution_id, name, version in self._store.executions.stalled(
            quiet_since, REPAIR_BATCH
        ):
            try:
                shape = self._shape_for(name, version)
                if shape is None:
                    log.debug(
                        "stalled execution of an unknown workflow version left alone",
                        extra={"execution_id": execution_id, "workflow": name},
                    )
                    continue
                changed, ended = self._store.write_retrying(
                    functools.partial(
                        planner.repair, self._store, shape=shape, now=now, execution_id=execution_id
                    ),
                    "repairing a stalled execution",
                )
            except Exception:
                log.exception(
                    "repairing a stalled execution failed", extra={"execution_id": execution_id}
                )
                continue
            if changed:
                repaired = True
                log.warning(
                    "repaired stalled execution %s (no task was Ready or Running)",
                    execution_id,
                    extra={"execution_id": execution_id, "ended": str(ended) if ended else None},
                )
                self._on_repaired(execution_id, ended)
        return repaired

    def expire_workflows(self, now: datetime) -> bool:
        """Fail executions older than ``workflow_timeout_seconds``; plan the next check for
        the moment the oldest remaining one would time out."""
        limit = timedelta(seconds=self._config.workflow_timeout_seconds)
        reason = f"workflow timed out after {self._config.workflow_timeout_seconds}s"
        timed_out = self._store.executions.older_than(now - limit)
        for execution_id in timed_out:
            self._end_execution(execution_id, ExecutionStatus.FAILED, reason)
        oldest = self._store.executions.oldest_active_created_at()
        if oldest is None:
            # Nothing can time out before now + limit; with nothing active this check is no
            # reason to wake up (the loop's own rounds will find it due).
            self._next_timeout_check, self._timeout_wakes = now + limit, False
        else:
            # Strictly later than now, so a clock that stands still cannot spin on it.
            soonest = now + timedelta(milliseconds=1)
            self._next_timeout_check, self._timeout_wakes = max(oldest + limit, soonest), True
        return bool(timed_out)
