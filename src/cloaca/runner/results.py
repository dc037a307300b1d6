"""``WorkflowResult``: what ``execute``, ``wait`` and ``get_execution`` return."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from cloaca.clock import rfc3339
from cloaca.context import Context
from cloaca.store.records import ExecutionRecord, TaskExecutionRecord


@dataclass(frozen=True)
class AttemptResult:
    """One attempt of a task: ``outcome`` is ``"completed" | "failed" | "timed_out" |
    "runner_died"``, or ``"running"`` while it runs. ``traceback`` is the formatted
    exception of a failed attempt (for a timed-out sync body: where its thread was)."""

    attempt: int
    outcome: str
    runner_id: str | None
    started_at: str | None
    completed_at: str | None
    error: str | None
    traceback: str | None

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        """The attempt as a plain dict (JSON-ready)."""
        return asdict(self)


@dataclass(frozen=True)
class TaskResult:
    """The state of one task in an execution. ``error`` and ``traceback`` are those of its
    last attempt when that failed (None once it completed); ``attempts_history`` lists
    every attempt, oldest first."""

    status: str
    error: str | None
    attempts: int
    sub_status: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    traceback: str | None = None
    attempts_history: tuple[AttemptResult, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass(frozen=True)
class WorkflowResult:
    """The outcome (or current state) of one execution.

    ``status`` is ``"Completed" | "Failed" | "Cancelled"`` once terminal, or
    ``"Pending" | "Running"`` from :meth:`DefaultRunner.get_execution`. Times are RFC 3339.
    """

    execution_id: str
    workflow_name: str
    status: str
    start_time: str | None
    end_time: str | None
    final_context: Context
    error_message: str | None
    task_results: dict[str, TaskResult] = field(default_factory=dict)

    @classmethod
    def build(cls, record: ExecutionRecord, tasks: list[TaskExecutionRecord]) -> WorkflowResult:
        """Assemble from the execution record and its task executions."""
        raw = record.final_context if record.final_context is not None else record.context
        return cls(
            execution_id=record.id,
            workflow_name=record.workflow_name,
            status=str(record.status),
            start_time=rfc3339(record.started_at or record.created_at),
            end_time=rfc3339(record.completed_at),
            final_context=Context._adopt(json.loads(raw)),
            error_message=record.error_message,
            task_results={
                t.task_id: TaskResult(
                    status=str(t.status),
                    error=t.error,
                    attempts=t.attempt,
                    sub_status=t.sub_status,
                    started_at=rfc3339(t.started_at),
                    completed_at=rfc3339(t.completed_at),
                    traceback=t.traceback,
                    attempts_history=tuple(
                        AttemptResult(
                            attempt=a.attempt,
                            outcome=str(a.outcome),
                            runner_id=a.runner_id,
                            started_at=rfc3339(a.started_at),
                            completed_at=rfc3339(a.completed_at),
                            error=a.error,
                            traceback=a.traceback,
                        )
                        for a in t.attempts
                    ),
                )
                for t in tasks
            },
        )

    def __repr__(self) -> str:
        return (
            f"WorkflowResult(execution_id={self.execution_id!r}, workflow={self.workflow_name!r}, "
            f"status={self.status!r}, error_message={self.error_message!r})"
        )
