"""Reads of executions, mixed into :class:`~cloaca.store.core.Store`: one execution and
its task executions (results, ``wait``), listings, and what the workflow-timeout check
looks at. Each opens its own read transaction; the engine's write path is in ``store.py``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from cloaca.clock import from_db_time, to_db_time
from cloaca.store.db import Database, Tx
from cloaca.store.records import ExecutionRecord, ExecutionStatus, TaskExecutionRecord

T = TypeVar("T")


class ExecutionReads:
    """Executions and task executions as records, for the API and the engine's checks."""

    if TYPE_CHECKING:
        db: Database

        def read_retrying(self, fn: Callable[[Tx], T], what: str) -> T: ...

    def execution_statuses(self, execution_ids: Iterable[str]) -> dict[str, ExecutionStatus]:
        """execution id → status for the given executions (unknown ids are left out)."""
        with self.db.read() as tx:
            rows = tx.all("execution_statuses", {"ids": json.dumps(list(execution_ids))})
        return {r["id"]: ExecutionStatus(r["status"]) for r in rows}

    def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or None (transient database errors are retried)."""
        row = self.read_retrying(
            lambda tx: tx.one("execution_get", {"id": execution_id}), "reading an execution"
        )
        return ExecutionRecord.from_row(row) if row else None

    def list_task_executions(self, execution_id: str) -> list[TaskExecutionRecord]:
        """The task executions of an execution in topological position order (transient
        database errors are retried)."""
        rows = self.read_retrying(
            lambda tx: tx.all("task_list", {"execution_id": execution_id}),
            "reading task executions",
        )
        return [TaskExecutionRecord.from_row(r) for r in rows]

    def list_executions(
        self, workflow_name: str | None, status: str | None, limit: int, offset: int
    ) -> list[ExecutionRecord]:
        """Executions newest first, optionally filtered."""
        with self.db.read() as tx:
            rows = tx.all(
                "execution_list",
                {
                    "workflow_name": workflow_name,
                    "status": status,
                    "limit": limit,
                    "offset": offset,
                },
            )
        return [ExecutionRecord.from_row(r) for r in rows]

    def executions_older_than(self, threshold: datetime) -> list[str]:
        """Ids of non-terminal executions created before ``threshold`` (workflow timeout)."""
        with self.db.read() as tx:
            return [
                r["id"]
                for r in tx.all("execution_list_timed_out", {"threshold": to_db_time(threshold)})
            ]

    def oldest_active_created_at(self) -> datetime | None:
        """Creation time of the oldest Pending/Running execution, or None."""
        with self.db.read() as tx:
            row = tx.one("execution_oldest_active")
        return from_db_time(row["created_at"]) if row else None
