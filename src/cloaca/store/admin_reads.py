"""Reads for management tools, the ``admin`` group of :class:`~cloaca.store.core.Store`:
the workflow definitions recorded in the database and the runner rows with what each holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloaca.clock import from_db_time

if TYPE_CHECKING:
    from cloaca.store.db import Database


@dataclass(frozen=True, slots=True)
class WorkflowDefinitionRecord:
    """The latest recorded definition of one workflow."""

    name: str
    version: str
    definition: dict[str, Any]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RunnerRecord:
    """A live (or not yet reaped) runner row and what it holds."""

    id: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    running_tasks: int
    trigger_leases: int


class AdminReads:
    """Workflow definitions and runner rows as records."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def list_workflows(self) -> list[WorkflowDefinitionRecord]:
        """Every recorded workflow (its latest definition), by name."""
        with self.db.read() as tx:
            rows = tx.all("workflow_list")
        return [
            WorkflowDefinitionRecord(
                name=r["name"],
                version=r["version"],
                definition=json.loads(r["definition"]),
                updated_at=_time(r["updated_at"]),
            )
            for r in rows
        ]

    def list_runners(self) -> list[RunnerRecord]:
        """Every runner row, oldest first, with its running tasks and trigger leases."""
        with self.db.read() as tx:
            rows = tx.all("runner_list")
        return [
            RunnerRecord(
                id=r["id"],
                hostname=r["hostname"],
                pid=int(r["pid"]),
                started_at=_time(r["started_at"]),
                heartbeat_at=_time(r["heartbeat_at"]),
                running_tasks=int(r["running_tasks"]),
                trigger_leases=int(r["trigger_leases"]),
            )
            for r in rows
        ]


def _time(text: str) -> datetime:
    value = from_db_time(text)
    assert value is not None  # NOT NULL columns
    return value
