"""Recording an attempt's outcome, and what happens when the database will not take it.

An outcome is recorded in ONE transaction with what it unblocks (``planner.advance``),
through :meth:`Store.write_retrying`: a transient failure (lost connection, lock held too
long) retries the whole transaction with backoff. If it still fails, the outcome is NOT
dropped (the task execution would stay Running under a live runner forever, and no peer
takes over the claims of a runner whose heartbeat is fresh). Instead:

* after a *transient* failure the outcome waits in :class:`Unrecorded` and the executor
  tries it again on later loop rounds until the database takes it. The body ran once and
  its result is kept; the claim stays with this runner (so no one else runs the body)
  while its heartbeat proves it alive. If this runner dies meanwhile, its heartbeat goes
  stale and peers re-queue the claim as for any crash.
* after a *permanent* failure (an error retrying cannot fix) the outcome is replaced by a
  release of the claim (:func:`release_of`): the task execution becomes Ready again when
  it has attempts left (so the body runs at most ``max_attempts`` times in all), else
  Failed with the reason. The release itself is retried like any outcome.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from cloaca.engine.planner import advance, ending
from cloaca.engine.shape import Shape
from cloaca.store.core import Store
from cloaca.store.db import Later, TransientStoreError, Tx
from cloaca.store.executions import handed_on
from cloaca.store.records import (
    AttemptOutcome,
    ClaimedTask,
    ExecutionStatus,
    FinalOutcome,
    FinishedTask,
    NewAttempt,
    TaskStatus,
)
from cloaca.store.retry import DEFAULT_BACKOFF, Backoff
from cloaca.workflows.retry import RetryPolicy, is_transient_message

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to, ready to be written."""

    claimed: ClaimedTask
    shape: Shape | None
    status: TaskStatus
    now: datetime
    output: str | None = None
    error: str | None = None
    retry_at: datetime | None = None
    #: The formatted exception of a failed attempt (or where a timed-out one was).
    traceback: str | None = None
    timed_out: bool = False

    def history_entry(self) -> NewAttempt | None:
        """The attempt-history row this outcome adds, if any: none for a first attempt
        that completed (the task execution row tells all of it), so the common case
        writes nothing more."""
        claimed = self.claimed
        if self.error is None and claimed.attempt <= 1:
            return None
        if self.error is None:
            kind = AttemptOutcome.COMPLETED
        else:
            kind = AttemptOutcome.TIMED_OUT if self.timed_out else AttemptOutcome.FAILED
        return NewAttempt(claimed, kind, self.now, self.error, self.traceback)


@dataclass(frozen=True, slots=True)
class Written:
    """What recording an outcome did: ``owned`` is False when the claim had been lost
    (timed out, taken over, cancelled); ``ended`` is the execution's final status if this
    outcome ended it; ``retry_at`` when a retry was scheduled; ``may_ready`` when it can
    have made work Ready (dependants planned, or a retry due at once)."""

    owned: bool
    ended: ExecutionStatus | None
    retry_at: datetime | None
    may_ready: bool = False
    #: The ``task_finish_counting`` statement sent with the COMMIT (``finish_*_later``):
    #: whether the runner owned the attempt, and so what it did, is known once the
    #: transaction committed (:meth:`settled`).
    pending: Later | None = None
    #: How the execution ends if the pending statement counted its last task.
    ends: ExecutionStatus | None = None
    #: The pending statement counted the execution's last task but did not end it: the
    #: writer ends it in a transaction of its own (``planner.end_counted``).
    unended: bool = False
    #: The attempt whose pending statement claims its dependants for this runner: its slot
    #: is handed on to them (see ``write_all``'s ``hand_on``).
    hands_on: ClaimedTask | None = None
    #: What the committed statement claimed that way (they run in the slot handed on).
    claimed: tuple[ClaimedTask, ...] = ()

    def settled(self) -> Written:
        """This record as its committed transaction found it."""
        if self.pending is None:
            return self
        rows = self.pending.rows
        head = next(r for r in rows if r.get("task_id") is None)
        owned = bool(head["owned"])
        ended = None
        unended = False
        if owned and head["status"] is not None:
            active = not ExecutionStatus(head["status"]).is_terminal
            if active and int(head["remaining_tasks"]) <= 0:
                ended = self.ends
                unended = ended is None
        claimed = () if self.hands_on is None else tuple(handed_on(rows, self.hands_on))
        may_ready = owned and self.may_ready
        return Written(owned, ended, None, may_ready, unended=unended, claimed=claimed)


