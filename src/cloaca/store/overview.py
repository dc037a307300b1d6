"""Reads for overviews, mixed into :class:`~cloaca.store.core.Store`: keyset pages of
executions with who started each one (the dashboard), and aggregate counts and histogram
buckets (the Prometheus metrics). Each opens its own read transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cloaca.store.records import ExecutionRecord

if TYPE_CHECKING:
    from cloaca.store.db import Database, Row, Tx

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
        return [_summary(r) for r in rows]

    def execution_summary(self, execution_id: str) -> ExecutionSummary | None:
        """One execution with its origin, or None."""
        with self.db.read() as tx:
            row = tx.one("execution_summary", {"id": execution_id})
        return _summary(row) if row else None

    def metrics_snapshot(
        self, duration_bounds: Sequence[float], lateness_bounds: Sequence[float]
    ) -> MetricsSnapshot:
        """Everything the metrics report, read in ONE transaction (a consistent view).
        ``*_bounds``: ``BUCKETS`` increasing upper bounds, in seconds."""
        with self.db.read() as tx:
            executions = {r["status"]: int(r["n"]) for r in tx.all("execution_counts")}
            tasks = {r["status"]: int(r["n"]) for r in tx.all("task_counts")}
            ready = tx.one("task_ready_count")
            evaluations = {
                (r["trigger_name"], r["outcome"]): int(r["n"]) for r in tx.all("evaluation_counts")
            }
            durations = _buckets(tx, "task_duration_buckets", duration_bounds)
            lateness = _buckets(tx, "cron_lateness_buckets", lateness_bounds)
        return MetricsSnapshot(
            executions=executions,
            tasks=tasks,
            ready_tasks=int(ready["n"]) if ready else 0,
            evaluations=evaluations,
            task_durations=durations,
            cron_lateness=lateness,
        )


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Counts by status, the queue depth, evaluation counts per (trigger, outcome), and
    the task-duration and cron-lateness histograms, as of one read."""

    executions: dict[str, int]
    tasks: dict[str, int]
    ready_tasks: int
    evaluations: dict[tuple[str, str], int]
    task_durations: Buckets
    cron_lateness: Buckets


def _summary(row: Row) -> ExecutionSummary:
    return ExecutionSummary(
        ExecutionRecord.from_row(row), row["trigger_name"], row["cron_schedule_id"]
    )


def _buckets(tx: Tx, query: str, bounds: Sequence[float]) -> Buckets:
    if len(bounds) != BUCKETS or list(bounds) != sorted(bounds):
        raise ValueError(f"histogram bounds {bounds!r} must be {BUCKETS} increasing numbers")
    counts = [0] * (BUCKETS + 1)
    total = 0.0
    for r in tx.all(query, {f"b{i}": float(b) for i, b in enumerate(bounds)}):
        counts[int(r["bucket"])] = int(r["n"])
        total += float(r["total"] or 0.0)
    return Buckets(tuple(counts), total)
