"""Frozen records of the trigger tables, each built from a row in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from cloaca.clock import from_db_time
from cloaca.store.db import Row


class EvaluationOutcome(StrEnum):
    """What one poll (or manual fire) led to (SPEC 6.5)."""

    SKIPPED = "skipped"
    FIRED = "fired"
    DEDUPLICATED = "deduplicated"
    ERROR = "error"
    TIMEOUT = "timeout"
    #: The context's last run failed and its backoff has not elapsed (on_failed_run=backoff).
    BACKING_OFF = "backing_off"
    #: The context's last run failed and waits for a manual fire (on_failed_run=hold).
    HELD = "held"


def _time(row: Row, key: str) -> datetime:
    value = from_db_time(row[key])
    assert value is not None, f"{key} is NOT NULL"
    return value


@dataclass(frozen=True, slots=True)
class TriggerScheduleRecord:
    """One trigger schedule row: the binding trigger → workflow and its polling state."""

    id: str
    trigger_name: str
    workflow_name: str
    poll_interval_ms: int
    allow_concurrent: bool
    on_failed_run: str
    enabled: bool
    cursor: str | None
    last_poll_at: datetime | None
    next_poll_at: datetime
    consecutive_errors: int
    paused_reason: str | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> TriggerScheduleRecord:
        """Build from a row of ``trigger_schedule_get`` / ``trigger_schedule_list`` /
        ``trigger_schedules_active``."""
        return cls(
            id=row["id"],
            trigger_name=row["trigger_name"],
            workflow_name=row["workflow_name"],
            poll_interval_ms=int(row["poll_interval_ms"]),
            allow_concurrent=bool(row["allow_concurrent"]),
            on_failed_run=row["on_failed_run"],
            enabled=bool(row["enabled"]),
            cursor=row["cursor"],
            last_poll_at=from_db_time(row["last_poll_at"]),
            next_poll_at=_time(row, "next_poll_at"),
            consecutive_errors=int(row["consecutive_errors"]),
            paused_reason=row["paused_reason"],
            lease_owner=row["lease_owner"],
            lease_until=from_db_time(row["lease_until"]),
            created_at=_time(row, "created_at"),
            updated_at=_time(row, "updated_at"),
        )


@dataclass(frozen=True, slots=True)
class ActiveSchedule:
    """The scheduler's view of an enabled schedule: when it is next due, and by whom leased."""

    id: str
    trigger_name: str
    poll_interval_ms: int
    next_poll_at: datetime
    lease_owner: str | None
    lease_until: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> ActiveSchedule:
        """Build from a row of ``trigger_schedules_active``."""
        return cls(
            id=row["id"],
            trigger_name=row["trigger_name"],
            poll_interval_ms=int(row["poll_interval_ms"]),
            next_poll_at=_time(row, "next_poll_at"),
            lease_owner=row["lease_owner"],
            lease_until=from_db_time(row["lease_until"]),
        )


class ClaimedPoll(NamedTuple):
    """A due poll this runner just claimed (the schedule as it stood at the claim)."""

    # A NamedTuple, not a frozen dataclass: built for every poll (a thousand a second), and
    # three times cheaper to build.

    schedule_id: str
    trigger_name: str
    workflow_name: str
    allow_concurrent: bool
    on_failed_run: str
    cursor: str | None
    consecutive_errors: int

    @classmethod
    def from_row(cls, row: Row) -> ClaimedPoll:
        """Build from a row returned by ``trigger_claim``."""
        return cls(
            row["id"],
            row["trigger_name"],
            row["workflow_name"],
            bool(row["allow_concurrent"]),
            row["on_failed_run"],
            row["cursor"],
            int(row["consecutive_errors"]),
        )


@dataclass(frozen=True, slots=True)
class TriggerExecutionRecord:
    """One fire: its context hash, the execution it started, start/complete times."""

    id: str
    schedule_id: str
    trigger_name: str
    context_hash: str
    workflow_execution_id: str | None
    holds_dedup: bool
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> TriggerExecutionRecord:
        """Build from a row of ``trigger_execution_history``."""
        return cls(
            id=row["id"],
            schedule_id=row["schedule_id"],
            trigger_name=row["trigger_name"],
            context_hash=row["context_hash"],
            workflow_execution_id=row["workflow_execution_id"],
            holds_dedup=row["holds_dedup"] == 1,
            started_at=from_db_time(row["started_at"]),
            completed_at=from_db_time(row["completed_at"]),
            created_at=_time(row, "created_at"),
        )


@dataclass(frozen=True, slots=True)
class ContextRun:
    """One earlier fire of a (trigger, context hash): its execution and how that ended
    (``status`` None when the execution row is gone)."""

    execution_id: str | None
    status: str | None
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> ContextRun:
        """Build from a row of ``trigger_context_runs``."""
        return cls(
            execution_id=row["workflow_execution_id"],
            status=row["status"],
            completed_at=from_db_time(row["completed_at"]),
        )


@dataclass(frozen=True, slots=True)
class TriggerEvaluationRecord:
    """One recorded poll or manual fire and its outcome."""

    id: int
    trigger_name: str
    runner_id: str | None
    scheduled_at: datetime | None
    evaluated_at: datetime
    duration_ms: float
    outcome: EvaluationOutcome
    message: str | None
    execution_ids: tuple[str, ...]

    @classmethod
    def from_row(cls, row: Row) -> TriggerEvaluationRecord:
        """Build from a row of ``trigger_evaluation_list``."""
        ids = row["execution_ids"]
        return cls(
            id=int(row["id"]),
            trigger_name=row["trigger_name"],
            runner_id=row["runner_id"],
            scheduled_at=from_db_time(row["scheduled_at"]),
            evaluated_at=_time(row, "evaluated_at"),
            duration_ms=float(row["duration_ms"]),
            outcome=EvaluationOutcome(row["outcome"]),
            message=row["message"],
            execution_ids=tuple(json.loads(ids)) if ids else (),
        )


class NewEvaluation(NamedTuple):
    """An evaluation to record."""

    # A NamedTuple, not a frozen dataclass: built for every poll (a thousand a second), and
    # three times cheaper to build.

    trigger_name: str
    scheduled_at: datetime | None
    evaluated_at: datetime
    duration_ms: float
    outcome: EvaluationOutcome
    message: str | None = None
    execution_ids: tuple[str, ...] = ()
