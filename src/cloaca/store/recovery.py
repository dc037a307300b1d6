"""Runner liveness and recovery persistence, mixed into :class:`~cloaca.store.core.Store`:
runner rows and heartbeats, taking over the work of silent runners, and finding the
executions the last-resort repair re-plans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from cloaca.clock import to_db_time
from cloaca.store.db import Database, Tx
from cloaca.store.records import ClaimedTask

T = TypeVar("T")


class RecoveryStore:
    """Runners, heartbeats, stale-claim takeover and stalled executions."""

    if TYPE_CHECKING:
        db: Database

        def notify(self, tx: Tx, payload: str) -> None: ...

        def write_retrying(self, fn: Callable[[Tx], T], what: str) -> T: ...

    # -- runners and heartbeats -------------------------------------------------------------

    def register_runner(self, runner_id: str, hostname: str, pid: int, now: datetime) -> None:
        """Record a live runner (its heartbeat starts now)."""
        with self.db.write() as tx:
            tx.run(
                "runner_insert",
                {"id": runner_id, "hostname": hostname, "pid": pid, "now": to_db_time(now)},
            )

    def heartbeat(self, runner_id: str, now: datetime) -> bool:
        """Refresh a runner's heartbeat; False when its row is gone (it was declared dead)."""
        with self.db.write() as tx:
            return tx.run("runner_heartbeat", {"id": runner_id, "now": to_db_time(now)}) > 0

    def remove_runner(self, runner_id: str) -> None:
        """Forget a runner that shut down cleanly."""
        with self.db.write() as tx:
            tx.run("runner_delete", {"id": runner_id})

    def requeue_stale(
        self,
        self_id: str,
        threshold: datetime,
        now: datetime,
        plan_failed: Callable[[Tx, list[ClaimedTask]], None] | None = None,
    ) -> int:
        """Declare runners silent since ``threshold`` dead and take over their Running task
        executions; returns how many were taken over.

        The dead runner's attempt counts (its claim counted it): a task execution with
        attempts left becomes Ready again; one whose attempt was its last ends Failed with
        "runner died during the attempt (attempt n of m)", and ``plan_failed(tx, failed)``
        plans on those in the same transaction (the store knows no workflows: without it
        their executions stay unplanned). Work of executions that already ended is Skipped
        as abandoned. The whole transaction is retried on transient database errors."""

        def take_over(tx: Tx) -> int:
            tx.run("runners_stale_delete", {"threshold": to_db_time(threshold), "self_id": self_id})
            params = {"self_id": self_id, "now": to_db_time(now)}
            rows = tx.all("task_fail_orphaned_exhausted", params)
            failed = [ClaimedTask.from_row(r) for r in rows]
            requeued = tx.run("task_requeue_orphaned", params)
            tx.run("task_abandon_orphaned", params)  # what is left belongs to ended executions
            if failed and plan_failed is not None:
                plan_failed(tx, failed)
            if requeued:
                self.notify(tx, "ready")
            return requeued + len(failed)

        return self.write_retrying(take_over, "taking over the work of silent runners")

    # -- last-resort repair -----------------------------------------------------------------

    def stalled_executions(self, quiet_since: datetime, limit: int) -> list[tuple[str, str, str]]:
        """``(id, workflow name, version)`` of up to ``limit`` active executions created
        before ``quiet_since`` with no Running or Ready task execution and no task started
        or finished since then: nothing will move them on by itself."""
        with self.db.read() as tx:
            rows = tx.all(
                "execution_stalled", {"threshold": to_db_time(quiet_since), "limit": limit}
            )
        return [(r["id"], r["workflow_name"], r["workflow_version"]) for r in rows]

    def recount_remaining(self, tx: Tx, execution_id: str) -> int:
        """Reset an execution's count of unfinished tasks from its task executions' actual
        statuses; returns it."""
        row = tx.one("execution_recount_remaining", {"id": execution_id})
        return int(row["remaining_tasks"]) if row else 0
