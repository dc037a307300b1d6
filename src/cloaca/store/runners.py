"""Runner liveness persistence: runner rows and heartbeats, and taking over the work of
silent runners."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from cloaca.clock import to_db_time
from cloaca.store.db import Tx
from cloaca.store.group import QueryGroup
from cloaca.store.records import ClaimedTask
from cloaca.store.retry import write_retrying


class RunnerQueries(QueryGroup):
    """``Store.runners``: runners, heartbeats and stale-claim takeover."""

    def register(
        self,
        runner_id: str,
        hostname: str,
        pid: int,
        now: datetime,
        stale_after: float | None = None,
    ) -> None:
        """Record a live runner (its heartbeat starts now). ``stale_after``: the seconds
        without a heartbeat after which peers may take its claims over (None: whatever
        threshold each peer has)."""
        with self.db.write() as tx:
            tx.run(
                "runner_insert",
                {
                    "id": runner_id,
                    "hostname": hostname,
                    "pid": pid,
                    "now": to_db_time(now),
                    "stale_at": _stale_at(now, stale_after),
                },
            )

    def heartbeat(self, runner_id: str, now: datetime, stale_after: float | None = None) -> bool:
        """Refresh a runner's heartbeat; False when its row is gone (it was declared dead)."""
        with self.db.write() as tx:
            stale_at = _stale_at(now, stale_after)
            params = {"id": runner_id, "now": to_db_time(now), "stale_at": stale_at}
            return tx.run("runner_heartbeat", params) > 0

    def remove(self, runner_id: str) -> None:
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
            params = {"self_id": self_id, "now": to_db_time(now)}
            tx.run("runners_stale_delete", {**params, "threshold": to_db_time(threshold)})
            tx.run("task_attempt_record_orphaned", params)  # the history keeps each lost attempt
            rows = tx.all("task_fail_orphaned_exhausted", params)
            failed = [ClaimedTask.from_row(r) for r in rows]
            requeued = tx.run("task_requeue_orphaned", params)
            tx.run("task_abandon_orphaned", params)  # what is left belongs to ended executions
            if failed and plan_failed is not None:
                plan_failed(tx, failed)
            if requeued:
                self.notices.ready(tx)
            return requeued + len(failed)

        return write_retrying(self.db, take_over, "taking over the work of silent runners")


def _stale_at(now: datetime, stale_after: float | None) -> str | None:
    return None if stale_after is None else to_db_time(now + timedelta(seconds=stale_after))
