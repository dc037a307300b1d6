"""Planning: NotStarted -> Ready / Skipped, and finishing executions.

``decide`` is a pure decision over task statuses (input contexts are ``inputs.py``'s).
``create`` and ``advance`` apply it inside the caller's transaction, so a task's outcome,
the readiness of its dependants and the end of the execution commit together. Planning is
incremental: a finished task only re-examines its dependants, and a per-execution counter
of unfinished tasks says when the execution is done, so wide workflows cost O(1) per task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from cloaca.engine.inputs import load_input
from cloaca.engine.shape import Shape
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.records import ExecutionStatus, FinishedTask, FinishInputs, NewTask, TaskStatus
from cloaca.workflows import dag, rules

UPSTREAM_FAILED = "upstream failed"
RULE_NOT_MET = "trigger rule not satisfied"


class CreateExecution(Protocol):
    """Insert an execution of a shape with an input context JSON at ``now`` inside the
    caller's transaction and return its id (the runner's ``Executions.create``; cron and
    trigger fires hand off through it): ``running`` when the caller claims Ready roots in
    the same transaction, ``notify_ready`` when other runners should hear of Ready ones."""

    def __call__(
        self,
        tx: Tx,
        shape: Shape,
        context_text: str,
        now: datetime,
        *,
        notify_ready: bool = True,
        running: bool = False,
    ) -> str: ...


def _uses_context(rule: Mapping[str, Any]) -> bool:
    if rule.get("type") == "ContextValue":
        return True
    return any(_uses_context(c) for c in rule.get("conditions", ()) if isinstance(c, Mapping))


def decide(
    shape: Shape,
    task_id: str,
    statuses: Mapping[str, TaskStatus],
    context_for: Callable[[str], Mapping[str, Any]],
) -> tuple[TaskStatus, str | None] | None:
    """What a NotStarted task becomes now: ``(Ready, None)``, ``(Skipped, reason)``, or
    ``None`` while some dependency is unfinished. ``statuses`` must cover its dependencies."""
    dep_states = [statuses[d] for d in shape.deps[task_id]]
    if not all(s.is_terminal for s in dep_states):
        return None
    rule = shape.rules.get(task_id)
    if rule is None:
        # A default-rule dependency is only ever Skipped because its own upstream failed,
        # so the skip travels down the chain instead of running tasks whose inputs are gone.
        if TaskStatus.FAILED in dep_states or any(
            s is TaskStatus.SKIPPED and shape.rules.get(d) is None
            for d, s in zip(shape.deps[task_id], dep_states, strict=True)
        ):
            return TaskStatus.SKIPPED, UPSTREAM_FAILED
        return TaskStatus.READY, None
    ctx = context_for(task_id) if _uses_context(rule) else {}
    named = {k: str(v) for k, v in statuses.items()}
    if rules.evaluate_rule(rule, named, ctx):
        return TaskStatus.READY, None
    return TaskStatus.SKIPPED, RULE_NOT_MET


def _cascade(
    shape: Shape,
    candidates: Iterable[str],
    statuses: dict[str, TaskStatus],
    load: Callable[[set[str]], None],
    context_for: Callable[[str], Mapping[str, Any]],
) -> list[tuple[str, TaskStatus, str | None]]:
    """Decide ``candidates``; a Skipped one makes its dependants candidates in turn."""
    decisions: list[tuple[str, TaskStatus, str | None]] = []
    pending = shape.in_order(candidates)
    while pending:
        wanted = {
            t for tid in pending for t in (tid, *shape.deps[tid], *shape.rule_tasks.get(tid, ()))
        } - statuses.keys()
        if wanted:
            load(wanted)
        following: list[str] = []
        for tid in pending:
            if statuses.get(tid) is not TaskStatus.NOT_STARTED:
                continue
            decision = decide(shape, tid, statuses, context_for)
            if decision is None:
                continue
            statuses[tid] = decision[0]
            decisions.append((tid, *decision))
            if decision[0] is TaskStatus.SKIPPED:
                following.extend(shape.dependents.get(tid, ()))
        pending = shape.in_order(following)
    return decisions


def create(
    store: Store,
    tx: Tx,
    shape: Shape,
    execution_id: str,
    context_text: str,
    now: datetime,
    *,
    notify_ready: bool = True,
    running: bool = False,
) -> ExecutionStatus | None:
    """Insert an execution with its roots already planned (Ready or Skipped), in ``tx``
    (``notify_ready=False``: the caller claims every Ready root in ``tx`` itself).

    Returns the terminal status when nothing at all can run (every task skipped)."""
    statuses = {tid: TaskStatus.NOT_STARTED for tid in shape.order}
    input_ctx: dict[str, Any] | None = None

    def context_for(tid: str) -> Mapping[str, Any]:
        nonlocal input_ctx
        if input_ctx is None:
            input_ctx = json.loads(context_text)
        return input_ctx  # only roots are decided here; skipped roots pass the input on

    roots = [tid for tid in shape.order if not shape.deps[tid]]
    decisions = {
        tid: (st, why)
        for tid, st, why in _cascade(shape, roots, statuses, lambda _: None, context_for)
    }
    tasks = [
        NewTask(
            tid, pos, shape.max_attempts[tid], *decisions.get(tid, (TaskStatus.NOT_STARTED, None))
        )
        for pos, tid in enumerate(shape.order)
    ]
    remaining = sum(1 for s in statuses.values() if not s.is_terminal)
    store.executions.insert(
        tx,
        execution_id=execution_id,
        workflow_name=shape.name,
        version=shape.version,
        context_json=context_text,
        tasks=tasks,
        remaining=remaining,
        now=now,
        notify_ready=notify_ready,
        running=running,
    )
    if remaining == 0:
        return _finish(store, tx, shape, execution_id, now)
    return None


def advance(
    store: Store,
    tx: Tx,
    shape: Shape,
    execution_id: str,
    finished_task: str,
    finished_status: TaskStatus,
    now: datetime,
    counted: FinishedTask | None = None,
    known: dict[str, TaskStatus] | None = None,
) -> ExecutionStatus | None:
    """``finished_task`` just became ``finished_status`` (Completed or Failed): plan its
    dependants and end the execution when no task is left unfinished. Returns the terminal
    status if it ended. ``counted``: the execution was locked and the task counted already,
    with the outcome (``ExecutionQueries.finish_tasks``). ``known``: statuses of this
    execution's tasks already read (or decided) in this transaction, shared by the planning
    steps of one batch: siblings finishing together read their join's dependencies once."""
    inputs: FinishInputs | None = None
    if counted is None:
        locked = store.executions.lock_counting_finished(tx, execution_id, 1)
        if locked is None or locked[0].is_terminal:
            return None
        remaining = locked[1]
    else:
        if counted.execution is None or counted.execution.is_terminal:
            return None
        remaining, inputs = counted.remaining, counted.inputs
    # Known without a read: the finished task's status, and that a dependant whose only
    # dependency it is still waits (nothing else could have decided it). A chain's next
    # task is then planned with no read at all.
    statuses = known if known is not None else {}
    statuses[finished_task] = finished_status
    for dependant in shape.dependents.get(finished_task, ()):
        if shape.deps[dependant] == (finished_task,):
            statuses[dependant] = TaskStatus.NOT_STARTED

    def load(task_ids: set[str]) -> None:
        statuses.update(store.tasks.statuses(tx, execution_id, task_ids))

    def context_for(tid: str) -> Mapping[str, Any]:
        return load_input(store, tx, shape, execution_id, tid)

    decisions = _cascade(
        shape, shape.dependents.get(finished_task, ()), statuses, load, context_for
    )
    for tid, status, reason in decisions:
        store.tasks.set_status(tx, execution_id, tid, status, now, reason)
    skipped = sum(1 for _, status, _ in decisions if status is TaskStatus.SKIPPED)
    if skipped:
        remaining = store.executions.count_finished(tx, execution_id, skipped)
    if remaining > 0:
        return None
    # What was read with the count is stale once this step changed a task.
    return _finish(store, tx, shape, execution_id, now, None if decisions else inputs)


