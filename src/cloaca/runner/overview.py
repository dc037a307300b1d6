"""Overview reads for management tools (the dashboard and the metrics), composed by the
:class:`~cloaca.runner.management.ManagementClient`: keyset pages of executions with who
started each one, one execution's origin and input, what is in motion, and "tails" of new
rows for the metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cloaca.errors import ValidationError
from cloaca.paging import check_count
from cloaca.runner.executions import check_status, execution_dict
from cloaca.store.core import Store
from cloaca.store.overview import STARTED_BY, ExecutionSummary


class Overview:
    """Reads that list and count; nothing here writes."""

    def __init__(self, store: Store, check_open: Callable[[], None]) -> None:
        self._store = store
        self._check_open = check_open

    def list_executions_page(
        self,
        workflow_name: str | None = None,
        status: str | None = None,
        started_by: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Executions newest first like ``list_executions``, one keyset page at a time:
        those older than execution ``before`` (an id from the previous page; None: from the
        newest), so deep pages cost what the first does. ``started_by`` filters on the
        origin: ``trigger``, ``cron`` or ``api`` (started by neither). Each dict adds
        ``started_by``, ``trigger_name`` and ``cron_schedule_id``."""
        self._check_open()
        check_status(status)
        if started_by is not None and started_by not in STARTED_BY:
            raise ValidationError(f"started_by {started_by!r} is not one of {list(STARTED_BY)}")
        check_count("limit", limit, optional=False)
        page = self._store.overview.execution_page(workflow_name, status, started_by, before, limit)
        return [_summary_dict(s) for s in page]

    def describe_execution(self, execution_id: str) -> dict[str, Any]:
        """What ``get_execution`` does not say of an execution: the ``list_executions_page``
        keys plus ``input_context`` (the context it started with). Unknown id →
        ``ValueError``."""
        self._check_open()
        summary = self._store.overview.execution_summary(str(execution_id))
        if summary is None:
            raise ValidationError(f"Execution {execution_id!r} not found")
        return {**_summary_dict(summary), "input_context": json.loads(summary.execution.context)}

    def find_execution_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Up to ``limit`` execution ids starting with ``prefix`` (a shortened id as tables
        show it), in id order. A prefix that is not hex digits and dashes matches nothing."""
        self._check_open()
        check_count("limit", limit, optional=False)
        if not prefix or prefix.strip("0123456789abcdef-"):
            return []
        return self._store.overview.execution_ids_with_prefix(prefix, limit)

    def queue_counts(self) -> dict[str, int]:
        """``executions_pending``, ``executions_running``, ``tasks_ready`` (the queue
        depth) and ``tasks_running``, counted through indexes (cheap at any size)."""
        self._check_open()
        return self._store.overview.queue_counts()

    def metrics_tail_end(self, what: str) -> int:
        """The position of the newest row of ``what`` (``executions``, ``tasks``,
        ``evaluations`` or ``cron_slots``): where a metrics reader starts."""
        self._check_open()
        return self._store.overview.tail_end(what)

    def metrics_tail(self, what: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of ``what`` added after position ``after``, oldest first:
        dicts with ``pos``, ``final`` (the row will not change any more) and the values of
        that kind (executions: ``status``; tasks: ``status, started_at, completed_at``;
        evaluations: ``trigger_name, outcome``; cron slots: ``scheduled_time,
        claimed_at``; times as the database stores them)."""
        self._check_open()
        check_count("after", after, optional=False)
        check_count("limit", limit, optional=False)
        rows = self._store.overview.tail(what, after, limit)
        return [{"pos": r.pos, "final": r.final, **r.values} for r in rows]


def _summary_dict(s: ExecutionSummary) -> dict[str, Any]:
    return {
        **execution_dict(s.execution),
        "started_by": s.started_by,
        "trigger_name": s.trigger_name,
        "cron_schedule_id": s.cron_schedule_id,
    }
