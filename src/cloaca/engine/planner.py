"""Planning: NotStarted -> Ready / Skipped, input contexts, and finishing executions.

``plan`` and ``input_sources`` are pure decisions over task statuses. ``advance`` applies
them inside the caller's transaction, so a task's outcome, the readiness of its dependants
and the end of the execution commit together.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloaca import dag, rules
from cloaca.store.db import Tx
from cloaca.store.records import ExecutionStatus, TaskStatus
from cloaca.store.store import Store

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

    @classmethod
    def from_definition(cls, definition: Mapping[str, Any]) -> Shape:
        """Build from the JSON structure ``Workflow.definition()`` records."""
        tasks = definition["tasks"]
        deps = {t["id"]: tuple(t["dependencies"]) for t in tasks}
        return cls(
            name=definition["name"],
            version=definition["version"],
            order=tuple(dag.topological_order(deps)),
            deps=deps,
            rules={t["id"]: t.get("trigger_rules") for t in tasks},
            max_attempts={t["id"]: int(t.get("max_attempts", 1)) for t in tasks},
        )


def _uses_context(rule: Mapping[str, Any]) -> bool:
    if rule.get("type") == "ContextValue":
        return True
    return any(_uses_context(c) for c in rule.get("conditions", ()))


def plan(
    shape: Shape,
    statuses: Mapping[str, TaskStatus],
    context_for: Callable[[str], Mapping[str, Any]],
) -> tuple[list[tuple[str, TaskStatus, str | None]], ExecutionStatus | None]:
    """Decide which NotStarted tasks become Ready or Skipped, and whether the execution ends.

    Returns ``(decisions, outcome)``: decisions are ``(task_id, new_status, reason)`` in
    topological order; outcome is Completed/Failed once every task is terminal, else None.
    """
    current = dict(statuses)
    decisions: list[tuple[str, TaskStatus, str | None]] = []
    for tid in shape.order:
        if current.get(tid) is not TaskStatus.NOT_STARTED:
            continue
        dep_states = [current[d] for d in shape.deps[tid]]
        if not all(s.is_terminal for s in dep_states):
            continue
        rule = shape.rules.get(tid)
        if rule is None:
            if TaskStatus.FAILED in dep_states:
                new, reason = TaskStatus.SKIPPED, UPSTREAM_FAILED
            else:
                new, reason = TaskStatus.READY, None
        else:
            ctx = context_for(tid) if _uses_context(rule) else {}
            named = {k: str(v) for k, v in current.items()}
            ok = rules.evaluate_rule(rule, named, ctx)
            new, reason = (TaskStatus.READY, None) if ok else (TaskStatus.SKIPPED, RULE_NOT_MET)
        current[tid] = new
        decisions.append((tid, new, reason))
    if all(s.is_terminal for s in current.values()):
        failed = TaskStatus.FAILED in current.values()
        return decisions, ExecutionStatus.FAILED if failed else ExecutionStatus.COMPLETED
    return decisions, None


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
    return include_input, [t for t in shape.order if t in found]


def load_input(
    store: Store,
    tx: Tx,
    shape: Shape,
    execution_id: str,
    task_id: str,
    statuses: Mapping[str, TaskStatus] | None = None,
) -> dict[str, Any]:
    """The merged input context of ``task_id`` (a fresh dict the caller may own)."""
    if not shape.deps[task_id]:
        return json.loads(store.execution_context(tx, execution_id))
    if statuses is None:
        statuses = store.task_statuses(tx, execution_id)
    include_input, sources = input_sources(shape, task_id, statuses)
    parts: list[dict[str, Any]] = []
    if include_input:
        parts.append(json.loads(store.execution_context(tx, execution_id)))
    outputs = store.task_outputs(tx, execution_id, sources)
    parts.extend(json.loads(out) for s in sources if (out := outputs.get(s)))
    if len(parts) == 1:
        return parts[0]
    return dag.merge_outputs(parts)


def advance(
    store: Store, tx: Tx, shape: Shape, execution_id: str, now: datetime
) -> ExecutionStatus | None:
    """Apply the planner's decisions for one execution; finish it when every task is done.

    Returns the execution's terminal status if this call ended it, else None.
    """
    state = store.execution_status(tx, execution_id)
    if state is None or state.is_terminal:
        return None
    statuses = store.task_statuses(tx, execution_id)

    def context_for(tid: str) -> Mapping[str, Any]:
        return load_input(store, tx, shape, execution_id, tid, statuses)

    decisions, outcome = plan(shape, statuses, context_for)
    for tid, status, reason in decisions:
        store.set_task_status(tx, execution_id, tid, status, now, reason)
    if outcome is None:
        return None
    final = dict(statuses)
    final.update({tid: status for tid, status, _ in decisions})
    completed = [t for t in shape.order if final.get(t) is TaskStatus.COMPLETED]
    outputs = store.task_outputs(tx, execution_id, completed)
    parts = [json.loads(store.execution_context(tx, execution_id))]
    parts.extend(json.loads(out) for t in completed if (out := outputs.get(t)))
    error = None
    if outcome is ExecutionStatus.FAILED:
        error = store.first_task_error(tx, execution_id)
    store.finish_execution(
        tx, execution_id, outcome, now, json.dumps(dag.merge_outputs(parts)), error
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
    if store.execution_status(tx, execution_id) in (None, *_TERMINAL):
        return False
    store.cancel_pending_tasks(tx, execution_id, now)
    return store.finish_execution(tx, execution_id, status, now, None, error)


_TERMINAL = (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)
