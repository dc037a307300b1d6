"""Cron scheduler: due slots -> claim each slot -> start its execution, in one transaction.

Timer-driven: :meth:`CronScheduler.tick` returns the earliest ``next_run_at`` of the enabled
schedules as ``next_due``, so the engine loop sleeps exactly until the next slot. A change
made in this process marks the scheduler dirty and wakes the loop; changes made by other
processes are picked up every ``cron_poll_interval_seconds`` (the only polling).

Exactly once: a slot is claimed by inserting its ``(schedule_id, scheduled_time)`` key (the
unique index decides), and the claim, the execution it starts and the schedule's new
``next_run_at`` commit together. Two runners sharing a database may both try a slot; one
inserts the key, the other finds ``next_run_at`` already moved on (or the key taken).

Catch-up: a slot is *missed* when it came due while this scheduler could not fire it: before
it started, across a stall longer than :func:`stall_threshold` (e.g. a suspended machine),
or before it learnt of a change another process made to the schedule (it learns at its
next poll). Slots that came due while it was running and knew the schedule but could not
be fired at the instant (a busy process) are merely late and always fire. Missed slots
follow the schedule's ``catchup_policy``: ``skip`` fires at most one of them (the latest,
and only when no slot is firing on time in the same round); ``run_all`` fires every one,
oldest first, at most ``cron_max_catchup_executions`` per schedule (the rest are dropped
with a warning).

Any runner with scheduling enabled fires any schedule whose workflow is *known* (registered
in some process or recorded in the database): the execution it starts is run by whichever
runners have the workflow registered.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from cloaca.clock import rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.cron.schedule import CronSchedule
from cloaca.engine.cron_plan import SlotPlan, plan_slots, slot_context, stall_threshold
from cloaca.engine.planner import CreateExecution
from cloaca.engine.shape import Shape
from cloaca.errors import ParamsError
from cloaca.store.core import Store
from cloaca.store.cron_records import CronScheduleRecord
from cloaca.store.db import Tx

log = logging.getLogger(__name__)

FIRE_BATCH = 50
"""Schedules fired per transaction: small enough that the executor starts the first
executions while later ones are still being fired (the loop alternates parts), large
enough that a second round (the executor's tick, then a new read and claim) is rare. With
32, three PostgreSQL runners sharing 100 every-second schedules left 4 slots of each
second to a second round, which set W7's p99."""

RECOVERY_BATCH = 100
ShapeOf = Callable[[str], Shape]


class CronScheduler:
    """The engine part that fires cron slots and recovers lost hand-offs."""

    def __init__(
        self,
        store: Store,
        config: DefaultRunnerConfig,
        runner_id: str,
        shape_of: ShapeOf,
        create_execution: CreateExecution,
        on_fired: Callable[[], None],
    ) -> None:
        self._store = store
        self._config = config
        self._runner_id = runner_id
        self._shape_of = shape_of
        self._create_execution = create_execution
        self._on_fired = on_fired
        self._crons: dict[tuple[str, str], CronSchedule] = {}
        self._dirty = True
        self._next_due: datetime | None = None
        self._next_poll: datetime | None = None
        self._next_recovery: datetime | None = None
        self._alive_since: datetime | None = None
        self._last_tick: datetime | None = None
        self._last_read: datetime | None = None

    def mark_dirty(self) -> None:
        """A schedule changed in this process: re-read the next due slot on the next tick."""
        self._dirty = True

    # -- the loop's view ------------------------------------------------------------------------

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Fire what is due (at most :data:`FIRE_BATCH` schedules per call) and run recovery
        when its interval has passed; returns (did_work, next_due)."""
        alive_since = self._observe(now)
        cfg = self._config
        did = False
        poll_due = self._next_poll is None or now >= self._next_poll
        slot_due = self._next_due is not None and now >= self._next_due
        if self._dirty or poll_due or slot_due:
            self._dirty = False
            did = self._fire_due(now, alive_since) > 0
            self._next_due = self._store.cron.next_run_at()
            self._last_read = now
            if poll_due:
                self._next_poll = now + timedelta(seconds=cfg.cron_poll_interval_seconds)
        if cfg.cron_enable_recovery and (self._next_recovery is None or now >= self._next_recovery):
            self._next_recovery = now + timedelta(seconds=cfg.cron_recovery_interval_seconds)
            did = self.recover(now) > 0 or did
        nexts = [t for t in (self._next_due, self._next_poll, self._next_recovery) if t]
        return did, min(nexts) if nexts else None

    def _observe(self, now: datetime) -> datetime:
        """Track since when this scheduler has been running without a stall."""
        last = self._last_tick
        if last is None or now - last > stall_threshold(self._config):
            if last is not None:
                log.warning(
                    "cron scheduler was not ticked for %s; slots due meanwhile count as missed",
                    now - last,
                    extra={"runner_id": self._runner_id},
                )
            self._alive_since = now
        if last is None or now > last:
            self._last_tick = now
        assert self._alive_since is not None
        return self._alive_since

    # -- firing -----------------------------------------------------------------------------------

    def _cron(self, expression: str, timezone: str) -> CronSchedule:
        key = (expression, timezone)
        cron = self._crons.get(key)
        if cron is None:
            if len(self._crons) > 4096:
                self._crons.clear()
            cron = self._crons[key] = CronSchedule(expression, timezone)
        return cron

    def _shapes(self, names: Sequence[str]) -> dict[str, Shape | None]:
        # Resolved before the write transaction: a recorded definition is read from the
        # database, which cannot happen inside another open transaction.
        shapes: dict[str, Shape | None] = {}
        for name in names:
            try:
                shapes[name] = self._shape_of(name)
            except ValueError:
                shapes[name] = None
        return shapes

    def _fire_due(self, now: datetime, alive_since: datetime) -> int:
        names = self._store.cron.due_workflows(now)
        if not names:
            return 0
        shapes = self._shapes(names)
        try:
            fired = self._store.write_retrying(
                lambda tx: self._fire(
                    tx, self._store.cron.due(tx, now, FIRE_BATCH), now, alive_since, shapes
                ),
                "firing cron slots",
            )
        except Exception:
            log.exception("firing cron slots failed; retrying schedule by schedule")
            fired = self._fire_one_by_one(now, alive_since, shapes)
        if fired:
            self._on_fired()
        return fired

    def _fire(
        self,
        tx: Tx,
        records: Sequence[CronScheduleRecord],
        now: datetime,
        alive_since: datetime,
        shapes: dict[str, Shape | None],
        *,
        hand_off: bool = True,
    ) -> int:
        """Claim the schedules' due slots (one statement for all) and start their
        executions inside ``tx``; returns the number of slots claimed. Without ``hand_off``
        (or when the workflow is unknown) the slots are claimed without an execution, which
        recovery treats as lost."""
        planned: list[tuple[CronScheduleRecord, list[tuple[str, datetime]], datetime]] = []
        for record in records:
            if record.workflow_name not in shapes:
                self._dirty = True  # became due after the shapes were resolved: next round
                continue
            plan = self._plan(record, now, alive_since)
            slots = [(str(uuid.uuid4()), slot) for slot in plan.fire]
            planned.append((record, slots, plan.next_run_at))
        won = self._store.cron.claim_slots(
            tx,
            [
                (claim_id, record.id, slot)
                for record, slots, _ in planned
                for claim_id, slot in slots
            ],
            self._runner_id,
            now,
        )
        links: list[tuple[str, str]] = []
        moves: list[tuple[str, datetime, datetime, datetime | None]] = []
        for record, slots, next_run_at in planned:
            shape = shapes[record.workflow_name] if hand_off else None
            for claim_id, slot in slots:
                if claim_id in won:  # else another runner fired this slot already
                    execution_id = self._hand_off(tx, record, shape, slot, now)
                    if execution_id is not None:
                        links.append((claim_id, execution_id))
            last = slots[-1][1] if slots else None
            moves.append((record.id, record.next_run_at, next_run_at, last))
        # One statement each for the whole batch rather than two per schedule.
        self._store.cron.link_executions(tx, links)
        self._store.cron.advance_many(tx, moves)
        return len(won)

    def _plan(self, record: CronScheduleRecord, now: datetime, alive_since: datetime) -> SlotPlan:
        cron = self._cron(record.cron_expression, record.timezone)
        # A schedule created or changed since this scheduler's previous read (by another
        # process: local changes are read at once) was unknown until now, so its earlier
        # slots were missed rather than late.
        known = self._last_read is not None and record.updated_at <= self._last_read
        plan = plan_slots(
            cron,
            record.next_run_at,
            now,
            alive_since if known else now,
            record.catchup_policy,
            self._config.cron_max_catchup_executions,
        )
        if plan.dropped:
            log.warning(
                "cron schedule %s skipped due slots before %s (catchup_policy=%s)",
                record.id,
                rfc3339(now),
                record.catchup_policy,
                extra={"schedule_id": record.id},
            )
        return plan

    def _hand_off(
        self,
        tx: Tx,
        record: CronScheduleRecord,
        shape: Shape | None,
        slot: datetime,
        now: datetime,
    ) -> str | None:
        """Start the execution of a slot this transaction claimed; returns its id (the
        caller links it to the claim), or None when none could be started."""
        if shape is None:
            log.error(
                "cron slot %s of schedule %s claimed without an execution "
                "(workflow %r not available); recovery will retry",
                rfc3339(slot),
                record.id,
                record.workflow_name,
                extra={"schedule_id": record.id},
            )
            return None
        try:
            text = slot_context(
                shape, record.id, record.cron_expression, record.timezone, record.params, slot
            )
        except ParamsError as exc:
            # Claimed without an execution, on the record: recovery retries it (the
            # workflow may be fixed meanwhile) and finally counts it lost.
            log.error(
                "cron slot %s of schedule %s not started: %s",
                rfc3339(slot),
                record.id,
                exc,
                extra={"schedule_id": record.id},
            )
            return None
        return self._create_execution(tx, shape, text, now)

    def _fire_one_by_one(
        self, now: datetime, alive_since: datetime, shapes: dict[str, Shape | None]
    ) -> int:
        """Isolate a failing schedule: fire each due schedule in its own transaction; one
        that still fails has its slots claimed without an execution (recovery retries
        them), and one that cannot even be planned is retried a poll interval later."""
        due = self._store.read_retrying(
            lambda tx: self._store.cron.due(tx, now, FIRE_BATCH), "reading due cron schedules"
        )
        fired = 0
        for record in due:
            fire = functools.partial(
                self._fire, records=[record], now=now, alive_since=alive_since, shapes=shapes
            )
            try:
                fired += self._store.write_retrying(fire, "firing a cron schedule")
                continue
            except Exception:
                log.exception("firing cron schedule failed", extra={"schedule_id": record.id})
            try:
                claim = functools.partial(fire, hand_off=False)
                fired += self._store.write_retrying(claim, "claiming cron slots")
                continue
            except Exception:
                log.exception("claiming cron slots failed", extra={"schedule_id": record.id})
            postpone = functools.partial(
                self._store.cron.advance,
                schedule_id=record.id,
                expected=record.next_run_at,
                next_run_at=now + timedelta(seconds=self._config.cron_poll_interval_seconds),
                last_run_at=None,
            )
            try:
                self._store.write_retrying(postpone, "postponing a cron schedule")
            except Exception:
                log.exception("postponing cron schedule failed", extra={"schedule_id": record.id})
        return fired

    # -- recovery -------------------------------------------------------------------------------

    def recover(self, now: datetime) -> int:
        """Re-create the execution of claimed slots whose execution is missing (older than
        ``cron_lost_threshold_minutes``, scheduled within ``cron_max_recovery_age_seconds``,
        fewer than ``cron_max_recovery_attempts`` attempts so far); returns how many were
        handed off again. Each attempt is counted, and the claim is flagged lost."""
        cfg = self._config
        claims = self._store.cron.lost_candidates(
            claimed_before=now - timedelta(minutes=cfg.cron_lost_threshold_minutes),
            scheduled_after=now - timedelta(seconds=cfg.cron_max_recovery_age_seconds),
            max_attempts=cfg.cron_max_recovery_attempts,
            limit=RECOVERY_BATCH,
        )
        if not claims:
            return 0
        shapes = self._shapes(sorted({c.workflow_name for c in claims}))
        recovered = 0
        for claim in claims:
            shape = shapes[claim.workflow_name]
            try:
                with self._store.write() as tx:
                    if not self._store.cron.mark_recovery(
                        tx, claim.id, claim.recovery_attempts, now
                    ):
                        continue  # another runner recovered it, or it is no longer lost
                    if shape is None:
                        log.error(
                            "lost cron slot %s of schedule %s: workflow %r is unknown",
                            rfc3339(claim.scheduled_time),
                            claim.schedule_id,
                            claim.workflow_name,
                        )
                        continue
                    text = slot_context(
                        shape,
                        claim.schedule_id,
                        claim.cron_expression,
                        claim.timezone,
                        claim.params,
                        claim.scheduled_time,
                    )
                    execution_id = self._create_execution(tx, shape, text, now)
                    self._store.cron.link_execution(tx, claim.id, execution_id)
                recovered += 1
                log.warning(
                    "recovered lost cron slot %s of schedule %s as execution %s",
                    rfc3339(claim.scheduled_time),
                    claim.schedule_id,
                    execution_id,
                    extra={"schedule_id": claim.schedule_id},
                )
            except Exception:
                log.exception("recovering a lost cron slot failed", extra={"claim": claim.id})
                try:  # count the attempt anyway so a claim that always fails gives up
                    with self._store.write() as tx:
                        self._store.cron.mark_recovery(tx, claim.id, claim.recovery_attempts, now)
                except Exception:
                    log.exception("counting a cron recovery attempt failed")
        if recovered:
            self._on_fired()
        return recovered
