"""Planning: NotStarted -> Ready / Skipped, input contexts, and finishing executions.

``decide`` and ``input_sources`` are pure decisions over task statuses. ``create`` and
``advance`` apply them inside the caller's transaction, so a task's outcome, the readiness of
its dependants and the end of the execution commit together. Planning is incremental: a
finished task only re-examines its dependants, and a per-execution counter of unfinished
tasks says when the execution is done, so wide workflows cost O(1) per task.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.records import ClaimedTask, ExecutionStatus, NewTask, TaskStatus
from cloaca.workflows import dag, rules
from cloaca.workflows.params import bind_params, merge_declarations

UPSTREAM_FAILED = "upstream failed"
RULE_NOT_MET = "trigger rule not satisfied"


@dataclass(frozen=True)
class Shape:
    """The structure of a workflow the planner needs (from a Workflow or a recorded definition)."""

    name: str
    version: str
    order: tuple[str, ...]
    deps: Mapping[str, tuple[str, ...]]
    rules: Mapping[str, dict[str, Any] | None]
    max_attempts: Mapping[str, int]
    dependents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    position: Mapping[str, int] = field(default_factory=dict)
    # Tasks each trigger rule names: their statuses must be loaded before deciding it.
    rule_tasks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Declared inputs (``@workflow_params``) and secret names, checked at every entry.
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> Shape:
        """Build from the JSON structure ``Workflow.definition()`` records."""
        tasks = definition["tasks"]
        deps = {t["id"]: tuple(t["dependencies"]) for t in tasks}
        order = tuple(dag.topological_order(deps))
        return cls(
            name=definition["name"],
            version=definition["version"],
            order=order,
            deps=deps,
            rules={t["id"]: t.get("trigger_rules") for t in tasks},
            max_attempts={t["id"]: int(t.get("max_attempts", 1)) for t in tasks},
            dependents={k: tuple(v) for k, v in dag.dependents(deps).items()},
            position={tid: i for i, tid in enumerate(order)},
            rule_tasks={
                t["id"]: tuple(sorted(rules.referenced_tasks(t["trigger_rules"])))
                for t in tasks
                if t.get("trigger_rules")
            },
            params=merge_declarations(
                definition["name"], ((t["id"], t.get("params", {})) for t in tasks)
            ),
            secrets=tuple(sorted({s for t in tasks for s in t.get("secrets", ())})),
        )

    def bind_params(self, context: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """The input context of a new execution: ``context`` with declared defaults filled
        in; :class:`~cloaca.errors.ParamsError` (a ValueError) listing every bad input."""
        return bind_params(self.name, self.params, self.secrets, context)

    def in_order(self, task_ids: Iterable[str]) -> list[str]:
        """``task_ids`` sorted topologically (duplicates dropped)."""
        return sorted(set(task_ids), key=self.position.__getitem__)


CreateExecution = Callable[[Tx, Shape, str, datetime], str]
"""Insert an execution of a shape with an input context JSON at ``now`` inside the caller's
transaction, and return its id (the runner's; cron and trigger fires hand off through it)."""


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


def input_sources(
    shape: Shape, task_id: str, statuses: Mapping[str, TaskStatus]
) -> tuple[bool, list[str]]:
    """Where a task's input comes from: ``(includes_execution_input, completed task ids)``.

    Roots read the execution's input. Otherwise each Completed dependency contributes its
    output; a Skipped dependency is looked through to its own sources (so data flows past
    skipped tasks); Failed ones contribute nothing. Ids come back in topological order.
    """
    include_input = not shape.deps[task_id]
    found: set[str] = set()
    seen: set[str] = set()
    stack = [task_id]
    while stack:
        for dep in shape.deps[stack.pop()]:
            if dep in seen:
                continue
            seen.add(dep)
            status = statuses.get(dep)
            if status is TaskStatus.COMPLETED:
                found.add(dep)
            elif status is TaskStatus.SKIPPED:
                if not shape.deps[dep]:
                    include_input = True  # a skipped root passes the execution input on
                stack.append(dep)
    return include_input, shape.in_order(found)


def load_input(
    store: Store,
    tx: Tx,
    shape: Shape,
    execution_id: str,
    task_id: str,
    statuses: Mapping[str, TaskStatus] | None = None,
    known: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The merged input context of ``task_id`` (a fresh dict the caller may own).
    ``known``: task id -> output JSON of tasks of this execution that ``tx`` itself
    recorded Completed; when they cover every dependency nothing is read."""
    deps = shape.deps[task_id]
    if not deps:
        return json.loads(store.executions.context(tx, execution_id))
    if statuses is None:
        # The common case in one read (or none): every dependency Completed (only
        # Completed tasks have an output), so the input is the merge of their outputs.
        if known is not None and all(d in known for d in deps):
            outputs = {d: known[d] for d in deps}
        else:
            outputs = store.tasks.outputs(tx, execution_id, deps)
        if all(outputs.get(d) for d in deps):
            merged = [json.loads(outputs[d] or "{}") for d in shape.in_order(deps)]
            return merged[0] if len(merged) == 1 else dag.merge_outputs(merged)
    if statuses is None or any(d not in statuses for d in deps):
        statuses = store.tasks.statuses(tx, execution_id)
    if all(statuses[d] is TaskStatus.COMPLETED for d in deps):
        include_input, sources = False, shape.in_order(deps)
    else:
        if any(statuses[d] is TaskStatus.SKIPPED for d in deps) and len(statuses) < len(
            shape.order
        ):
            statuses = store.tasks.statuses(tx, execution_id)
        include_input, sources = input_sources(shape, task_id, statuses)
    parts: list[dict[str, Any]] = []
    if include_input:
        parts.append(json.loads(store.executions.context(tx, execution_id)))
    outputs = store.tasks.outputs(tx, execution_id, sources)
    parts.extend(json.loads(out) for s in sources if (out := outputs.get(s)))
    if len(parts) == 1:
        return parts[0]
    return dag.merge_outputs(parts)


def claimed_inputs(
    store: Store,
    tx: Tx,
    claimed: Sequence[ClaimedTask],
    shapes: Mapping[tuple[str, str], Shape | None],
    known: Mapping[str, str],
    outputs: Mapping[tuple[str, str], str | None] | None = None,
) -> list[dict[str, Any] | None]:
    """The input context of each claimed task execution, read in the claim's transaction
    (None where its workflow's shape is unknown here). ``known``: execution id -> input
    context JSON the caller already has; each execution's input is read at most once.
    ``outputs``: (execution id, task id) -> output JSON of tasks this transaction
    recorded Completed (a chain's next task then needs no read)."""
    texts = dict(known)
    done = outputs or {}
    found: list[dict[str, Any] | None] = []
    for c in claimed:
        shape = shapes.get((c.workflow_name, c.workflow_version))
        if shape is None or c.task_id not in shape.deps:
            found.append(None)
        elif shape.deps[c.task_id]:
            mine = {
                t: done[(c.execution_id, t)]
                for t in shape.deps[c.task_id]
                if (c.execution_id, t) in done
            }
            found.append(
                load_input(store, tx, shape, c.execution_id, c.task_id, known=mine or None)
            )
        else:
            text = texts.get(c.execution_id)
            if text is None:
                text = texts[c.execution_id] = store.executions.context(tx, c.execution_id)
            found.append(json.loads(text))
    return found


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
) -> ExecutionStatus | None:
    """``finished_task`` just became ``finished_status`` (Completed or Failed): plan its
    dependants and end the execution when no task is left unfinished. Returns the terminal
    status if it ended."""
    locked = store.executions.lock_counting_finished(tx, execution_id, 1)
    if locked is None or locked[0].is_terminal:
        return None
    remaining = locked[1]
    # Known without a read: the finished task's status, and that a dependant whose only
    # dependency it is still waits (nothing else could have decided it). A chain's next
    # task is then planned with no read at all.
    statuses: dict[str, TaskStatus] = {finished_task: finished_status}
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
    store: Store, tx: Tx, shape: Shape, execution_id: str, now: datetime
) -> ExecutionStatus:
    context, results = store.executions.finish_inputs(tx, execution_id)
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
    # Every caller locked the execution (or created it in ``tx``) and saw it active.
    store.executions.finish(
        tx,
        execution_id,
        outcome,
        now,
        json.dumps(dag.merge_outputs(parts)),
        first_error,
        active=True,
    )
    return outcome


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
