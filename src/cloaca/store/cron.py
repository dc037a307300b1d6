"""Cron persistence: the ``Store.cron`` query group.

The store knows nothing about cron arithmetic: callers pass every computed instant
(``next_run_at``) in. What it guarantees is the exactly-once part: a slot is claimed by
inserting its ``(schedule_id, scheduled_time)`` key, and the unique index decides who won.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cloaca.clock import from_db_time, to_db_time
from cloaca.store.cron_records import (
    CatchupPolicy,
    CronExecutionRecord,
    CronScheduleRecord,
    CronStats,
    LostClaim,
)
from cloaca.store.db import Tx, limit_param
from cloaca.store.group import QueryGroup


def _params_text(params: dict[str, Any] | None) -> str | None:
    return None if params is None else json.dumps(params, sort_keys=True)


class CronQueries(QueryGroup):
    """``Store.cron``: cron schedules and their records (queries in
    ``sql/<dialect>/cron.sql``)."""

    # -- schedules ----------------------------------------------------------------------------

    def register(
        self,
        *,
        new_id: str,
        workflow_name: str,
        instance_name: str | None,
        cron_expression: str,
        timezone: str,
        catchup_policy: CatchupPolicy,
        params: dict[str, Any] | None,
        next_run_at: datetime,
        now: datetime,
    ) -> tuple[CronScheduleRecord, bool]:
        """Create a schedule, or update the one with the same identity; ``(record, created)``.

        Identity: ``(workflow_name, instance_name)`` for an instance, otherwise
        ``(workflow_name, cron_expression, timezone)``. Re-registering keeps the enabled flag,
        the history and ``next_run_at`` (so catch-up after a restart still happens); only a
        changed expression or timezone moves ``next_run_at`` to the given instant.
        """
        params_text = _params_text(params)
        values = {
            "workflow_name": workflow_name,
            "instance_name": instance_name,
            "cron_expression": cron_expression,
            "timezone": timezone,
            "catchup_policy": str(catchup_policy),
            "params": params_text,
            "next_run_at": to_db_time(next_run_at),
            "now": to_db_time(now),
        }
        with self.db.write() as tx:
            created = tx.run("cron_schedule_insert", {"id": new_id, **values}) > 0
            row = tx.one("cron_schedule_find", values)
            assert row is not None, "the schedule row vanished inside its own transaction"
            if not created:
                tx.run("cron_schedule_reregister", {"id": row["id"], **values})
            record = self.get_in(tx, row["id"])
        assert record is not None
        return record, created

    def get_in(self, tx: Tx, schedule_id: str) -> CronScheduleRecord | None:
        """One schedule, read inside the caller's transaction."""
        row = tx.one("cron_schedule_get", {"id": schedule_id})
        return CronScheduleRecord.from_row(row) if row else None

    def get(self, schedule_id: str) -> CronScheduleRecord | None:
        """One schedule, or ``None``."""
        with self.db.read() as tx:
            return self.get_in(tx, schedule_id)

    def find_plain(
        self, tx: Tx, workflow_name: str, cron_expression: str, timezone: str
    ) -> str | None:
        """The id of the plain (non-instance) schedule with this identity, if any."""
        row = tx.one(
            "cron_schedule_find",
            {
                "workflow_name": workflow_name,
                "instance_name": None,
                "cron_expression": cron_expression,
                "timezone": timezone,
            },
        )
        return row["id"] if row else None

    def list_schedules(
        self, enabled_only: bool, limit: int | None, offset: int
    ) -> list[CronScheduleRecord]:
        """Schedules in creation order."""
        with self.db.read() as tx:
            rows = tx.all(
                "cron_schedule_list",
                {
                    "enabled_only": 1 if enabled_only else 0,
                    "limit": limit_param(limit),
                    "offset": offset,
                },
            )
        return [CronScheduleRecord.from_row(r) for r in rows]

    def set_expression(
        self,
        tx: Tx,
        schedule_id: str,
        cron_expression: str,
        timezone: str,
        next_run_at: datetime,
        now: datetime,
    ) -> bool:
        """Change a schedule's expression and timezone and restart it at ``next_run_at``."""
        params = {
            "id": schedule_id,
            "cron_expression": cron_expression,
            "timezone": timezone,
            "next_run_at": to_db_time(next_run_at),
            "now": to_db_time(now),
        }
        return tx.run("cron_schedule_set_expression", params) > 0

    def set_enabled(
        self, schedule_id: str, enabled: bool, next_run_at: datetime, now: datetime
    ) -> bool:
        """Enable or disable a schedule; False if it does not exist.

        Enabling a disabled schedule restarts it at ``next_run_at``: slots that came due while
        it was disabled are not caught up.
        """
        with self.db.write() as tx:
            params = {
                "id": schedule_id,
                "enabled": 1 if enabled else 0,
                "next_run_at": to_db_time(next_run_at),
                "now": to_db_time(now),
            }
            return tx.run("cron_schedule_set_enabled", params) > 0

    def delete(self, schedule_id: str) -> bool:
        """Delete a schedule and its cron execution records (the executions it started stay)."""
        with self.db.write() as tx:
            return tx.run("cron_schedule_delete", {"id": schedule_id}) > 0

    # -- firing -------------------------------------------------------------------------------

    def due_workflows(self, now: datetime) -> list[str]:
        """Names of the workflows of enabled schedules due at ``now``."""
        with self.db.read() as tx:
            rows = tx.all("cron_due_workflows", {"now": to_db_time(now)})
        return [r["workflow_name"] for r in rows]

    def due(self, tx: Tx, now: datetime, limit: int) -> list[CronScheduleRecord]:
        """Enabled schedules with ``next_run_at <= now``, earliest first (inside ``tx``)."""
        rows = tx.all("cron_due", {"now": to_db_time(now), "limit": limit})
        return [CronScheduleRecord.from_row(r) for r in rows]

    def next_run_at(self) -> datetime | None:
        """The earliest ``next_run_at`` among enabled schedules."""
        with self.db.read() as tx:
            row = tx.one("cron_next_run_at")
        return from_db_time(row["next_run_at"]) if row else None

    def claim_slots(
        self,
        tx: Tx,
        slots: Sequence[tuple[str, str, datetime]],
        runner_id: str,
        now: datetime,
    ) -> set[str]:
        """Claim slots given as ``(claim id, schedule id, scheduled time)`` in one statement;
        returns the claim ids that won (each slot's key is taken once, by one caller)."""
        if not slots:
            return set()
        claims = json.dumps([[cid, sid, to_db_time(at)] for cid, sid, at in slots])
        rows = tx.all(
            "cron_execution_claim",
            {"claims": claims, "now": to_db_time(now), "runner_id": runner_id},
        )
        return {r["id"] for r in rows}

    def link_execution(self, tx: Tx, claim_id: str, execution_id: str) -> None:
        """Record the execution a claimed slot started."""
        tx.send("cron_execution_link", {"id": claim_id, "execution_id": execution_id})

    def link_executions(self, tx: Tx, links: Sequence[tuple[str, str]]) -> None:
        """Record the executions claimed slots started, as ``(claim id, execution id)``, in
        one statement (sent without waiting)."""
        if links:
            tx.send("cron_execution_link_many", {"links": json.dumps(list(links))})

    def advance_many(
        self,
        tx: Tx,
        moves: Sequence[tuple[str, datetime, datetime, datetime | None]],
    ) -> None:
        """:meth:`advance` for many schedules, as ``(schedule id, expected, next_run_at,
        last_run_at)``, in one statement (sent without waiting)."""
        if not moves:
            return
        payload = json.dumps(
            [
                [sid, to_db_time(expected), to_db_time(nxt), to_db_time(last) if last else None]
                for sid, expected, nxt, last in moves
            ]
        )
        tx.send("cron_schedule_advance_many", {"moves": payload})

    def advance(
        self,
        tx: Tx,
        schedule_id: str,
        expected: datetime,
        next_run_at: datetime,
        last_run_at: datetime | None,
    ) -> None:
        """Move ``next_run_at`` on, only if it still is ``expected`` and the schedule enabled
        (sent without waiting: the firing transaction holds the row's lock already)."""
        params = {
            "id": schedule_id,
            "expected": to_db_time(expected),
            "next_run_at": to_db_time(next_run_at),
            "last_run_at": to_db_time(last_run_at) if last_run_at else None,
        }
        tx.send("cron_schedule_advance", params)

    # -- history, stats, recovery ---------------------------------------------------------------

    def history(
        self, schedule_id: str, limit: int | None, offset: int
    ) -> list[CronExecutionRecord]:
        """Claimed slots of a schedule, latest scheduled time first."""
        with self.db.read() as tx:
            rows = tx.all(
                "cron_execution_history",
                {
                    "schedule_id": schedule_id,
                    "limit": limit_param(limit),
                    "offset": offset,
                },
            )
        return [CronExecutionRecord.from_row(r) for r in rows]

    def stats(self, since: datetime, lost_before: datetime) -> CronStats:
        """Counts over slots scheduled at or after ``since``. A slot is lost once recovery
        flagged it, or when it has no live execution and was claimed before ``lost_before``."""
        with self.db.read() as tx:
            row = tx.one(
                "cron_execution_stats",
                {"since": to_db_time(since), "lost_before": to_db_time(lost_before)},
            )
        assert row is not None
        return CronStats(
            total=row["total"],
            successful=row["successful"],
            failed=row["failed"],
            in_progress=row["in_progress"],
            lost=row["lost"],
            recovered=row["recovered"],
        )

    def lost_candidates(
        self,
        claimed_before: datetime,
        scheduled_after: datetime,
        max_attempts: int,
        limit: int,
    ) -> list[LostClaim]:
        """Claims older than ``claimed_before`` whose execution is missing, still young enough
        and with recovery attempts left, oldest slot first."""
        with self.db.read() as tx:
            rows = tx.all(
                "cron_lost_candidates",
                {
                    "claimed_before": to_db_time(claimed_before),
                    "scheduled_after": to_db_time(scheduled_after),
                    "max_attempts": max_attempts,
                    "limit": limit,
                },
            )
        return [LostClaim.from_row(r) for r in rows]

    def mark_recovery(self, tx: Tx, claim_id: str, attempts: int, now: datetime) -> bool:
        """Count one recovery attempt and flag the claim lost; True only for the one caller
        that saw ``attempts`` and found the execution still missing."""
        params = {"id": claim_id, "attempts": attempts, "now": to_db_time(now)}
        return tx.run("cron_lost_mark", params) > 0