def end_counted(
    store: Store, tx: Tx, shape: Shape, execution_id: str, now: datetime
) -> ExecutionStatus | None:
    """End an execution whose last task was counted by a transaction that could not end
    it (it did not read the count before its COMMIT): under the execution's lock, if it
    is still active with no task unfinished. Returns the status it ended with."""
    locked = store.executions.lock_counting_finished(tx, execution_id, 0)
    if locked is None or locked[0].is_terminal or locked[1] > 0:
        return None
    return _finish(store, tx, shape, execution_id, now)


def repair(
    store: Store, tx: Tx, shape: Shape, execution_id: str, now: datetime
) -> tuple[bool, ExecutionStatus | None]:
    """Last resort for an active execution that nothing moves on (no task Ready or Running):
    plan every NotStarted task whose dependencies are all finished, recount the unfinished
    tasks, and end the execution when none is left. Returns ``(changed, ended_status)``;
    an execution that is terminal, or has work Ready or Running, is left alone."""
    state = store.executions.lock(tx, execution_id)
    if state is None or state.is_terminal:
        return False, None
    statuses = store.tasks.statuses(tx, execution_id)
    if any(s in (TaskStatus.READY, TaskStatus.RUNNING) for s in statuses.values()):
        return False, None  # it moves on by itself

    def load(task_ids: set[str]) -> None:
        statuses.update(store.tasks.statuses(tx, execution_id, task_ids))

    def context_for(tid: str) -> Mapping[str, Any]:
        return load_input(store, tx, shape, execution_id, tid, statuses)

    waiting = [t for t in shape.order if statuses.get(t) is TaskStatus.NOT_STARTED]
    decisions = _cascade(shape, waiting, statuses, load, context_for)
    for tid, status, reason in decisions:
        store.tasks.set_status(tx, execution_id, tid, status, now, reason)
    if store.executions.recount_remaining(tx, execution_id) > 0:
        return bool(decisions), None
    return True, _finish(store, tx, shape, execution_id, now)


