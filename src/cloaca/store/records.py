"""Statuses and the frozen records the Store returns, each built from a row in one place."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from cloaca.clock import from_db_time
from cloaca.store.db import Row


class ExecutionStatus(StrEnum):
    """Lifecycle of one execution."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """True once the execution can no longer change."""
        return self in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.FAILED,
            ExecutionStatus.CANCELLED,
        )


class TaskStatus(StrEnum):
    """Lifecycle of one task execution."""

    NOT_STARTED = "NotStarted"
    READY = "Ready"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    SKIPPED = "Skipped"

    @property
    def is_terminal(self) -> bool:
        """True for Completed, Failed and Skipped."""
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.SKIPPED)


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One execution row."""

    id: str
    workflow_name: str
    workflow_version: str
    status: ExecutionStatus
    context: str
    final_context: str | None
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> ExecutionRecord:
        """Build from a row of ``execution_get`` / ``execution_list``."""
        created = from_db_time(row["created_at"])
        assert created is not None
        return cls(
            id=row["id"],
            workflow_name=row["workflow_name"],
            workflow_version=row["workflow_version"],
            status=ExecutionStatus(row["status"]),
            context=row["context"],
            final_context=row["final_context"],
            error_message=row["error_message"],
            created_at=created,
            started_at=from_db_time(row["started_at"]),
            completed_at=from_db_time(row["completed_at"]),
        )


class AttemptOutcome(StrEnum):
    """How one attempt of a task execution ended (``RUNNING`` while it has not)."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    RUNNER_DIED = "runner_died"
    RUNNING = "running"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt of a task execution, from the attempt history."""

    task_id: str
    attempt: int
    runner_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    outcome: AttemptOutcome
    error: str | None
    traceback: str | None

    @classmethod
    def from_row(cls, row: Row) -> AttemptRecord:
        """Build from a row of ``task_attempts_list``."""
        return cls(
            task_id=row["task_id"],
            attempt=row["attempt"],
            runner_id=row["runner_id"],
            started_at=from_db_time(row["started_at"]),
            completed_at=from_db_time(row["completed_at"]),
            outcome=AttemptOutcome(row["outcome"]),
            error=row["error"],
            traceback=row["traceback"],
        )


@dataclass(frozen=True, slots=True)
class TaskExecutionRecord:
    """One task execution row (without its output). ``error`` and ``traceback`` are those
    of its last attempt when it failed; ``attempts`` is its attempt history when it was
    read (see :meth:`with_history`)."""

    id: int
    execution_id: str
    task_id: str
    position: int
    status: TaskStatus
    sub_status: str | None
    attempt: int
    max_attempts: int
    ready_at: datetime | None
    claimed_by: str | None
    started_at: datetime | None
    completed_at: datetime | None
    error: str | None
    traceback: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()

    @classmethod
    def from_row(cls, row: Row) -> TaskExecutionRecord:
        """Build from a row of ``task_list``."""
        return cls(
            id=row["id"],
            execution_id=row["execution_id"],
            task_id=row["task_id"],
            position=row["position"],
            status=TaskStatus(row["status"]),
            sub_status=row["sub_status"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            ready_at=from_db_time(row["ready_at"]),
            claimed_by=row["claimed_by"],
            started_at=from_db_time(row["started_at"]),
            completed_at=from_db_time(row["completed_at"]),
            error=row["error"],
            traceback=row["traceback"],
        )

    @property
    def may_have_history(self) -> bool:
        """False when no attempt row can exist: a first attempt writes one only when it
        fails (the error stays on the row until a later attempt succeeds)."""
        return self.attempt > 1 or self.error is not None

    def with_history(self, stored: list[AttemptRecord]) -> TaskExecutionRecord:
        """This record with its attempt history: the ``stored`` rows of its attempts, and
        the current attempt from this row when no row holds it yet (running, or completed
        at the first try)."""
        history = sorted(stored, key=lambda a: a.attempt)
        if self.attempt > 0 and not any(a.attempt == self.attempt for a in history):
            running = self.status is TaskStatus.RUNNING
            if running or self.status is TaskStatus.COMPLETED:
                history.append(
                    AttemptRecord(
                        task_id=self.task_id,
                        attempt=self.attempt,
                        runner_id=self.claimed_by,
                        started_at=self.started_at,
                        completed_at=None if running else self.completed_at,
                        outcome=AttemptOutcome.RUNNING if running else AttemptOutcome.COMPLETED,
                        error=None,
                        traceback=None,
                    )
                )
        return replace(self, attempts=tuple(history))


@dataclass(frozen=True, slots=True)
class ClaimedTask:
    """A task execution this runner just claimed: one attempt to run."""

    id: int
    execution_id: str
    workflow_name: str
    workflow_version: str
    task_id: str
    attempt: int
    max_attempts: int

    @classmethod
    def from_row(cls, row: Row) -> ClaimedTask:
        """Build from a row returned by ``task_claim_ready``."""
        return cls(
            id=row["id"],
            execution_id=row["execution_id"],
            workflow_name=row["workflow_name"],
            workflow_version=row["workflow_version"],
            task_id=row["task_id"],
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
        )


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task execution to create with a new execution."""

    task_id: str
    position: int
    max_attempts: int
    status: TaskStatus = TaskStatus.NOT_STARTED
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NewAttempt:
    """An attempt to add to the history as its outcome is recorded."""

    claimed: ClaimedTask
    outcome: AttemptOutcome
    completed_at: datetime
    error: str | None = None
    traceback: str | None = None


#: What ending an execution needs: its input context JSON, and task id -> (status, output
#: JSON, error) for each of its task executions.
FinishInputs = tuple[str, dict[str, tuple[TaskStatus, str | None, str | None]]]


@dataclass(frozen=True, slots=True)
class FinalOutcome:
    """An attempt's final outcome (Completed or Failed) to record
    (``ExecutionQueries.finish_tasks``)."""

    claimed: ClaimedTask
    status: TaskStatus
    now: datetime
    output_json: str | None = None
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class FinishedTask:
    """What recording an attempt's final outcome found (``ExecutionQueries.finish_tasks``):
    ``owned`` is False when the claim had been lost; ``execution`` the execution's status
    as locked (None: not owned, or no such execution) with ``remaining`` unfinished tasks
    after counting this one; ``inputs`` what ending it needs, read when none is left."""

    owned: bool
    execution: ExecutionStatus | None = None
    remaining: int = 0
    inputs: FinishInputs | None = None
