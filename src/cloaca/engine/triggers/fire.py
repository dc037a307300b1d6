"""Recording what polls led to: the fire transaction, the evaluation log, backoff and pause.

The scheduler (``scheduler.py``) decides *when* and *how* polls run; this module
decides what their outcomes *mean* for the database. A fire is ONE write transaction: the
trigger execution (taking the dedup hold unless ``allow_concurrent``), the execution it
starts (planned roots included), the link between them, the cursor and the evaluation all
commit together, so a crash either loses the whole poll (it is polled again) or none of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context, ContextLimitError
from cloaca.engine.executor import Claim, TaskSlots
from cloaca.engine.planner import CreateExecution
from cloaca.engine.shape import Shape, local_roots
from cloaca.engine.triggers.polls import PollRun, describe_error
from cloaca.engine.triggers.starts import (
    FireResult,
    FireStarter,
    claimed_roots,
    fire_outcome,
    prepare,
)
from cloaca.errors import ParamsError, ValidationError
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.trigger_records import (
    EvaluationOutcome,
    NewEvaluation,
    TriggerScheduleRecord,
)
from cloaca.store.triggers import PollEnd

log = logging.getLogger(__name__)

#: Consecutive errors back off exponentially up to this multiple of the interval (SPEC 6.5).
MAX_BACKOFF_FACTOR = 10


def backoff_delay(interval: timedelta, consecutive_errors: int) -> timedelta:
    """Delay before the next poll after ``consecutive_errors`` errors in a row (>= 1):
    ``interval * 2**(errors - 1)``, capped at ``10 * interval``."""
    if consecutive_errors < 1:
        raise ValidationError(f"consecutive_errors must be >= 1, got {consecutive_errors!r}")
    factor = MAX_BACKOFF_FACTOR if consecutive_errors > 4 else 2 ** (consecutive_errors - 1)
    return interval * min(factor, MAX_BACKOFF_FACTOR)


class Recorded(NamedTuple):
    """The schedule after a poll was recorded; ``None`` fields mean the lease was lost."""

    # A NamedTuple, not a frozen dataclass: built for every poll (a thousand a second), and
    # three times cheaper to build.

    run: PollRun
    enabled: bool | None
    next_poll_at: datetime | None
    fired: bool = False


class TriggerRecorder:
    """Writes poll outcomes and fires for one runner."""

    def __init__(
        self,
        store: Store,
        config: DefaultRunnerConfig,
        runner_id: str,
        shape: Callable[[str], Shape],
        create_execution: CreateExecution,
        slots: TaskSlots,
    ) -> None:
        self._store = store
        self._config = config
        self._runner_id = runner_id
        self._shape = shape
        self._starter = FireStarter(store, config, create_execution)
        self._slots = slots
        self._since_prune: dict[str, int] = {}
        self._prune_lock = threading.Lock()

    # -- polls ------------------------------------------------------------------------------

    def record(self, runs: Sequence[PollRun], now: datetime) -> list[Recorded]:
        """Record finished (or timed-out) polls: fires one transaction each, everything else
        in one shared transaction. Returns the schedule state after each."""
        # Split before recording: a fire that cannot be prepared turns into an error run
        # (no longer ``fires``) and comes back in ``plain``; it must not be counted twice.
        others = [r for r in runs if not r.fires]
        out, plain = self.record_fires([r for r in runs if r.fires], now)
        plain.extend(others)
        if plain:
            try:
                out.extend(
                    self._store.write_retrying(
                        lambda tx: self.record_plain(tx, plain, now), "recording trigger polls"
                    )
                )
            except Exception:
                log.exception("recording trigger polls failed", extra={"count": len(plain)})
                out.extend(Recorded(run, None, None) for run in plain)
        return out

    def record_fires(
        self, runs: Sequence[PollRun], now: datetime
    ) -> tuple[list[Recorded], list[PollRun]]:
        """Record polls that returned a fire, one transaction each (which claims the new
        executions' roots while this process has free slots; the executor is woken for the
        rest). Returns what was recorded and the runs left for :meth:`record_plain` (a fire that
        could not even be prepared, e.g. its workflow is unknown, becomes an error)."""
        out: list[Recorded] = []
        leftover: list[PollRun] = []
        for run in runs:
            try:
                recorded = self._record_fire(run, now)
            except Exception:
                # The lease stays ours until it expires; the scheduler re-reads the schedule
                # and polls again (this runner may re-claim its own lease).
                log.exception("recording a trigger fire failed", extra={"trigger_name": run.name})
                out.append(Recorded(run, None, None))
                continue
            if recorded is None:
                leftover.append(run)
            else:
                out.append(recorded)
        return out, leftover

    def record_plain(self, tx: Tx, runs: Sequence[PollRun], now: datetime) -> list[Recorded]:
        """Record polls that did not fire (skips, errors, timeouts) inside ``tx``: one
        statement ends those that change their schedule (errors, cursors, a reset error
        count, an extended lease), one appends every evaluation."""
        ends: list[tuple[str, PollEnd]] = []
        ended: list[PollRun] = []  # the runs in ``ends``, in the same order
        evaluations: list[NewEvaluation] = []
        recorded: list[Recorded] = []
        skipped = EvaluationOutcome.SKIPPED
        for run in runs:
            result = run.result
            if (
                run.error is None
                and not run.timed_out
                and (result is None or result.cursor is None)
                and run.claim.consecutive_errors == 0
                and not run.extended
            ):
                # The common case: a skip that changes nothing on the schedule, and whose
                # lease ends by itself at the next due instant. Only its evaluation (built
                # here rather than by _evaluation: a thousand a second).
                evaluated = run.started_at or run.claimed_at
                evaluations.append(
                    NewEvaluation(run.name, run.due, evaluated, run.duration_ms, skipped)
                )
                recorded.append(Recorded(run, True, run.next_due))
                continue
            failed = run.error is not None or run.timed_out
            if failed:
                errors = run.claim.consecutive_errors + 1
                end = PollEnd(
                    failed=True,
                    retry_at=now + backoff_delay(run.interval, errors),
                    pause_reason=(
                        f"paused after {errors} consecutive poll errors "
                        f"(trigger_max_consecutive_errors={self._max_errors}); "
                        f"last error: {run.error}"
                    ),
                )
                outcome = EvaluationOutcome.TIMEOUT if run.timed_out else EvaluationOutcome.ERROR
            else:
                cursor = run.result.cursor if run.result is not None else None
                end = PollEnd(failed=False, set_cursor=cursor is not None, cursor=cursor)
                outcome = EvaluationOutcome.SKIPPED
            ends.append((run.claim.schedule_id, end))
            ended.append(run)
            evaluations.append(_evaluation(run, outcome, run.error))
        states = self._store.triggers.end_polls(tx, ends, self._runner_id, self._max_errors)
        self._store.triggers.insert_evaluations(tx, self._runner_id, evaluations)
        self._prune(tx, [run.name for run in runs])
        for run, (schedule_id, end) in zip(ended, ends, strict=True):
            state = states.get(schedule_id)
            if end.failed:
                log.warning(
                    "trigger %r poll %s: %s",
                    run.name,
                    "timed out" if run.timed_out else "failed",
                    run.error,
                    exc_info=run.exc,
                    extra={"trigger_name": run.name},
                )
                if state is not None and not state[0]:
                    log.error(
                        "trigger %r paused: %s",
                        run.name,
                        end.pause_reason,
                        extra={"trigger_name": run.name},
                    )
            recorded.append(_recorded(run, state))
        return recorded

    def _record_fire(self, run: PollRun, now: datetime) -> Recorded | None:
        assert run.result is not None
        name = run.name
        try:
            shape = self._shape(run.claim.workflow_name)
            prepared = prepare(shape, run.result.contexts, name, now, self._max_bytes)
        except Exception as exc:
            run.error, run.exc = describe_error(exc), exc
            run.result, run.fires = None, False
            return None
        roots = local_roots(shape)
        reserved = self._slots.reserve(roots * len(prepared)) if roots else 0
        claimed: list[Claim] = []
        try:
            recorded, fire = self._store.write_retrying(
                lambda tx: self._fire_tx(tx, run, shape, prepared, now, roots, reserved),
                "recording a trigger fire",
            )
            if fire is not None:
                claimed = claimed_roots(fire)
        finally:
            self._slots.adopt(claimed, reserved)
        if fire is not None:
            _log_fire(name, fire)
            if fire.execution_ids and fire.unclaimed:
                self._slots.roots_left_ready()
        return recorded

    def _fire_tx(
        self,
        tx: Tx,
        run: PollRun,
        shape: Shape,
        prepared: Sequence[tuple[str, str]],
        now: datetime,
        roots: int,
        reserved: int,
    ) -> tuple[Recorded, FireResult | None]:
        """The fire transaction of one poll (run again as a whole on transient errors),
        claiming up to ``reserved`` of the started executions' ``roots`` each."""
        assert run.result is not None
        name = run.name
        cursor = run.result.cursor
        schedule_id = run.claim.schedule_id
        state = self._store.triggers.fire_state(tx, schedule_id)
        if state is None or not state[0] or state[1] != self._runner_id:
            # Disabled (or re-leased) while the poll ran: the fire is discarded and the
            # cursor stays where it was, so nothing the poll saw is skipped for good.
            why = "disabled" if state is None or not state[0] else "claimed by another runner"
            ended = self._store.triggers.end_polls(
                tx, [(schedule_id, PollEnd(False))], self._runner_id, self._max_errors
            )
            message = f"fire discarded: the trigger was {why} while its poll ran"
            self._store.triggers.insert_evaluations(
                tx, self._runner_id, [_evaluation(run, EvaluationOutcome.SKIPPED, message)]
            )
            self._prune(tx, [name])
            log.info("trigger %r %s", name, message, extra={"trigger_name": name})
            return _recorded(run, ended.get(schedule_id)), None
        fire = self._starter.start(
            tx,
            schedule_id,
            name,
            run.claim.allow_concurrent,
            shape,
            prepared,
            now,
            policy=run.claim.on_failed_run,
            roots=roots,
            reserved=reserved,
        )
        # The row is locked with this runner's lease: ending the poll leaves it enabled,
        # with no errors and its next poll where it is, so there is nothing to read back.
        self._store.triggers.end_fired_poll(
            tx, schedule_id, self._runner_id, cursor is not None, cursor
        )
        outcome, note = fire_outcome(fire)
        self._store.triggers.insert_evaluations(
            tx, self._runner_id, [_evaluation(run, outcome, note, fire.execution_ids)]
        )
        self._prune(tx, [name])
        fired = bool(fire.execution_ids)
        return _recorded(run, (True, 0, state[2]), fired=fired), fire

    # -- manual fire ------------------------------------------------------------------------

    def fire_manual(
        self, schedule: TriggerScheduleRecord, context: Context | None, now: datetime
    ) -> FireResult:
        """Fire ``schedule``'s workflow with ``context`` now, through dedup, with an
        evaluation recorded (``scheduled_at`` empty, message "manual fire"). The failed-run
        policy does not apply: a manual fire is how an operator releases a held context."""
        shape = self._shape(schedule.workflow_name)
        started = time.perf_counter()
        try:
            prepared = prepare(shape, [context], schedule.trigger_name, now, self._max_bytes)
        except (ContextLimitError, ParamsError) as exc:
            # Refused, but on the record: the evaluation log shows what was asked and why.
            self._record_manual_error(schedule, f"manual fire: {exc}", started, now)
            raise

        def fire_tx(tx: Tx) -> FireResult:
            fire = self._starter.start(
                tx,
                schedule.id,
                schedule.trigger_name,
                schedule.allow_concurrent,
                shape,
                prepared,
                now,
            )
            outcome, message = fire_outcome(fire)
            message = f"manual fire: {message}" if message else "manual fire"
            self._record_manual(tx, schedule, started, now, outcome, message, fire.execution_ids)
            return fire

        fire = self._store.write_retrying(fire_tx, "recording a manual trigger fire")
        _log_fire(schedule.trigger_name, fire)
        if fire.execution_ids:
            self._slots.roots_left_ready()
        return fire

    def _record_manual_error(
        self, schedule: TriggerScheduleRecord, message: str, started: float, now: datetime
    ) -> None:
        self._store.write_retrying(
            lambda tx: self._record_manual(
                tx, schedule, started, now, EvaluationOutcome.ERROR, message, ()
            ),
            "recording a failed manual trigger fire",
        )

    def _record_manual(
        self,
        tx: Tx,
        schedule: TriggerScheduleRecord,
        started: float,
        now: datetime,
        outcome: EvaluationOutcome,
        message: str,
        execution_ids: Sequence[str],
    ) -> None:
        """The evaluation row of a manual fire (``fire_trigger``), inside ``tx``."""
        self._store.triggers.insert_evaluations(
            tx,
            self._runner_id,
            [
                NewEvaluation(
                    trigger_name=schedule.trigger_name,
                    scheduled_at=None,
                    evaluated_at=now,
                    duration_ms=(time.perf_counter() - started) * 1000,
                    outcome=outcome,
                    message=message,
                    execution_ids=tuple(execution_ids),
                )
            ],
        )
        self._prune(tx, [schedule.trigger_name])
        log.warning(
            "trigger %r %s",
            schedule.trigger_name,
            message,
            extra={"trigger_name": schedule.trigger_name},
        )

    # -- shared -----------------------------------------------------------------------------

    @property
    def _max_errors(self) -> int:
        return self._config.trigger_max_consecutive_errors

    @property
    def _max_bytes(self) -> int:
        return self._config.max_context_bytes

    def _prune(self, tx: Tx, names: Sequence[str]) -> None:
        # Pruning per insert would cost an index scan per poll; pruning every tenth of the
        # retention keeps the table within ~110 % of it (and the first write of a trigger
        # in this process trims what earlier runs left).
        keep = self._config.trigger_evaluation_retention
        step = max(1, keep // 10)
        due: list[str] = []
        with self._prune_lock:
            for name in names:
                count = self._since_prune.get(name)
                if count is None or count + 1 >= step:
                    self._since_prune[name] = 0
                    due.append(name)
                else:
                    self._since_prune[name] = count + 1
        self._store.triggers.prune_evaluations_of(tx, due, keep)


def _evaluation(
    run: PollRun,
    outcome: EvaluationOutcome,
    message: str | None,
    execution_ids: tuple[str, ...] = (),
) -> NewEvaluation:
    return NewEvaluation(
        trigger_name=run.name,
        scheduled_at=run.due,
        evaluated_at=run.started_at or run.claimed_at,
        duration_ms=run.duration_ms,
        outcome=outcome,
        message=message,
        execution_ids=execution_ids,
    )


def _recorded(
    run: PollRun, state: tuple[bool, int, datetime] | None, fired: bool = False
) -> Recorded:
    if state is None:
        return Recorded(run, None, None, fired)
    return Recorded(run, state[0], state[2], fired)


def _log_fire(name: str, fire: FireResult) -> None:
    if fire.execution_ids:
        log.info(
            "trigger %r fired %s",
            name,
            ", ".join(fire.execution_ids),
            extra={"trigger_name": name, "execution_ids": list(fire.execution_ids)},
        )
    if fire.holders:
        log.info(
            "trigger %r deduplicated: still active %s",
            name,
            ", ".join(str(h) for h in fire.holders),
            extra={"trigger_name": name},
        )
    for refused in fire.suppressed:
        log.info(
            "trigger %r %s: %s",
            name,
            refused.outcome,
            refused.message,
            extra={"trigger_name": name},
        )
