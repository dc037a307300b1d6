"""Reads for overviews, mixed into :class:`~cloaca.store.core.Store`: keyset pages of
executions with who started each one (the dashboard), and aggregate counts and histogram
buckets (the Prometheus metrics). Each opens its own read transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloaca.store.records import ExecutionRecord

if TYPE_CHECKING:
    from cloaca.store.db import Database

#: What ``started_by`` filters accept: fired by a trigger, by a cron schedule, or neither
#: (``start``/``execute`` through the API or the CLI).
STARTED_BY = ("trigger", "cron", "api")

#: Histogram queries take exactly this many finite upper bounds (one more bucket is +Inf).
BUCKETS = 8


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


@dataclass(frozen=True, slots=True)
class Buckets:
    """A histogram read from the database: counts per bucket (not cumulative; the last is
    +Inf), and the sum of the observed values."""

    counts: tuple[int, ...]
    total: float


class OverviewReads:
    """Pages and aggregates for the dashboard and the metrics."""

    if TYPE_CHECKING:
        db: Database

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
        return [
            ExecutionSummary(ExecutionRecord.from_row(r), r["trigger_name"], r["cron_schedule_id"])
            for r in rows
        ]

    def count_by(self, what: str) -> dict[str, int]:
        """Rows per status: ``what`` is ``executions`` or ``tasks``."""
        query = {"executions": "execution_counts", "tasks": "task_counts"}[what]
        with self.db.read() as tx:
            return {r["status"]: int(r["n"]) for r in tx.all(query)}

    def ready_task_count(self) -> int:
        """Task executions waiting for a slot (status Ready): the queue depth."""
        with self.db.read() as tx:
            row = tx.one("task_ready_count")
        return int(row["n"]) if row else 0

    def evaluation_counts(self) -> dict[tuple[str, str], int]:
        """(trigger name, outcome) → evaluations kept in the log."""
        with self.db.read() as tx:
            rows = tx.all("evaluation_counts")
        return {(r["trigger_name"], r["outcome"]): int(r["n"]) for r in rows}

    def histogram(self, what: str, bounds: Sequence[float]) -> Buckets:
        """Bucket counts of ``task_duration`` (finished attempts, seconds) or
        ``cron_lateness`` (claim time minus scheduled time, seconds) for ``BUCKETS``
        increasing upper ``bounds``."""
        if len(bounds) != BUCKETS or list(bounds) != sorted(bounds):
            raise ValueError(f"bounds {bounds!r} must be {BUCKETS} increasing numbers")
        query = {"task_duration": "task_duration_buckets", "cron_lateness": "cron_lateness_buckets"}
        params = {f"b{i}": float(b) for i, b in enumerate(bounds)}
        with self.db.read() as tx:
            rows = tx.all(query[what], params)
        counts = [0] * (BUCKETS + 1)
        total = 0.0
        for r in rows:
            counts[int(r["bucket"])] = int(r["n"])
            total += float(r["total"] or 0.0)
        return Buckets(tuple(counts), total)
