"""Store: every persistence operation of the engine, written once.

Methods whose first parameter is ``tx`` run inside a transaction the caller opened with
:meth:`Store.write` / :meth:`Store.read`, so the engine can compose a state change with its
side records in ONE transaction (DESIGN: one transaction per state change). Methods without
``tx`` open their own transaction. Timestamps go in as aware datetimes and are stored as UTC
text; contexts go in and come out as JSON text (the engine owns (de)serialisation so a
context is encoded once per hop).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, TypeVar

from cloaca.clock import from_db_time, to_db_time
from cloaca.store.admin_reads import AdminReads
from cloaca.store.cron import CronStore
from cloaca.store.db import Database, Tx
from cloaca.store.execution_reads import ExecutionReads
from cloaca.store.migrate import migrate
from cloaca.store.overview import OverviewReads
from cloaca.store.records import (
    ClaimedTask,
    ExecutionStatus,
    NewTask,
    TaskStatus,
)
from cloaca.store.recovery import RecoveryStore
from cloaca.store.retry import retrying
from cloaca.store.triggers import TriggerStore

T = TypeVar("T")


class Store(ExecutionReads, RecoveryStore, TriggerStore, CronStore, AdminReads, OverviewReads):
    """Persistence operations over one :class:`~cloaca.store.db.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # PostgreSQL tells other processes about new work and ended executions at commit
        # (LISTEN/NOTIFY); SQLite processes notice each other's commits by data_version.
        self._notifies = db.dialect == "postgres"

    #: Who writes through this Store (a runner id): ``ready`` notifications carry it, so a
    #: runner's own listener can ignore the work it made Ready itself.
    origin = ""

    def notify(self, tx: Tx, payload: str) -> None:
        """Tell other processes, when ``tx`` commits: ``ready:<origin>`` (new claimable
        work) or ``finished:<execution id>``. A no-op on SQLite."""
        if payload == "ready":
            payload = f"ready:{self.origin}"
        if self._notifies:
            tx.one("notify", {"channel": getattr(self.db, "channel", "cloaca"), "payload": payload})

    # -- plumbing ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the schema version (safe to race)."""
        return migrate(self.db)

    def write(self) -> AbstractContextManager[Tx]:
        """Open a write transaction for composed operations."""
        return self.db.write()

    def read(self) -> AbstractContextManager[Tx]:
        """Open a read transaction for composed reads."""
        return self.db.read()

    def write_retrying(self, fn: Callable[[Tx], T], what: str) -> T:
        """Run ``fn(tx)`` in a write transaction and return its result; when the database
        fails transiently (:class:`~cloaca.store.db.TransientStoreError`) the WHOLE
        transaction is run again, with backoff, on a fresh connection. ``fn`` must be safe
        to run again after a rollback (engine writes are conditional, so they are)."""

        def once() -> T:
            with self.db.write() as tx:
                return fn(tx)

        return retrying(once, what)

    def read_retrying(self, fn: Callable[[Tx], T], what: str) -> T:
        """Like :meth:`write_retrying`, for a read transaction."""

        def once() -> T:
            with self.db.read() as tx:
                return fn(tx)

        return retrying(once, what)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    # -- workflow definitions ---------------------------------------------------------------

    def record_workflow(
        self, name: str, version: str, definition: dict[str, Any], now: datetime
    ) -> None:
        """Record a workflow's definition: the latest per name, and every version ever seen."""
        params = {
            "name": name,
            "version": version,
            "definition": json.dumps(definition),
            "now": to_db_time(now),
        }
        with self.db.write() as tx:
            tx.run("workflow_upsert", params)
            tx.run("workflow_version_insert", params)

    def get_workflow_definition(
        self, name: str, version: str | None = None
    ) -> dict[str, Any] | None:
        """The recorded definition of ``name`` (latest, or the given ``version``), or None."""
        with self.db.read() as tx:
            if version is None:
                row = tx.one("workflow_get", {"name": name})
            else:
                row = tx.one("workflow_version_get", {"name": name, "version": version})
        return json.loads(row["definition"]) if row else None

    def workflow_version_definition(self, tx: Tx, name: str, version: str) -> dict[str, Any] | None:
        """The recorded definition of version ``version`` of ``name``, or None (in ``tx``)."""
        row = tx.one("workflow_version_get", {"name": name, "version": version})
        return json.loads(row["definition"]) if row else None

    # -- executions -------------------------------------------------------------------------

    def insert_execution(
        self,
        tx: Tx,
        *,
        execution_id: str,
        workflow_name: str,
        version: str,
        context_json: str,
        tasks: Sequence[NewTask],
        now: datetime,
        remaining: int | None = None,
        notify_ready: bool = True,
        running: bool = False,
    ) -> None:
        """Create a Pending execution and its task executions in the given initial statuses
        (Ready ones become claimable at ``now``). ``remaining`` is how many tasks are not
        yet finished (default: all)."""
        stamp = to_db_time(now)
        tx.run(
            "execution_insert",
            {
                "id": execution_id,
                "workflow_name": workflow_name,
                "version": version,
                "context": context_json,
                "remaining": len(tasks) if remaining is None else remaining,
                "now": stamp,
                # Running from the start when the creating transaction claims its roots.
                "status": str(ExecutionStatus.RUNNING if running else ExecutionStatus.PENDING),
                "started_at": stamp if running else None,
            },
        )
        tx.run_many(
            "task_insert",
            [
                {
                    "execution_id": execution_id,
                    "workflow_name": workflow_name,
                    "version": version,
                    "task_id": t.task_id,
                    "position": t.position,
                    "status": str(t.status),
                    "max_attempts": t.max_attempts,
                    "ready_at": stamp if t.status is TaskStatus.READY else None,
                    "completed_at": stamp if t.status.is_terminal else None,
                    "error": t.error,
                }
                for t in tasks
            ],
        )
        if notify_ready and any(t.status is TaskStatus.READY for t in tasks):
            self.notify(tx, "ready")

    def claim_ready(
        self, runner_id: str, workflow_names: Iterable[str], limit: int, now: datetime
    ) -> list[ClaimedTask]:
        """Atomically claim up to ``limit`` Ready task executions (ready_at <= now) of the
        given workflows for ``runner_id``: each becomes Running with its attempt counted, and
        its execution becomes Running if it was Pending."""
        with self.db.write() as tx:
            return self.claim_ready_in(tx, runner_id, workflow_names, limit, now)

    def claim_ready_in(
        self,
        tx: Tx,
        runner_id: str,
        workflow_names: Iterable[str],
        limit: int,
        now: datetime,
        execution_id: str | None = None,
        *,
        mark_running: bool = True,
    ) -> list[ClaimedTask]:
        """:meth:`claim_ready` inside ``tx``, so a claim can ride on the transaction that
        made the work Ready (a start, an outcome); ``execution_id`` limits it to one
        execution's task executions. Oldest rows first."""
        stamp = to_db_time(now)
        params = {"runner_id": runner_id, "limit": limit, "now": stamp}
        if execution_id is None:
            params["workflows"] = json.dumps(sorted(workflow_names))
            rows = tx.all("task_claim_ready", params)
        else:
            rows = tx.all("task_claim_execution", {**params, "execution_id": execution_id})
        # RETURNING has no order on PostgreSQL: dispatch the oldest rows first.
        claimed = sorted((ClaimedTask.from_row(r) for r in rows), key=lambda c: c.id)
        if claimed and mark_running:
            ids = json.dumps(sorted({c.execution_id for c in claimed}))
            tx.run("execution_mark_running", {"ids": ids, "now": stamp})
        return claimed

    def next_ready_at(self, workflow_names: Iterable[str]) -> datetime | None:
        """Earliest ``ready_at`` among Ready task executions of the given workflows."""
        with self.db.read() as tx:
            row = tx.one("task_next_ready_at", {"workflows": json.dumps(sorted(workflow_names))})
        return from_db_time(row["ready_at"]) if row else None

    def task_statuses(
        self, tx: Tx, execution_id: str, task_ids: Iterable[str] | None = None
    ) -> dict[str, TaskStatus]:
        """task id → status for the task executions of an execution (all, or ``task_ids``)."""
        if task_ids is not None:
            rows = tx.all(
                "task_statuses_of",
                {"execution_id": execution_id, "task_ids": json.dumps(list(task_ids))},
            )
            return {r["task_id"]: TaskStatus(r["status"]) for r in rows}
        return {
            r["task_id"]: TaskStatus(r["status"])
            for r in tx.all("task_statuses", {"execution_id": execution_id})
        }

    def task_outputs(
        self, tx: Tx, execution_id: str, task_ids: Iterable[str]
    ) -> dict[str, str | None]:
        """task id → output JSON (None when the task produced none) for the given tasks."""
        rows = tx.all(
            "task_outputs", {"execution_id": execution_id, "task_ids": json.dumps(list(task_ids))}
        )
        return {r["task_id"]: r["output"] for r in rows}

    def execution_context(self, tx: Tx, execution_id: str) -> str:
        """The input context JSON of an execution."""
        row = tx.one("execution_context", {"id": execution_id})
        return row["context"] if row else "{}"

    def lock_counting_finished(
        self, tx: Tx, execution_id: str, finished: int
    ) -> tuple[ExecutionStatus, int] | None:
        """:meth:`lock_execution` and :meth:`count_finished_tasks` in one statement: returns
        the execution's status and how many tasks remain unfinished (None if it does not
        exist). The count of a terminal execution no longer matters."""
        row = tx.one("execution_lock_count_finished", {"id": execution_id, "finished": finished})
        return (ExecutionStatus(row["status"]), int(row["remaining_tasks"])) if row else None

    def count_finished_tasks(self, tx: Tx, execution_id: str, finished: int) -> int:
        """Record that ``finished`` more tasks reached a final status; returns how many remain."""
        row = tx.one("execution_count_finished", {"id": execution_id, "finished": finished})
        return int(row["remaining_tasks"]) if row else 0

    def task_results(
        self, tx: Tx, execution_id: str
    ) -> dict[str, tuple[TaskStatus, str | None, str | None]]:
        """task id -> (status, output JSON, error) for every task execution of an execution."""
        return {
            r["task_id"]: (TaskStatus(r["status"]), r["output"], r["error"])
            for r in tx.all("task_results", {"execution_id": execution_id})
        }

    def lock_execution(self, tx: Tx, execution_id: str) -> ExecutionStatus | None:
        """Lock an execution's row until ``tx`` ends and return its status (None if it does
        not exist). Every planning step takes this lock first, so two tasks of one execution
        finishing at the same moment are planned one after the other, each seeing the
        other's outcome."""
        row = tx.one("execution_lock", {"id": execution_id})
        return ExecutionStatus(row["status"]) if row else None

    def execution_status(self, tx: Tx, execution_id: str) -> ExecutionStatus | None:
        """Current status of an execution, or None if it does not exist."""
        row = tx.one("execution_status", {"id": execution_id})
        return ExecutionStatus(row["status"]) if row else None

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
        retry_at: datetime | None = None,
    ) -> bool:
        """Record the outcome of one attempt, only if this runner still owns it (same
        attempt, still Running). ``status`` Ready with ``retry_at`` schedules a retry.
        Returns False when the claim was lost (timed out, taken over, cancelled)."""
        terminal = status.is_terminal
        if status is TaskStatus.READY:
            self.notify(tx, "ready")  # a retry: other runners learn its ready_at
        return (
            tx.run(
                "task_finish_attempt",
                {
                    "id": claimed.id,
                    "attempt": claimed.attempt,
                    "runner_id": runner_id,
                    "status": str(status),
                    "output": output_json,
                    "error": error,
                    "ready_at": to_db_time(retry_at) if retry_at else None,
                    "completed_at": to_db_time(now) if terminal else None,
                },
            )
            > 0
        )

    def set_task_status(
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
        tx.run(
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
            self.notify(tx, "ready")

    def set_sub_status(self, claimed: ClaimedTask, sub_status: str | None) -> None:
        """Set or clear a running task execution's sub-status (e.g. "Deferred")."""
        with self.db.write() as tx:
            tx.run(
                "task_set_sub_status",
                {"id": claimed.id, "attempt": claimed.attempt, "sub_status": sub_status},
            )

    def finish_execution(
        self,
        tx: Tx,
        execution_id: str,
        status: ExecutionStatus,
        now: datetime,
        final_context_json: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Make an execution terminal and, in the same transaction, release the trigger dedup
        hold it carried. Returns False if it was already terminal."""
        changed = (
            tx.run(
                "execution_finish",
                {
                    "id": execution_id,
                    "status": str(status),
                    "final_context": final_context_json,
                    "error": error,
                    "now": to_db_time(now),
                },
            )
            > 0
        )
        if changed:
            tx.run("trigger_release_holds", {"execution_id": execution_id, "now": to_db_time(now)})
            self.notify(tx, f"finished:{execution_id}")
        return changed

    def cancel_pending_tasks(self, tx: Tx, execution_id: str, now: datetime) -> None:
        """Skip every task execution of ``execution_id`` that has not started."""
        tx.run("task_cancel_pending", {"execution_id": execution_id, "now": to_db_time(now)})

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap cross-process change probe)."""
        return self.db.data_version()