def _finish(
    store: Store,
    tx: Tx,
    shape: Shape,
    execution_id: str,
    now: datetime,
    inputs: FinishInputs | None = None,
) -> ExecutionStatus:
    outcome, final_context, first_error = ending(
        shape, inputs or store.executions.finish_inputs(tx, execution_id)
    )
    # Every caller locked the execution (or created it in ``tx``) and saw it active.
    store.executions.finish(tx, execution_id, outcome, now, final_context, first_error, active=True)
    return outcome


def ending(shape: Shape, inputs: FinishInputs) -> tuple[ExecutionStatus, str, str | None]:
    """How an execution whose tasks are all final ends: its status, its final context
    JSON (the input and every Completed output merged, in task order) and its error (the
    first Failed task's)."""
    context, results = inputs
    parts = [json.loads(context)]
    first_error: str | None = None
    for tid in shape.order:
        status, output, task_error = results.get(tid, (None, None, None))
        if status is TaskStatus.COMPLETED and output:
            parts.append(json.loads(output))
        elif status is TaskStatus.FAILED and first_error is None:
            first_error = f"Task {tid!r} failed: {task_error}"
    # A task id recorded for this execution but unknown to ``shape`` cannot fail it silently.
    failed = first_error is not None or any(r[0] is TaskStatus.FAILED for r in results.values())
    outcome = ExecutionStatus.FAILED if failed else ExecutionStatus.COMPLETED
    return outcome, json.dumps(dag.merge_outputs(parts)), first_error


def terminate(
    store: Store,
    tx: Tx,
    execution_id: str,
    status: ExecutionStatus,
    now: datetime,
    error: str | None,
) -> bool:
    """End an execution early (cancel, timeout): skip what has not started, keep what ran."""
    current = store.executions.lock(tx, execution_id)
    if current is None or current.is_terminal:
        return False
    store.tasks.cancel_pending(tx, execution_id, now)
    return store.executions.finish(tx, execution_id, status, now, None, error)