def write_all(
    store: Store,
    tx: Tx,
    runner_id: str,
    batch: list[Outcome],
    hand_on: Sequence[bool] = (),
) -> list[Written]:
    """Record every outcome of ``batch`` inside ``tx`` (safe to run again after a
    rollback): their attempt-history rows in one statement, the final outcomes with their
    executions' counts in one round trip (:meth:`ExecutionQueries.finish_tasks`), then the
    planning step of each, in the batch's order.

    ``hand_on[i]``: the slot of ``batch[i]``'s attempt may go to what it makes Ready. A
    Completed task whose one dependant waits for it alone (a chain's next task) then
    claims that dependant in the statement that records it, where the dialect sends it
    with the COMMIT: the next task needs no claim of its own, and nobody is told of Ready
    work (there is none). Its :attr:`Written.hands_on` is set until the COMMIT settles it.

    Planning after all of the batch's outcomes are counted decides what planning after
    each would: a count reaches zero only once every task of the execution is final, so
    the outcome whose count ended it is the one that ends it, and no earlier outcome of
    the batch still has anything to plan then."""
    entries = [o.history_entry() for o in batch]
    store.tasks.record_attempts(tx, runner_id, [e for e in entries if e is not None])
    statuses = [_final_status(store, tx, o) for o in batch]
    sent: dict[int, Written] = {}  # recorded by statements that go with the COMMIT
    finals: dict[int, FinalOutcome] = {}  # counted now, then planned
    for i, o in enumerate(batch):
        status = statuses[i][0]
        if not status.is_terminal or o.shape is None:
            continue
        final = FinalOutcome(o.claimed, status, o.now, o.output, o.error, o.traceback)
        hands_on = i < len(hand_on) and hand_on[i]
        written = _sent_with_commit(store, tx, runner_id, o.shape, final, hands_on)
        if written is not None:
            sent[i] = written
        else:
            finals[i] = final
    counted = dict(
        zip(finals, store.executions.finish_tasks(tx, runner_id, [*finals.values()]), strict=True)
    )
    # Task statuses each execution's planning steps read or decided in this transaction:
    # nothing else changes them meanwhile (the steps hold the execution's lock).
    known: dict[str, dict[str, TaskStatus]] = {}
    return [
        sent.get(i) or _write_one(store, tx, runner_id, o, *statuses[i], counted.get(i), known)
        for i, o in enumerate(batch)
    ]


def next_status(
    attempt: int,
    policy: RetryPolicy | None,
    error: str | None,
    *,
    timed_out: bool,
    final: bool,
    now: datetime,
) -> tuple[TaskStatus, datetime | None]:
    """What the end of attempt number ``attempt`` makes of its task execution: Completed
    (no ``error``), Ready again with the retry time ``policy`` allows, or Failed (no
    policy, none left, or ``final``: an error retrying cannot fix)."""
    if error is None:
        return TaskStatus.COMPLETED, None
    transient = timed_out or is_transient_message(error)
    if not final and policy and policy.should_retry(attempt, error, timed_out=transient):
        return TaskStatus.READY, now + timedelta(seconds=policy.calculate_delay(attempt))
    return TaskStatus.FAILED, None


def write(store: Store, tx: Tx, runner_id: str, outcome: Outcome) -> Written:
    """Record one ``outcome`` inside ``tx`` (see :func:`write_all`)."""
    return write_all(store, tx, runner_id, [outcome])[0]


def _sent_with_commit(
    store: Store, tx: Tx, runner_id: str, shape: Shape, final: FinalOutcome, hand_on: bool
) -> Written | None:
    """Record a final outcome whose planning step needs nothing read first, in statements
    sent with the COMMIT where the dialect allows (PostgreSQL): a Completed task that alone
    decides its dependants (a chain's next task), the only task of its execution (whose
    end is then known from its own outcome and the execution's input), or one of several
    tasks nothing depends on. None otherwise."""
    if not store.executions.finishes_with_commit:
        return None
    task_id = final.claimed.task_id
    if final.status is TaskStatus.COMPLETED:
        dependants = _decided_by(store, shape, final.claimed)
        if dependants:
            claim = hand_on and len(dependants) == 1
            later = store.executions.finish_counting_later(
                tx, runner_id, final, dependants, claim=claim
            )
            hands_on = final.claimed if claim else None
            return Written(True, None, None, not claim, later, hands_on=hands_on)
    if shape.dependents.get(task_id):
        return None
    ends = _known_ending(store, shape, final)
    if ends is not None:
        later = store.executions.finish_last_later(tx, runner_id, final, ends)
        return Written(True, None, None, False, later, ends[0])
    if shape.sinks < 2:
        return None
    # One of several tasks nothing depends on (a wide execution's): most such outcomes
    # leave others unfinished, so the count is not read before the COMMIT; the one that
    # finds it reached zero ends the execution in a transaction of its own.
    later = store.executions.finish_counting_later(tx, runner_id, final)
    return Written(True, None, None, False, later)


