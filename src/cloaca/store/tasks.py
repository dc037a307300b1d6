"""Task executions: claiming Ready work, recording each attempt's outcome, and what the
planner reads of an execution's tasks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime

from cloaca.clock import from_db_time, to_db_time
from cloaca.store.db import Later, Tx
from cloaca.store.group import QueryGroup
from cloaca.store.records import (
    AttemptRecord,
    ClaimedTask,
    NewAttempt,
    TaskExecutionRecord,
    TaskStatus,
)
from cloaca.store.retry import read_retrying


class TaskQueries(QueryGroup):
    """``Store.tasks``: task executions and their attempts."""

    # -- claims -------------------------------------------------------------------------------

    def claim_ready(
        self, runner_id: str, workflow_names: Iterable[str], limit: int, now: datetime
    ) -> list[ClaimedTask]:
        """Atomically claim up to ``limit`` Ready task executions (ready_at <= now) of the
        given workflows for ``runner_id``: each becomes Running with its attempt counted, and
        its execution becomes Running if it was Pending."""
        with self.db.write() as tx:
            later = self.claim_ready_later(tx, runner_id, workflow_names, limit, now)
        return claimed_from(later)

    def claim_ready_later(
        self, tx: Tx, runner_id: str, workflow_names: Iterable[str], limit: int, now: datetime
    ) -> Later:
        """:meth:`claim_ready` inside ``tx``, with the claimed rows read only once it committed
        (:func:`claimed_from`): on PostgreSQL the claim, and the marking of its executions
        Running, travel with the COMMIT in one statement."""
        stamp = to_db_time(now)
        params = {
            "runner_id": runner_id,
            "limit": limit,
            "now": stamp,
            "workflows": json.dumps(sorted(workflow_names)),
        }
        if self.db.dialect == "postgres":
            return tx.later("task_claim_ready_marking", params)
        rows = tx.all("task_claim_ready", params)
        if rows:
            ids = json.dumps(sorted({r["execution_id"] for r in rows}))
            tx.send("execution_mark_running", {"ids": ids, "now": stamp})
        later = Later()
        later.set(rows)  # read by the caller after the commit only
        return later

    def claim_execution_later(
        self, tx: Tx, runner_id: str, execution_id: str, limit: int, now: datetime
    ) -> Later:
        """Claim up to ``limit`` Ready task executions of one execution inside ``tx`` (the
        roots, by the transaction that creates the execution Running), with the claimed
        rows read only once ``tx`` committed (:func:`claimed_from`): on PostgreSQL the
        claim travels with the COMMIT and costs no round trip of its own."""
        params = {
            "runner_id": runner_id,
            "limit": limit,
            "now": to_db_time(now),
            "execution_id": execution_id,
        }
        return tx.later("task_claim_execution", params)

    def next_ready_at(self, workflow_names: Iterable[str]) -> datetime | None:
        """Earliest ``ready_at`` among Ready task executions of the given workflows."""
        with self.db.read() as tx:
            row = tx.one("task_next_ready_at", {"workflows": json.dumps(sorted(workflow_names))})
        return from_db_time(row["ready_at"]) if row else None

    # -- attempts and statuses ------------------------------------------------------------------

    def finish_attempt(
        self,
        tx: Tx,
        claimed: ClaimedTask,
        runner_id: str,
        *,
        status: TaskStatus,
        now: datetime,
        output_json: str | None = None,
        error: str | None = None,
        traceback: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Record the outcome of one attempt, only if this runner still owns it (same
        attempt, still Running). ``status`` Ready with ``retry_at`` schedules a retry.
        ``error`` and ``traceback`` stay on the row until the next attempt's outcome.
        Returns False when the claim was lost (timed out, taken over, cancelled)."""
        if status is TaskStatus.READY:
            self.notices.ready(tx)  # a retry: other runners learn its ready_at
        params = finish_params(
            claimed, runner_id, status, now, output_json, error, traceback, retry_at
        )
        return tx.run("task_finish_attempt", params) > 0

    def record_attempts(self, tx: Tx, runner_id: str, attempts: Sequence[NewAttempt]) -> None:
        """Add attempts to the history, each only if this runner still owns it (as
        :meth:`finish_attempt` checks): one statement for all of them, to run in the
        transaction that records their outcomes, BEFORE :meth:`finish_attempt` releases
        the claims."""
        if not attempts:
            return
        tx.run_many(
            "task_attempt_record",
            [
                {
                    "id": a.claimed.id,
                    "attempt": a.claimed.attempt,
                    "runner_id": runner_id,
                    "completed_at": to_db_time(a.completed_at),
                    "outcome": str(a.outcome),
                    "error": a.error,
                    "traceback": a.traceback,
                }
                for a in attempts
            ],
        )

    def set_status(
        self,
        tx: Tx,
        execution_id: str,
        task_id: str,
        status: TaskStatus,
        now: datetime,
        error: str | None = None,
    ) -> None:
        """Move a NotStarted task execution to Ready (now) or Skipped (with a reason)."""
        ready = status is TaskStatus.READY
        tx.send(
            "task_set_status",
            {
                "execution_id": execution_id,
                "task_id": task_id,
                "status": str(status),
                "error": error,
                "ready_at": to_db_time(now) if ready else None,
                "completed_at": None if ready else to_db_time(now),
            },
        )
        if ready:
            self.notices.ready(tx)

    def set_sub_status(self, claimed: ClaimedTask, sub_status: str | None) -> None:
        """Set or clear a running task execution's sub-status (e.g. "Deferred")."""
        with self.db.write() as tx:
            tx.run(
                "task_set_sub_status",
                {"id": claimed.id, "attempt": claimed.attempt, "sub_status": sub_status},
            )

    def cancel_pending(self, tx: Tx, execution_id: str, now: datetime) -> None:
        """Skip every task execution of ``execution_id`` that has not started."""
        tx.send("task_cancel_pending", {"execution_id": execution_id, "now": to_db_time(now)})

    # -- reads ----------------------------------------------------------------------------------

    def statuses(
        self, tx: Tx, execution_id: str, task_ids: Iterable[str] | None = None
    ) -> dict[str, TaskStatus]:
        """task id → status for the task executions of an execution (all, or ``task_ids``)."""
        if task_ids is not None:
            rows = tx.all(
                "task_statuses_of",
                {"execution_id": execution_id, "task_ids": json.dumps(list(task_ids))},
            )
        else:
            rows = tx.all("task_statuses", {"execution_id": execution_id})
        return {r["task_id"]: TaskStatus(r["status"]) for r in rows}

    def outputs(self, tx: Tx, execution_id: str, task_ids: Iterable[str]) -> dict[str, str | None]:
        """task id → output JSON (None when the task produced none) for the given tasks."""
        rows = tx.all(
            "task_outputs", {"execution_id": execution_id, "task_ids": json.dumps(list(task_ids))}
        )
        return {r["task_id"]: r["output"] for r in rows}

    def list_for(self, execution_id: str) -> list[TaskExecutionRecord]:
        """The task executions of an execution in topological position order, each with
        its attempt history (transient database errors are retried)."""
        return read_retrying(
            self.db, lambda tx: read_task_list(tx, execution_id), "reading task executions"
        )


