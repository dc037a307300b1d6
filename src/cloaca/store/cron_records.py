"""Cron records: statuses and the frozen records built from cron rows, in one place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from cloaca.clock import from_db_time
from cloaca.store.db import Row


class CatchupPolicy(StrEnum):
    """What a schedule does with slots that came due while no runner was scheduling."""

    SKIP = "skip"
    RUN_ALL = "run_all"


def _time(value: str | None) -> datetime:
    parsed = from_db_time(value)
    assert parsed is not None, "a NOT NULL timestamp column was NULL"
    return parsed


@dataclass(frozen=True, slots=True)
class CronScheduleRecord:
    """One cron schedule row."""

    id: str
    workflow_name: str
    instance_name: str | None
    cron_expression: str
    timezone: str
    catchup_policy: CatchupPolicy
    params: dict[str, Any] | None
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> CronScheduleRecord:
        """Build from a row of ``cron_schedule_get`` / ``cron_schedule_list`` / ``cron_due``."""
        return cls(
            id=row["id"],
            workflow_name=row["workflow_name"],
            instance_name=row["instance_name"],
            cron_expression=row["cron_expression"],
            timezone=row["timezone"],
            catchup_policy=CatchupPolicy(row["catchup_policy"]),
            params=json.loads(row["params"]) if row["params"] is not None else None,
            enabled=bool(row["enabled"]),
            next_run_at=_time(row["next_run_at"]),
            last_run_at=from_db_time(row["last_run_at"]),
            created_at=_time(row["created_at"]),
            updated_at=_time(row["updated_at"]),
        )


@dataclass(frozen=True, slots=True)
class CronExecutionRecord:
    """One claimed slot, with the status of the execution it started (if that still exists)."""

    id: str
    schedule_id: str
    scheduled_time: datetime
    workflow_execution_id: str | None
    claimed_at: datetime
    claimed_by: str | None
    lost: bool
    recovery_attempts: int
    recovered_at: datetime | None
    execution_status: str | None
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> CronExecutionRecord:
        """Build from a row of ``cron_execution_history``."""
        return cls(
            id=row["id"],
            schedule_id=row["schedule_id"],
            scheduled_time=_time(row["scheduled_time"]),
            workflow_execution_id=row["workflow_execution_id"],
            claimed_at=_time(row["claimed_at"]),
            claimed_by=row["claimed_by"],
            lost=bool(row["lost"]),
            recovery_attempts=row["recovery_attempts"],
            recovered_at=from_db_time(row["recovered_at"]),
            execution_status=row["execution_status"],
            started_at=from_db_time(row["started_at"]),
            completed_at=from_db_time(row["completed_at"]),
        )


@dataclass(frozen=True, slots=True)
class LostClaim:
    """A claimed slot whose execution is missing (never created, or deleted since)."""

    id: str
    schedule_id: str
    scheduled_time: datetime
    recovery_attempts: int
    workflow_name: str
    cron_expression: str
    timezone: str
    params: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Row) -> LostClaim:
        """Build from a row of ``cron_lost_candidates``."""
        return cls(
            id=row["id"],
            schedule_id=row["schedule_id"],
            scheduled_time=_time(row["scheduled_time"]),
            recovery_attempts=row["recovery_attempts"],
            workflow_name=row["workflow_name"],
            cron_expression=row["cron_expression"],
            timezone=row["timezone"],
            params=json.loads(row["params"]) if row["params"] is not None else None,
        )


@dataclass(frozen=True, slots=True)
class CronStats:
    """Counts over cron executions whose scheduled time is at or after some instant."""

    total: int
    successful: int
    failed: int
    in_progress: int
    lost: int
    recovered: int
