"""Trigger persistence: the ``Store.triggers`` query group.

Queries live in ``sql/<dialect>/triggers.sql``. Methods taking ``tx`` compose inside the
caller's transaction; the others open their own. The contracts the engine relies on:

- a poll is claimed by a conditional UPDATE of the schedule's ``next_poll_at`` (plus a
  lease until the next due instant, extended while a poll runs long), so two runners
  never poll the same due instant nor overlap their polls of one trigger;
- a dedup hold is taken by inserting a trigger execution with ``holds_dedup = 1`` under a
  unique partial index (``INSERT ... ON CONFLICT DO NOTHING``, row count read back), and
  is released by ``Store.executions.finish`` in the transaction that ends the execution.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from cloaca.clock import from_db_time, to_db_time
from cloaca.store.db import Database, Later, Tx, limit_param
from cloaca.store.group import Notices, QueryGroup
from cloaca.store.trigger_records import (
    ActiveSchedule,
    ClaimedPoll,
    ContextRun,
    NewEvaluation,
    TriggerEvaluationRecord,
    TriggerExecutionRecord,
    TriggerScheduleRecord,
)


class DueClaim(Protocol):
    """What :meth:`TriggerQueries.claim_polls_later` reads of a claim (a
    :class:`PollClaim`, or the scheduler's own record of a picked poll)."""

    @property
    def schedule_id(self) -> str: ...

    @property
    def due(self) -> datetime: ...

    @property
    def next(self) -> datetime: ...


class PollClaim(NamedTuple):
    """A request to claim one due poll: the ``due`` instant read, the ``next`` to set."""

    # A NamedTuple, not a frozen dataclass: built for every poll (a thousand a second), and
    # three times cheaper to build.

    schedule_id: str
    due: datetime
    next: datetime


@dataclass(frozen=True, slots=True)
class PollEnd:
    """How a claimed poll ended, for the schedule row (see :meth:`TriggerQueries.end_polls`)."""

    failed: bool
    retry_at: datetime | None = None
    pause_reason: str | None = None
    set_cursor: bool = False
    cursor: str | None = None


#: Dialects whose driver runs one prepared statement per row for less than it costs the
#: database to unpack a JSON batch (SQLite's ``executemany``: ``json_extract`` parses the
#: row's text again for every field). PostgreSQL takes the batch as one statement.
_EVALUATIONS_ONE_BY_ONE = frozenset({"sqlite"})


#: Encodes the batches of claims and evaluations (a row per poll, a thousand a second):
#: compact, and without the check for circular references plain lists of values cannot
#: have.
_batch_json = json.JSONEncoder(check_circular=False, separators=(",", ":")).encode

#: The due-instant texts a claim keeps (see :class:`TriggerQueries`) are dropped all at
#: once past this many: those of polls never recorded (lost claims, stopped schedules).
_DUE_TEXTS_MAX = 1 << 16


def _ids_json(execution_ids: Sequence[str]) -> str | None:
    return json.dumps(list(execution_ids)) if execution_ids else None


def won_polls(later: Later) -> dict[str, ClaimedPoll]:
    """The polls of a committed :meth:`TriggerQueries.claim_polls_later` this runner won,
    by schedule id, each with the schedule as it stood at the claim."""
    return {r["id"]: ClaimedPoll.from_row(r) for r in later.rows}


class TriggerQueries(QueryGroup):
    """``Store.triggers``: trigger schedules, trigger executions and the evaluation log.

    A poll's due instant is written three times: as the claim's new ``next_poll_at``, as
    the next claim's expected value, and as its evaluation's ``scheduled_at``. Its text is
    formatted once, by the claim, and kept here (``_due_texts``, instant -> text, a pure
    function, so an entry is never wrong) until that evaluation takes it.
    """

    def __init__(self, db: Database, notices: Notices) -> None:
        super().__init__(db, notices)
        self._due_texts: dict[datetime, str] = {}

    def _due_text(self, at: datetime) -> str:
        """The text of a due instant a claim wrote (taken: its evaluation is the last use),
        or formatted now."""
        text = self._due_texts.pop(at, None)
        return text if text is not None else to_db_time(at)

    # -- schedules --------------------------------------------------------------------------

    def upsert_schedule(
        self,
        trigger_name: str,
        workflow_name: str,
        poll_interval_ms: int,
        allow_concurrent: bool,
        now: datetime,
        on_failed_run: str = "backoff",
    ) -> str:
        """Create or update the schedule of ``trigger_name``; returns its id.

        A new schedule is enabled and due at ``now``. An existing one keeps its id, enabled
        flag, pause reason, cursor and history; only the workflow, interval, concurrency and
        failed-run policy change (``updated_at`` moves only when one of them did), and a
        shorter interval brings the next poll forward to at most ``now + interval``.
        """
        next_if_updated = now + timedelta(milliseconds=poll_interval_ms)
        with self.db.write() as tx:
            tx.run(
                "trigger_schedule_upsert",
                {
                    "id": str(uuid.uuid4()),
                    "trigger_name": trigger_name,
                    "workflow_name": workflow_name,
                    "poll_interval_ms": poll_interval_ms,
                    "allow_concurrent": int(allow_concurrent),
                    "on_failed_run": on_failed_run,
                    "now": to_db_time(now),
                    "next_if_updated": to_db_time(next_if_updated),
                },
            )
            row = tx.one("trigger_schedule_get", {"trigger_name": trigger_name})
            self.notices.triggers(tx)
        assert row is not None
        return str(row["id"])

    def get_schedule(self, trigger_name: str) -> TriggerScheduleRecord | None:
        """The schedule of ``trigger_name``, or ``None``."""
        with self.db.read() as tx:
            row = tx.one("trigger_schedule_get", {"trigger_name": trigger_name})
        return TriggerScheduleRecord.from_row(row) if row else None

    def list_schedules(
        self, enabled: bool | None, limit: int | None, offset: int | None
    ) -> list[TriggerScheduleRecord]:
        """Schedules ordered by trigger name, optionally only enabled/disabled ones."""
        with self.db.read() as tx:
            rows = tx.all(
                "trigger_schedule_list",
                {
                    "enabled": None if enabled is None else int(enabled),
                    "limit": limit_param(limit),
                    "offset": offset or 0,
                },
            )
        return [TriggerScheduleRecord.from_row(r) for r in rows]

    def set_enabled(self, trigger_name: str, enabled: bool, now: datetime) -> bool:
        """Enable or disable a schedule; False when there is none. Enabling clears a pause
        (reason and error count) and, if it was disabled, makes the trigger due at ``now``.
        A claim re-checks ``enabled``, so a disabled trigger is not polled again by any
        runner once this commits."""
        query = "trigger_schedule_enable" if enabled else "trigger_schedule_disable"
        with self.db.write() as tx:
            changed = tx.run(query, {"trigger_name": trigger_name, "now": to_db_time(now)}) > 0
            if changed:
                self.notices.triggers(tx)
            return changed

    def schedules_version(self) -> str:
        """Changes when a schedule is added, changed, enabled or disabled (its count and
        latest ``updated_at``); claims, polls and their records leave it as it is."""
        with self.db.read() as tx:
            row = tx.one("trigger_schedules_version")
        return "" if row is None else f"{row['n']}:{row['at']}"

    def active_schedules(self, trigger_names: Sequence[str]) -> list[ActiveSchedule]:
        """Enabled schedules of the given triggers (the scheduler's view of what to poll)."""
        with self.db.read() as tx:
            rows = tx.all("trigger_schedules_active", {"names": json.dumps(list(trigger_names))})
        return [ActiveSchedule.from_row(r) for r in rows]

    # -- polls ------------------------------------------------------------------------------

    def claim_polls_later(
        self,
        tx: Tx,
        claims: Sequence[DueClaim],
        runner_id: str,
        now: datetime,
    ) -> Later:
        """Claim due polls in one statement inside ``tx``, whose rows are read after the
        commit (on PostgreSQL the statement travels with the COMMIT): pass them to
        :func:`won_polls` for the claims this runner won.

        A claim succeeds only if the schedule is enabled, its ``next_poll_at`` still equals
        ``claim.due`` and no other runner holds a lease past that instant. It moves
        ``next_poll_at`` to ``claim.next``, sets ``last_poll_at`` and takes the lease until
        ``claim.next`` (see :meth:`extend_leases` for polls that run longer).
        """
        if not claims:
            done = Later()
            done.set([])
            return done
        texts = self._due_texts
        if len(texts) > _DUE_TEXTS_MAX:
            texts.clear()
        rows = []
        for c in claims:
            due = texts.get(c.due)
            following = texts[c.next] = to_db_time(c.next)
            rows.append([c.schedule_id, to_db_time(c.due) if due is None else due, following])
        payload = _batch_json(rows)
        return tx.later(
            "trigger_claim",
            {"claims": payload, "now": to_db_time(now), "runner_id": runner_id},
        )

    def extend_leases(self, schedule_ids: Sequence[str], runner_id: str, until: datetime) -> None:
        """Extend this runner's leases of still-running polls to ``until``, so no other
        runner starts an overlapping poll when the next one falls due."""
        with self.db.write() as tx:
            tx.run(
                "trigger_extend_leases",
                {
                    "ids": json.dumps(list(schedule_ids)),
                    "runner_id": runner_id,
                    "until": to_db_time(until),
                },
            )

    def end_polls(
        self,
        tx: Tx,
        ends: Sequence[tuple[str, PollEnd]],
        runner_id: str,
        max_errors: int,
    ) -> dict[str, tuple[bool, int, datetime]]:
        """Record how claimed polls ended and release their leases (only those this runner
        still holds), in one statement. A failure counts a consecutive error, defers
        ``next_poll_at`` to at least ``retry_at``, and at ``max_errors`` disables the
        schedule with ``pause_reason``; a success resets the count. ``set_cursor`` stores
        ``cursor``. Returns schedule id → ``(enabled, consecutive_errors, next_poll_at)``
        after the update; a schedule whose lease was no longer this runner's is absent."""
        if not ends:
            return {}
        rows = tx.all(
            "trigger_poll_done",
            {"ends": self._ends_payload(ends), "runner_id": runner_id, "max_errors": max_errors},
        )
        out: dict[str, tuple[bool, int, datetime]] = {}
        for row in rows:
            next_poll = from_db_time(row["next_poll_at"])
            assert next_poll is not None
            out[row["id"]] = (bool(row["enabled"]), int(row["consecutive_errors"]), next_poll)
        return out

    @staticmethod
    def _ends_payload(ends: Sequence[tuple[str, PollEnd]]) -> str:
        return json.dumps(
            [
                [
                    schedule_id,
                    end.failed,
                    to_db_time(end.retry_at) if end.retry_at else None,
                    end.pause_reason,
                    end.set_cursor,
                    end.cursor,
                ]
                for schedule_id, end in ends
            ]
        )

    def schedule_state(self, tx: Tx, schedule_id: str) -> tuple[bool, str | None] | None:
        """``(enabled, lease_owner)`` of a schedule read inside ``tx``; None if it is gone."""
        state = self.fire_state(tx, schedule_id)
        return state[:2] if state else None

    def fire_state(self, tx: Tx, schedule_id: str) -> tuple[bool, str | None, datetime] | None:
        """``(enabled, lease_owner, next_poll_at)`` of a schedule, read (and on PostgreSQL
        locked until ``tx`` ends) by a fire transaction; None if it is gone."""
        row = tx.one("trigger_schedule_state", {"id": schedule_id})
        if row is None:
            return None
        next_poll = from_db_time(row["next_poll_at"])
        assert next_poll is not None
        return bool(row["enabled"]), row["lease_owner"], next_poll

    def end_fired_poll(
        self, tx: Tx, schedule_id: str, runner_id: str, set_cursor: bool, cursor: str | None
    ) -> None:
        """End a poll that fired, for a caller holding the schedule's row locked with its
        lease (:meth:`fire_state`): reset the error count, store ``cursor`` if
        ``set_cursor``, release the lease. The row stays enabled with its ``next_poll_at``,
        so nothing is read back and the statement is sent without waiting."""
        tx.send(
            "trigger_fired_poll_done",
            {
                "id": schedule_id,
                "runner_id": runner_id,
                "set_cursor": 1 if set_cursor else 0,
                "cursor": cursor,
            },
        )

    def release_leases(self, runner_id: str) -> None:
        """Drop every poll lease ``runner_id`` holds (it is shutting down)."""
        with self.db.write() as tx:
            tx.run("trigger_release_leases", {"runner_id": runner_id})

    # -- fires ------------------------------------------------------------------------------

    def insert_execution(
        self,
        tx: Tx,
        *,
        trigger_execution_id: str,
        schedule_id: str,
        trigger_name: str,
        context_hash: str,
        hold: bool,
        now: datetime,
    ) -> bool:
        """Insert a fire record. With ``hold`` it takes the dedup hold on (trigger, hash)
        and returns False, inserting nothing, if an active fire already holds it."""
        inserted = tx.run(
            "trigger_execution_insert",
            {
                "id": trigger_execution_id,
                "schedule_id": schedule_id,
                "trigger_name": trigger_name,
                "context_hash": context_hash,
                "holds_dedup": 1 if hold else None,
                "now": to_db_time(now),
            },
        )
        return inserted > 0

    def dedup_holder(self, tx: Tx, trigger_name: str, context_hash: str) -> str | None:
        """The execution id holding the dedup hold on (trigger, hash), or None."""
        row = tx.one(
            "trigger_execution_holder",
            {"trigger_name": trigger_name, "context_hash": context_hash},
        )
        return row["workflow_execution_id"] if row else None

    def context_runs(
        self, tx: Tx, trigger_name: str, context_hash: str, limit: int
    ) -> list[ContextRun]:
        """The newest ``limit`` fires of (trigger, hash) inside ``tx``, newest first, with
        how their executions ended (for the failed-run policy)."""
        rows = tx.all(
            "trigger_context_runs",
            {"trigger_name": trigger_name, "context_hash": context_hash, "limit": limit},
        )
        return [ContextRun.from_row(r) for r in rows]

    def link_execution(
        self, tx: Tx, trigger_execution_id: str, execution_id: str, now: datetime
    ) -> None:
        """Record the execution a fire started (same transaction as the fire)."""
        tx.send(
            "trigger_execution_link",
            {"id": trigger_execution_id, "execution_id": execution_id, "now": to_db_time(now)},
        )

    def execution_history(
        self, trigger_name: str, limit: int | None, offset: int | None
    ) -> list[TriggerExecutionRecord]:
        """Fires of ``trigger_name``, newest first."""
        with self.db.read() as tx:
            rows = tx.all(
                "trigger_execution_history",
                {"trigger_name": trigger_name, "limit": limit_param(limit), "offset": offset or 0},
            )
        return [TriggerExecutionRecord.from_row(r) for r in rows]

    # -- evaluation log ---------------------------------------------------------------------

    def insert_evaluations(
        self, tx: Tx, runner_id: str, evaluations: Sequence[NewEvaluation]
    ) -> None:
        """Append evaluations (recorded by ``runner_id``) to the log, sent without waiting:
        one statement per batch on PostgreSQL, one prepared insert per row on SQLite."""
        if not evaluations:
            return
        if self.db.dialect in _EVALUATIONS_ONE_BY_ONE:
            tx.run_many(
                "trigger_evaluation_insert_one",
                [
                    {
                        "trigger_name": e.trigger_name,
                        "runner_id": runner_id,
                        "scheduled_at": self._due_text(e.scheduled_at) if e.scheduled_at else None,
                        "evaluated_at": to_db_time(e.evaluated_at),
                        "duration_ms": e.duration_ms,
                        "outcome": str(e.outcome),
                        "message": e.message,
                        "execution_ids": _ids_json(e.execution_ids),
                    }
                    for e in evaluations
                ],
            )
            return
        due_text = self._due_text
        rows = [
            [
                e.trigger_name,
                due_text(e.scheduled_at) if e.scheduled_at else None,
                to_db_time(e.evaluated_at),
                e.duration_ms,
                str(e.outcome),
                e.message,
                _ids_json(e.execution_ids) if e.execution_ids else None,
            ]
            for e in evaluations
        ]
        tx.send("trigger_evaluation_insert", {"runner_id": runner_id, "rows": _batch_json(rows)})

    def prune_evaluations_of(self, tx: Tx, trigger_names: Sequence[str], keep: int) -> None:
        """Delete all but the newest ``keep`` evaluations of each of ``trigger_names``, in
        one statement sent without waiting."""
        if trigger_names:
            tx.send(
                "trigger_evaluation_prune_many",
                {"names": json.dumps(list(trigger_names)), "keep": keep},
            )

    def evaluations(self, trigger_name: str, limit: int) -> list[TriggerEvaluationRecord]:
        """The newest ``limit`` evaluations of ``trigger_name``, newest first."""
        with self.db.read() as tx:
            rows = tx.all("trigger_evaluation_list", {"trigger_name": trigger_name, "limit": limit})
        return [TriggerEvaluationRecord.from_row(r) for r in rows]