def claimed_from(later: Later) -> list[ClaimedTask]:
    """The task executions a committed claim (``claim_ready_later``,
    ``claim_execution_later``) took, oldest first."""
    return sorted((ClaimedTask.from_row(r) for r in later.rows), key=lambda c: c.id)


def finish_params(
    claimed: ClaimedTask,
    runner_id: str,
    status: TaskStatus,
    now: datetime,
    output_json: str | None,
    error: str | None,
    traceback: str | None,
    retry_at: datetime | None = None,
) -> dict[str, object]:
    """The parameters of ``task_finish_attempt`` (and ``task_finish_counting``)."""
    return {
        "id": claimed.id,
        "attempt": claimed.attempt,
        "runner_id": runner_id,
        "status": str(status),
        "output": output_json,
        "error": error,
        "traceback": traceback,
        "ready_at": to_db_time(retry_at) if retry_at else None,
        "completed_at": to_db_time(now) if status.is_terminal else None,
    }


def read_task_list(tx: Tx, execution_id: str) -> list[TaskExecutionRecord]:
    """The task executions of an execution in topological position order, each with its
    attempt history. The history table is read only when some task may have rows in it,
    so reading an execution whose tasks all completed at the first try costs one query."""
    tasks = [
        TaskExecutionRecord.from_row(r) for r in tx.all("task_list", {"execution_id": execution_id})
    ]
    return with_history(tx, execution_id, tasks)


def with_history(
    tx: Tx, execution_id: str, tasks: list[TaskExecutionRecord]
) -> list[TaskExecutionRecord]:
    """``tasks`` of one execution, each with its attempt history (read only when some task
    may have rows in it)."""
    stored: dict[str, list[AttemptRecord]] = {}
    if any(t.may_have_history for t in tasks):
        for row in tx.all("task_attempts_list", {"execution_id": execution_id}):
            record = AttemptRecord.from_row(row)
            stored.setdefault(record.task_id, []).append(record)
    return [t.with_history(stored.get(t.task_id, [])) for t in tasks]
