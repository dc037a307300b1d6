"""Input contexts: what a task execution starts from. Roots read the execution's input;
every other task the merged outputs of its Completed dependencies, looking through Skipped
ones to their own sources. Read inside the caller's transaction (a claim's, usually), with
as few reads as the transaction allows."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from cloaca.engine.shape import Shape
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.records import ClaimedTask, TaskStatus
from cloaca.workflows import dag

log = logging.getLogger(__name__)


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
    done = dict(outputs or {})
    # The outputs claimed tasks need and this transaction did not record: one read per
    # execution (a fan-out's branches all wait for the same task), not one per task.
    missing: dict[str, set[str]] = {}
    for c in claimed:
        shape = shapes.get((c.workflow_name, c.workflow_version))
        if shape is not None and c.task_id in shape.deps:
            for dep in shape.deps[c.task_id]:
                if (c.execution_id, dep) not in done:
                    missing.setdefault(c.execution_id, set()).add(dep)
    for execution_id, deps in missing.items():
        for dep, output in store.tasks.outputs(tx, execution_id, sorted(deps)).items():
            done[(execution_id, dep)] = output
    roots = {
        c.execution_id
        for c in claimed
        if (shape := shapes.get((c.workflow_name, c.workflow_version))) is not None
        and c.task_id in shape.deps
        and not shape.deps[c.task_id]
        and c.execution_id not in texts
    }
    if roots:
        texts.update(store.executions.contexts(tx, roots))  # one read for every root
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


def committed_inputs(
    store: Store,
    claimed: Sequence[ClaimedTask],
    shapes: Mapping[tuple[str, str], Shape | None],
    outputs: Mapping[tuple[str, str], str | None] | None = None,
) -> list[dict[str, Any] | None]:
    """:func:`claimed_inputs` of claims whose transaction committed already (their rows
    came back with the COMMIT). What a claimed task starts from never changes once it is
    Ready, so reading it after the claim is as good as inside it: a chain's next task needs
    no read at all, the others one read of their own. None where that read fails: the
    attempt then reads its input when it starts."""
    if not claimed:
        return []
    done = outputs or {}
    known: dict[str, str] = {}
    reads = False
    for c in claimed:
        shape = shapes.get((c.workflow_name, c.workflow_version))
        if shape is None or c.task_id not in shape.deps:
            continue
        deps = shape.deps[c.task_id]
        if not deps:
            text = store.executions.known_context(c.execution_id)
            if text is None:
                reads = True
            else:
                known[c.execution_id] = text
        elif not all(done.get((c.execution_id, d)) for d in deps):
            reads = True
    try:
        if not reads:  # nothing to read: no transaction either
            return claimed_inputs(store, cast(Tx, None), claimed, shapes, known, outputs)
        with store.read() as tx:
            return claimed_inputs(store, tx, claimed, shapes, known, outputs)
    except Exception:
        log.warning("reading the inputs of claimed tasks failed", exc_info=True)
        return [None] * len(claimed)