def _decided_by(store: Store, shape: Shape, claimed: ClaimedTask) -> tuple[str, ...] | None:
    """The dependants the completion of ``claimed``'s task makes Ready with nothing read:
    those that wait for it alone (``Shape.ready_after``), or, under the default rule, whose
    every other dependency this process recorded Completed (a fan-in's join when its
    branches ran here: a Completed task never changes again). None if any must be
    planned by reading the statuses."""
    task_id = claimed.task_id
    alone = shape.ready_after(task_id)
    if alone is not None:
        return alone
    dependants = shape.dependents.get(task_id)
    if not dependants:
        return None
    for dependant in dependants:
        if shape.rules.get(dependant) is not None:
            return None
        others = [d for d in shape.deps[dependant] if d != task_id]
        if store.executions.completed_outputs(claimed.execution_id, others) is None:
            return None
    return dependants


def _known_ending(
    store: Store, shape: Shape, final: FinalOutcome
) -> tuple[ExecutionStatus, str, str | None] | None:
    """How the execution ends after ``final`` when nothing needs reading to tell: it is the
    execution's only task, or this process recorded every other one Completed (a chain's
    last task, run here after the others); None otherwise."""
    task_id, execution_id = final.claimed.task_id, final.claimed.execution_id
    context = store.executions.known_context(execution_id)
    if context is None:
        return None
    results = {task_id: (final.status, final.output_json, final.error)}
    if len(shape.order) > 1:
        others = store.executions.known_outputs(execution_id, task_id, len(shape.order))
        if others is None:
            return None
        for other, output in others.items():
            results[other] = (TaskStatus.COMPLETED, output, None)
    return ending(shape, (context, results))


def _final_status(store: Store, tx: Tx, outcome: Outcome) -> tuple[TaskStatus, datetime | None]:
    """The status (and retry time) to record: a retry becomes a failure once the execution
    has ended (cancelled, timed out) meanwhile."""
    if outcome.status is TaskStatus.READY:
        state = store.executions.status(tx, outcome.claimed.execution_id)
        if state is None or state.is_terminal:
            return TaskStatus.FAILED, None
    return outcome.status, outcome.retry_at


def _write_one(
    store: Store,
    tx: Tx,
    runner_id: str,
    outcome: Outcome,
    status: TaskStatus,
    retry_at: datetime | None,
    counted: FinishedTask | None,
    known: dict[str, dict[str, TaskStatus]],
) -> Written:
    """Plan after a final outcome that ``counted`` recorded, or record any other one."""
    claimed, shape = outcome.claimed, outcome.shape
    ended = None
    if counted is not None and shape is not None:
        owned = counted.owned
        if owned:
            ended = advance(
                store,
                tx,
                shape,
                claimed.execution_id,
                claimed.task_id,
                status,
                outcome.now,
                counted,
                known.setdefault(claimed.execution_id, {}),
            )
    else:
        owned = store.tasks.finish_attempt(
            tx,
            claimed,
            runner_id,
            status=status,
            now=outcome.now,
            output_json=outcome.output,
            error=outcome.error,
            traceback=outcome.traceback,
            retry_at=retry_at,
        )
    may_ready = owned and (
        (retry_at is not None and retry_at <= outcome.now)
        or (
            status.is_terminal and shape is not None and bool(shape.dependents.get(claimed.task_id))
        )
    )
    return Written(owned, ended, retry_at, may_ready)


def release_of(outcome: Outcome, exc: BaseException) -> Outcome:
    """The outcome to record instead of one that can never be recorded: the claim is
    released for another attempt if one is left, else the attempt fails with the reason."""
    claimed = outcome.claimed
    reason = f"the outcome of attempt {claimed.attempt} could not be recorded: {exc}"
    released = replace(outcome, output=None, error=reason, traceback=None, timed_out=False)
    if claimed.attempt < claimed.max_attempts:
        return replace(released, status=TaskStatus.READY, retry_at=outcome.now)
    return replace(released, status=TaskStatus.FAILED, retry_at=None)


