"""Reads for overviews, the ``overview`` group of :class:`~cloaca.store.core.Store`: keyset pages of
executions with who started each one (the dashboard), and for the Prometheus metrics the
counts of what is in motion and "tails" of rows added since a position (so a scrape reads
what is new, never a whole table). Each opens its own read transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloaca.errors import ValidationError
from cloaca.store.records import ExecutionRecord

if TYPE_CHECKING:
    from cloaca.store.db import Database, Row

#: What ``started_by`` filters accept: fired by a trigger, by a cron schedule, or neither
#: (``start``/``execute`` through the API or the CLI).
STARTED_BY = ("trigger", "cron", "api")


@dataclass(frozen=True, slots=True)
class ExecutionSummary:
    """One execution of a page, with its origin (at most one of the two is set)."""

    execution: ExecutionRecord
    trigger_name: str | None
    cron_schedule_id: str | None

    @property
    def started_by(self) -> str:
        """``trigger``, ``cron`` or ``api``."""
        if self.trigger_name is not None:
            return "trigger"
        return "cron" if self.cron_schedule_id is not None else "api"


class OverviewReads:
    """Pages and aggregates for the dashboard and the metrics."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def execution_page(
        self,
        workflow_name: str | None,
        status: str | None,
        started_by: str | None,
        before: str | None,
        limit: int,
    ) -> list[ExecutionSummary]:
        """Up to ``limit`` executions newest first, older than execution ``before`` (an id;
        None: from the newest), filtered by workflow, status and origin (``STARTED_BY``)."""
        params = {
            "workflow_name": workflow_name,
            "status": status,
            "started_by": started_by,
            "before": before,
            "limit": limit,
        }
        with self.db.read() as tx:
            rows = tx.all("execution_page", params)
        return [_summary(r) for r in rows]

    def execution_summary(self, execution_id: str) -> ExecutionSummary | None:
        """One execution with its origin, or None."""
        with self.db.read() as tx:
            row = tx.one("execution_summary", {"id": execution_id})
        return _summary(row) if row else None

    def execution_ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` execution ids that start with ``prefix``, in id order."""
        params = {"prefix": prefix, "prefix_end": prefix + "~", "limit": limit}
        with self.db.read() as tx:
            return [str(r["id"]) for r in tx.all("execution_ids_with_prefix", params)]

    def queue_counts(self) -> dict[str, int]:
        """Rows in motion, through the active-status partial indexes (cheap at any size):
        ``executions_pending``, ``executions_running``, ``tasks_ready`` (the queue depth)
        and ``tasks_running``; absent statuses count 0."""
        with self.db.read() as tx:
            executions = {r["status"]: int(r["n"]) for r in tx.all("active_execution_counts")}
            tasks = {r["status"]: int(r["n"]) for r in tx.all("task_queue_counts")}
        return {
            "executions_pending": executions.get("Pending", 0),
            "executions_running": executions.get("Running", 0),
            "tasks_ready": tasks.get("Ready", 0),
            "tasks_running": tasks.get("Running", 0),
        }

    def tail_end(self, what: str) -> int:
        """The position of the newest row of ``what`` (see :data:`TAILS`), 0 when empty."""
        with self.db.read() as tx:
            row = tx.one(f"tail_end_{_tail(what)}")
        return int(row["pos"]) if row else 0

    def tail(self, what: str, after: int, limit: int) -> list[TailRow]:
        """Up to ``limit`` rows of ``what`` added after position ``after``, oldest first
        (an index range scan). ``final`` rows will not change any more; the others (an
        execution or task still in motion) may."""
        with self.db.read() as tx:
            rows = tx.all(f"tail_{_tail(what)}", {"after": after, "limit": limit})
        return [
            TailRow(
                int(r["pos"]),
                bool(r["final"]),
                {k: r[k] for k in TAILS[what]},
            )
            for r in rows
        ]


#: What :meth:`OverviewReads.tail` reads, and the values each row carries.
TAILS = {
    "executions": ("status",),
    "tasks": ("status", "started_at", "completed_at"),
    "evaluations": ("trigger_name", "outcome"),
    "cron_slots": ("scheduled_time", "claimed_at"),
}


@dataclass(frozen=True, slots=True)
class TailRow:
    """One row of a tail: its position, whether it is final, and its values."""

    pos: int
    final: bool
    values: dict[str, Any]


def _tail(what: str) -> str:
    if what not in TAILS:
        raise ValidationError(f"tail {what!r} is not one of {', '.join(TAILS)}")
    return what


def _summary(row: Row) -> ExecutionSummary:
    return ExecutionSummary(
        ExecutionRecord.from_row(row), row["trigger_name"], row["cron_schedule_id"]
    )
