"""Executor: claim Ready task executions, run them, record each attempt's outcome.

A claim is a conditional UPDATE in the database; the outcome write is conditional on the
same (task execution, attempt, runner), so a late result of an attempt that timed out or
was taken over by another runner changes nothing. Recording an outcome and planning what it
unblocks happen in one transaction (``planner.advance``).

Commits are the latency budget, so work rides on transactions that happen anyway:

* outcomes are recorded by group commit: the worker thread that finishes first writes
  every outcome waiting at that moment in ONE transaction, and claims new work for the
  slots they free (and any idle ones) in the same transaction, with the claimed tasks'
  inputs. A chain costs one transaction per hop; a busy runner less than one per task.
* a claim reads its tasks' inputs in its own transaction, so a body starts without
  another round trip.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from cloaca.clock import Clock
from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context
from cloaca.engine import outcomes, planner
from cloaca.engine.aio import AsyncBridge
from cloaca.engine.attempts import Attempt, Body, Control, Done, run_callback
from cloaca.engine.drive import Drive
from cloaca.engine.failures import format_failure, log_failed_attempt, stack_of_thread
from cloaca.engine.inputs import committed_inputs
from cloaca.engine.outcomes import GroupCommit, Outcome, Unrecorded, next_status
from cloaca.engine.shape import Shape, ShapeCache
from cloaca.engine.slots import Slots
from cloaca.store.core import Store
from cloaca.store.db import Later, Tx
from cloaca.store.records import ClaimedTask, ExecutionStatus, TaskStatus
from cloaca.store.tasks import claimed_from
from cloaca.workflows.registry import get_workflow, registered_workflows

log = logging.getLogger(__name__)


#: A claimed task execution and its input (None: read it when the attempt starts).
Claim = tuple[ClaimedTask, dict[str, Any] | None]
#: (execution id, task id) -> output JSON of the tasks a transaction recorded Completed.
Outputs = dict[tuple[str, str], str | None]


def root_claims(later: Later, context_text: str) -> list[Claim]:
    """The roots a committed transaction that created their execution claimed, each with
    its input: the execution's input context."""
    return [(claimed, json.loads(context_text)) for claimed in claimed_from(later)]