@dataclass(slots=True)
class _Waiting:
    outcome: Outcome
    failures: int = 1
    next_try: datetime | None = None  # None: at the next round


@dataclass
class Unrecorded:
    """Outcomes the database did not take yet; the executor offers them again each round."""

    store: Store
    runner_id: str
    backoff: Backoff = DEFAULT_BACKOFF
    _waiting: list[_Waiting] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome, exc: BaseException) -> None:
        """Keep an outcome whose recording failed with ``exc`` (a permanent failure turns
        it into a release of the claim first)."""
        if not isinstance(exc, TransientStoreError):
            outcome = release_of(outcome, exc)
        log.error(
            "task outcome kept for a later try: %s",
            exc,
            extra={"task_execution": outcome.claimed.id, "status": str(outcome.status)},
        )
        with self._lock:
            self._waiting.append(_Waiting(outcome))

    def salvage(self, batch: list[Outcome], exc: BaseException) -> list[Written | None]:
        """A batch's transaction failed for good with ``exc``: keep every outcome for a later
        try when the database is unreachable, else write them one by one to isolate the one
        it refuses (which is kept). Returns what was written, None where kept."""
        if len(batch) == 1 or isinstance(exc, TransientStoreError):
            log.error("recording task outcomes failed", exc_info=exc, extra={"count": len(batch)})
            for outcome in batch:
                self.add(outcome, exc)
            return [None] * len(batch)
        results: list[Written | None] = []
        for outcome in batch:
            try:
                results.append(
                    self.store.write_retrying(
                        lambda tx, o=outcome: write(self.store, tx, self.runner_id, o),  # type: ignore[misc]
                        "recording task outcome",
                    )
                )
            except Exception as one_exc:
                log.exception(
                    "recording task outcome failed", extra={"task_execution": outcome.claimed.id}
                )
                self.add(outcome, one_exc)
                results.append(None)
        return results

    def __len__(self) -> int:
        with self._lock:
            return len(self._waiting)

    def retry_due(
        self, now: datetime, *, all_of_them: bool = False
    ) -> tuple[list[tuple[Outcome, Written]], datetime | None]:
        """Try each waiting outcome that is due (or every one) once, without a backoff
        pause here: the loop comes back at the returned ``next_due``. Returns what was
        recorded and when the next try is due."""
        with self._lock:
            if not self._waiting:
                return [], None
            due = [
                w for w in self._waiting if all_of_them or w.next_try is None or w.next_try <= now
            ]
        written: list[tuple[Outcome, Written]] = []
        for waiting in due:
            try:
                with self.store.write() as tx:
                    recorded = write(self.store, tx, self.runner_id, waiting.outcome)
                result = recorded.settled()
            except Exception as exc:
                if not isinstance(exc, TransientStoreError):
                    waiting.outcome = release_of(waiting.outcome, exc)
                delay = self.backoff.delay(waiting.failures)
                waiting.failures += 1
                waiting.next_try = now + timedelta(seconds=delay)
                log.warning(
                    "recording a kept task outcome failed again: %s",
                    exc,
                    extra={"task_execution": waiting.outcome.claimed.id, "tries": waiting.failures},
                )
                continue
            log.warning(
                "kept task outcome recorded",
                extra={"task_execution": waiting.outcome.claimed.id, "owned": result.owned},
            )
            written.append((waiting.outcome, result))
            with self._lock:
                self._waiting.remove(waiting)
        with self._lock:
            nexts = [w.next_try or now for w in self._waiting]
        return written, min(nexts) if nexts else None


class GroupCommit(Generic[T]):
    """Group commit: whichever thread adds an item while no write is under way writes every
    item waiting at that moment, in one batch (one transaction); items added meanwhile go
    in its next batch. One thread writes at a time."""

    def __init__(self, write: Callable[[list[T]], None]) -> None:
        self._write = write
        self._pending: list[T] = []
        self._lock = threading.Lock()
        self._writing = False

    def add(self, item: T) -> None:
        """Queue ``item`` and, unless another thread is writing, write until none waits."""
        with self._lock:
            self._pending.append(item)
        while True:
            with self._lock:
                if self._writing or not self._pending:
                    return
                batch, self._pending = self._pending, []
                self._writing = True
            try:
                self._write(batch)
            finally:
                with self._lock:
                    self._writing = False