class TaskSlots(Protocol):
    """The task slots of this process's engine, lent to a transaction that creates
    executions and claims their roots (a start's, a trigger fire's)."""

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` free slots (0 when this process must not claim now)."""
        ...

    def adopt(self, claimed: list[Claim], reserved: int) -> None:
        """Run what the committed transaction claimed; give back the unused slots."""

    def roots_left_ready(self) -> None:
        """The transaction left roots Ready (it claimed none or not all): claim them."""


class Executor:
    """Runs task executions of the workflows registered in this process."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        runner_id: str,
        config: DefaultRunnerConfig,
        aio: AsyncBridge,
        on_finished: Callable[[str, ExecutionStatus], None],
        wake: Callable[[], None],
        stopping: threading.Event,
        drive: Drive,
    ) -> None:
        self._store = store
        self._clock = clock
        self._runner_id = runner_id
        self._config = config
        self._aio = aio
        self._on_finished = on_finished
        self._wake = wake
        self._stopping = stopping
        #: Where attempts run (threads, or the rounds of an engine stepped by hand).
        self.drive = drive
        self._slots = Slots(config.max_concurrent_tasks)
        # True while the last claim took all it could: older Ready work may be waiting,
        # and a new execution must not jump the queue (see reserve).
        self._backlog = False
        self._outcomes = GroupCommit(self._write_batch)
        self._inflight: dict[tuple[int, int], Attempt] = {}
        self._dirty = True
        self._check_ended = False
        self._next_ready: datetime | None = None
        #: The Shape each execution is planned with (also lent to the services, recovery).
        self.shapes = ShapeCache(store)
        self._body = Body(
            store, config, aio, wake, self._finish, lambda attempt: Control(self, attempt)
        )
        # Outcomes the database refused even after retries, offered again each round.
        self.unrecorded = Unrecorded(store, runner_id)

    # -- the loop's view ----------------------------------------------------------------------

    def poke(self) -> None:
        """New work may be Ready (a local state change or another process's commit)."""
        self._dirty = True

    def has_free_slot(self) -> bool:
        """Whether a slot is free now (read after :meth:`poke`: an attempt that frees one
        later sees the poke when its transaction decides whether to claim)."""
        return self._slots.free > 0

    def external_change(self) -> None:
        """Another process committed: new work may be Ready, and an execution running here
        may have been cancelled (or timed out) over there."""
        self._dirty = True
        self._check_ended = True

    def _cancel_ended_elsewhere(self) -> None:
        running = {
            a.claimed.execution_id for a in list(self._inflight.values()) if a.future is not None
        }
        if not running:
            return
        for execution_id, status in self._store.executions.statuses(running).items():
            if status.is_terminal:
                self.cancel_attempts(execution_id)

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Claim and dispatch what fits in the free slots; returns (did_work, next_due)."""
        timeout_due = self._expire_timeouts()
        unrecorded_due = self._record_unrecorded(now)
        if self._check_ended:
            self._check_ended = False
            self._cancel_ended_elsewhere()
        claimed: list[Claim] = []
        due = self._dirty or (self._next_ready is not None and now >= self._next_ready)
        reserved = self._slots.reserve(self._config.max_concurrent_tasks) if due else 0
        if reserved:
            names = [wf.name for wf in registered_workflows()]
            self._dirty = False
            try:
                if names:
                    with self._store.write() as tx:
                        # A fresh reading, taken after _dirty was cleared: work another
                        # thread made Ready since this round began is not "in the future".
                        # The claimed rows come back with the COMMIT; their inputs after it.
                        later = self._store.tasks.claim_ready_later(
                            tx, self._runner_id, names, reserved, self._clock.now()
                        )
                    claimed = self._with_inputs(claimed_from(later), {})
                    self._backlog = len(claimed) == reserved
                    if len(claimed) < reserved:
                        self._next_ready = self._store.tasks.next_ready_at(names)
                    else:
                        self._dirty = True
            finally:
                self._slots.give_back(reserved - len(claimed))
            for claim in claimed:
                self._dispatch(*claim)
        resumed = self.drive.end_round()
        # With no free slot the next ready time is moot: a finishing attempt wakes the loop.
        ready_due = self._next_ready if self._slots.free > 0 else None
        dues = (ready_due, timeout_due, unrecorded_due)
        next_due = min((t for t in dues if t is not None), default=None)
        return bool(claimed) or resumed, next_due

    def shutdown(self, wait_seconds: float) -> None:
        """Wait (bounded) for in-flight attempts; then abandon the rest without recording
        them, so they stay claimed and another runner (or this one restarted) takes them over
        once this runner is gone. ``async def`` bodies still running are cancelled."""
        for never in self.drive.stop():  # handed over, not started: they stay claimed
            self._inflight.pop((never.claimed.id, never.claimed.attempt), None)
        deadline = time.monotonic() + wait_seconds
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.01)
        for attempt in list(self._inflight.values()):
            with attempt.lock:
                attempt.done = True  # whatever it does now is not recorded
            if attempt.future is not None:
                attempt.future.cancel()
        self.drive.shutdown()

    def cancel_attempts(self, execution_id: str) -> None:
        """The execution ended early: cancel its ``async def`` bodies running here (a plain
        ``def`` body cannot be interrupted; its result is recorded but plans nothing)."""
        for attempt in list(self._inflight.values()):
            if attempt.claimed.execution_id == execution_id:
                # Flagged under the attempt's lock: a body submitted a moment later (the
                # claim and the cancel can both come before the worker thread runs) sees it.
                with attempt.lock:
                    attempt.cancel_requested = True
                    future = attempt.future
                if future is not None:
                    future.cancel()

    # -- slots (also lent to TaskHandle) ---------------------------------------------------

    def release_slot(self) -> None:
        self._slots.give_back(1)
        self._dirty = True
        self._wake()

    def acquire_slot(self) -> None:
        self._slots.wait_for_one(self._stopping)

    # -- claims riding on other transactions ----------------------------------------------

    def reserve(self, wanted: int) -> int:
        """Reserve up to ``wanted`` free slots for a claim in a transaction opened elsewhere
        (a start). None while older Ready work may be waiting: claims take the oldest first,
        and a runner that is behind must finish executions before it begins new ones."""
        if not self.drive.runs_between_rounds or self._stopping.is_set() or self._backlog:
            return 0
        return self._slots.reserve(wanted)

    def adopt(self, claimed: list[Claim], reserved: int) -> None:
        """Run what a transaction opened elsewhere claimed (it committed) and give back the
        reserved slots it did not use."""
        self._slots.give_back(reserved - len(claimed))
        for claim in claimed:
            self._dispatch(*claim)

    # -- running one attempt ---------------------------------------------------------------

    def _dispatch(self, claimed: ClaimedTask, data: dict[str, Any] | None = None) -> None:
        """Hand a claimed task execution to the drive (its slot is already reserved)."""
        wf = get_workflow(claimed.workflow_name)
        spec = wf.tasks.get(claimed.task_id) if wf else None
        shape = self.shapes.for_version(claimed.workflow_name, claimed.workflow_version)
        attempt = Attempt(claimed, spec, shape, input=data)
        self._inflight[(claimed.id, claimed.attempt)] = attempt
        self.drive.run_attempt(self._body, attempt)

    def _expire_timeouts(self) -> datetime | None:
        now_mono = time.monotonic()
        earliest: float | None = None
        for attempt in list(self._inflight.values()):
            if attempt.deadline is None or attempt.done:
                continue
            if attempt.deadline <= now_mono:
                spec = attempt.spec
                timeout = (spec.timeout if spec else None) or self._config.task_timeout_seconds
                msg = f"Task {attempt.claimed.task_id!r} timed out after {timeout:g}s"
                stack = stack_of_thread(attempt.thread)
                self._finish(attempt, None, msg, timed_out=True, traceback=stack)
            elif earliest is None or attempt.deadline < earliest:
                earliest = attempt.deadline
        if earliest is None:
            return None
        return self._clock.now() + timedelta(seconds=earliest - now_mono)

    def _finish(
        self,
        attempt: Attempt,
        output: str | None,
        error: str | None,
        *,
        timed_out: bool,
        ctx: Context | None = None,
        final: bool = False,
        exc: BaseException | None = None,
        traceback: str | None = None,
    ) -> None:
        """Record how an attempt ended (once: a late second call changes nothing): the
        outcome with its error and traceback (``exc`` formatted, or ``traceback`` as given),
        the log line of a failure, then the task's callback."""
        with attempt.lock:
            if attempt.done:
                return
            attempt.done = True
        claimed, spec = attempt.claimed, attempt.spec
        now = self._clock.now()
        status, retry_at = next_status(
            claimed.attempt,
            spec.retry if spec else None,
            error,
            timed_out=timed_out,
            final=final,
            now=now,
        )
        if error is not None:
            if exc is not None:
                traceback = format_failure(exc)
            log_failed_attempt(claimed, error, status, retry_at, now, exc, traceback)
        result = Outcome(
            claimed,
            attempt.shape,
            status,
            now,
            output,
            error,
            retry_at,
            traceback=traceback if error is not None else None,
            timed_out=timed_out,
        )
        handle = attempt.handle
        holds_slot = handle is None or handle._slot_held
        if handle is not None:
            handle._end()
        try:
            self._outcomes.add(Done(attempt, result, holds_slot))
            if spec is not None:
                run_callback(spec, error, ctx, result.traceback)
        except BaseException:
            self._wake()  # whatever became of the outcome, the loop looks again
            raise

    def _write_batch(self, batch: list[Done]) -> None:
        """Record ``batch`` and, in the same transaction, claim work for the slots it frees
        (and any idle ones); then run what was claimed."""
        held = sum(1 for done in batch if done.holds_slot)
        names = [wf.name for wf in registered_workflows()]
        # When stopping, nothing new is claimed.
        claims = bool(names) and not self._stopping.is_set()
        now = self._clock.now()
        claims_made = False
        wanted = False  # a claim was due: something may be Ready
        # The idle slots are reserved only once a claim is due: held through the whole
        # transaction, they would turn away a start() in another thread meanwhile.
        extra = 0
        limit = 0
        # A finished attempt's slot may go straight to the next task of its chain, claimed
        # by the statement that records it (outcomes.write_all).
        hand_on = [claims and done.holds_slot for done in batch]

        def record(tx: Tx) -> tuple[list[outcomes.Written], Later | None]:
            nonlocal claims_made, wanted, extra, limit
            written = outcomes.write_all(
                self._store, tx, self._runner_id, [d.outcome for d in batch], hand_on
            )
            retry_due = self._next_ready is not None and now >= self._next_ready
            # Claim only when something may be Ready: an empty claim is a round trip.
            if claims and (self._dirty or retry_due or any(w.may_ready for w in written)):
                wanted = True
                if not claims_made:  # a rerun of the transaction keeps its reservation
                    extra = self._slots.reserve(self._config.max_concurrent_tasks)
                handed = sum(1 for w in written if w.hands_on is not None)
                limit = held - handed + extra
                if not limit:
                    return written, None
                claims_made = True
                self._dirty = False
                # Read the clock after clearing _dirty (see tick): a start committed just
                # before this claim has ready_at <= this reading, or set _dirty again.
                # The claimed rows come back with the COMMIT; their inputs after it.
                later = self._store.tasks.claim_ready_later(
                    tx, self._runner_id, names, limit, self._clock.now()
                )
                return written, later
            return written, None

        results: list[outcomes.Written | None]
        claimed: list[Claim] = []
        taken_count = 0  # what the claim took (not counting what outcomes claimed)
        failed = False
        try:
            # The whole transaction is retried on transient database errors; an outcome
            # the database still refuses is kept and offered again on later rounds (see
            # engine/outcomes.py): never dropped, so the task is never stranded Running.
            written, taken = self._store.write_retrying(record, "recording task outcomes")
            settled = [w.settled() for w in written]
            results = [*settled]
            # What this transaction recorded Completed is the input of what it claimed next
            # in a chain (no need to read it back), and tells how its execution ends once
            # the last task finishes here (see outcomes.write_all).
            outputs: Outputs = {}
            for done, w in zip(batch, settled, strict=True):
                outcome = done.outcome
                if w.owned and outcome.status is TaskStatus.COMPLETED:
                    task = (outcome.claimed.execution_id, outcome.claimed.task_id)
                    outputs[task] = outcome.output
                    self._store.executions.completed_here(*task, outcome.output)
            handed = [c for w in settled for c in w.claimed]
            fresh = claimed_from(taken) if taken is not None else []
            taken_count = len(fresh)
            if handed or fresh:
                claimed = self._with_inputs([*handed, *fresh], outputs)
        except Exception as exc:
            failed = True
            results = self.unrecorded.salvage([d.outcome for d in batch], exc)
        finally:
            for done in batch:
                key = (done.outcome.claimed.id, done.outcome.claimed.attempt)
                self._inflight.pop(key, None)
            self._slots.give_back(held + extra - len(claimed))
        if claims_made:
            self._backlog = taken_count == limit
        if failed or not claims or (wanted and taken_count == limit):
            self._dirty = True  # the loop claims (again): this round could not or did not finish
        for claim in claimed:
            self._dispatch(*claim)
        for done, result in zip(batch, results, strict=True):
            if result is not None:
                self._written(done.outcome, result)
        # The transaction claimed what the freed slots could take. The loop is needed only
        # for what it could not do: claim again, offer a kept outcome again, or learn when a
        # retry is due now that a slot is free (it ignores that time while none is).
        if failed or self._dirty or self._next_ready is not None:
            self._wake()

    def _with_inputs(self, claimed: list[ClaimedTask], outputs: Outputs) -> list[Claim]:
        """What a committed transaction claimed, with each task's input (see
        committed_inputs). Never raises: the claims are this runner's now and must be
        dispatched."""
        shapes: dict[tuple[str, str], Shape | None] = {}
        for c in claimed:
            key = (c.workflow_name, c.workflow_version)
            if key not in shapes:
                try:
                    shapes[key] = self.shapes.for_version(*key)
                except Exception:  # the attempt reads its input (and shape) itself
                    shapes[key] = None
        known = dict(outputs)
        for c in claimed:  # inputs recorded Completed here by earlier transactions
            shape = shapes.get((c.workflow_name, c.workflow_version))
            deps = shape.deps.get(c.task_id, ()) if shape is not None else ()
            missing = [d for d in deps if (c.execution_id, d) not in known]
            if missing:
                found = self._store.executions.completed_outputs(c.execution_id, missing)
                for d, output in (found or {}).items():
                    known[(c.execution_id, d)] = output
        data = committed_inputs(self._store, claimed, shapes, known)
        return list(zip(claimed, data, strict=True))

    def _written(self, outcome: Outcome, written: outcomes.Written) -> None:
        """An outcome reached the database: learn its retry time, end the execution its
        transaction counted out without ending it, report an ended execution."""
        retry_at = written.retry_at
        if retry_at is not None and (self._next_ready is None or retry_at < self._next_ready):
            self._next_ready = retry_at
        ended = written.ended
        if written.unended and outcome.shape is not None:
            ended = self._end_counted(outcome.claimed.execution_id, outcome.shape)
        if ended is not None:
            self._store.executions.ended_here(outcome.claimed.execution_id)
            self._on_finished(outcome.claimed.execution_id, ended)

    def _end_counted(self, execution_id: str, shape: Shape) -> ExecutionStatus | None:
        """End an execution whose last task a committed outcome counted (see
        ``planner.end_counted``). If the database refuses, the stalled-execution repair
        ends it later: every task is final, so nothing is lost."""
        now = self._clock.now()
        try:
            return self._store.write_retrying(
                lambda tx: planner.end_counted(self._store, tx, shape, execution_id, now),
                "ending an execution",
            )
        except Exception:
            log.warning(
                "ending an execution failed; the stalled-execution repair will end it",
                exc_info=True,
                extra={"execution_id": execution_id},
            )
            return None

    def _record_unrecorded(self, now: datetime) -> datetime | None:
        """Offer outcomes the database refused earlier once more; returns when to try next."""
        recorded, next_try = self.unrecorded.retry_due(now)
        for outcome, written in recorded:
            self._dirty = True  # it may have made dependants Ready
            self._written(outcome, written)
        return next_try
