"""Pure graph functions over a task dependency map, plus the context merge.

A graph is a ``Mapping[str, Sequence[str]]``: task id -> ids of the tasks it depends on.
The mapping's insertion order is the declared order; every function that has to choose
between equally valid answers uses it, so results are deterministic.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from typing import Any

from cloaca.errors import ValidationError

__all__ = [
    "deep_merge",
    "dependents",
    "execution_levels",
    "leaves",
    "merge_outputs",
    "roots",
    "topological_order",
    "validate_graph",
]

Deps = Mapping[str, Sequence[str]]


def _in_workflow(workflow_name: str) -> str:
    """Message fragment naming the workflow, if it has a name."""
    return f" in workflow {workflow_name!r}" if workflow_name else ""


def _find_cycle(deps: Deps) -> list[str] | None:
    """Return one dependency cycle as [a, b, ..., a] (a depends on b ...), or None.

    Iterative depth-first search (long chains must not hit the recursion limit), visiting
    tasks and their dependencies in declared order. Assumes every dependency is known.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(deps, white)
    for start in deps:
        if colour[start] != white:
            continue
        colour[start] = grey
        path = [start]
        stack = [iter(deps[start])]
        while stack:
            dep = next(stack[-1], None)
            if dep is None:
                colour[path.pop()] = black
                stack.pop()
            elif colour[dep] == grey:
                return path[path.index(dep) :] + [dep]
            elif colour[dep] == white:
                colour[dep] = grey
                path.append(dep)
                stack.append(iter(deps[dep]))
    return None


def validate_graph(deps: Deps, workflow_name: str = "") -> None:
    """Raise ValueError if the graph is empty, names an unknown task, or has a cycle.

    A cycle is reported in dependency order starting at its earliest declared task, e.g.
    ``Cycle detected in workflow 'w': a -> b -> a`` when a depends on b and b on a.
    """
    where = _in_workflow(workflow_name)
    if not deps:
        subject = f"Workflow {workflow_name!r}" if workflow_name else "Workflow"
        raise ValidationError(f"{subject} cannot be empty: add at least one task")
    for task_id, task_deps in deps.items():
        if isinstance(task_deps, str):
            # A bare string is a Sequence[str] of characters: almost certainly a mistake.
            raise ValidationError(
                f"Dependencies of task {task_id!r}{where} must be a list of task ids, "
                f"got the string {task_deps!r}"
            )
        for dep in task_deps:
            if dep not in deps:
                raise ValidationError(
                    f"Task {task_id!r}{where} depends on unknown task {dep!r}; "
                    f"known tasks: {', '.join(sorted(deps))}"
                )
    cycle = _find_cycle(deps)
    if cycle is not None:
        order = {task_id: i for i, task_id in enumerate(deps)}
        ring = cycle[:-1]
        first = min(range(len(ring)), key=lambda i: order[ring[i]])
        ring = ring[first:] + ring[:first]
        raise ValidationError(f"Cycle detected{where}: {' -> '.join([*ring, ring[0]])}")


def topological_order(deps: Deps) -> list[str]:
    """Return every task after all of its dependencies; ties go to the earlier declared task.

    Raises ValueError (as `validate_graph` does) for an unknown dependency or a cycle.
    """
    index = {task_id: i for i, task_id in enumerate(deps)}
    ids = list(deps)
    waiting: dict[str, int] = {}
    children: dict[str, list[str]] = {task_id: [] for task_id in deps}
    for task_id, task_deps in deps.items():
        unique = dict.fromkeys(task_deps)
        waiting[task_id] = len(unique)
        for dep in unique:
            if dep not in children:
                validate_graph(deps)  # raises with a precise message
            children[dep].append(task_id)
    ready = [index[t] for t, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        task_id = ids[heapq.heappop(ready)]
        order.append(task_id)
        for child in children[task_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, index[child])
    if len(order) != len(ids):
        validate_graph(deps)  # a cycle (or emptiness): raises with a precise message
    return order


def execution_levels(deps: Deps) -> list[list[str]]:
    """Group tasks by depth: level 0 holds the roots; a task is one past its deepest dependency.

    Within a level tasks keep their declared order.
    """
    level: dict[str, int] = {}
    for task_id in topological_order(deps):
        level[task_id] = 1 + max((level[d] for d in deps[task_id]), default=-1)
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for task_id in deps:
        levels[level[task_id]].append(task_id)
    return levels


def roots(deps: Deps) -> list[str]:
    """Tasks without dependencies, in declared order."""
    return [task_id for task_id, task_deps in deps.items() if not task_deps]


def leaves(deps: Deps) -> list[str]:
    """Tasks no other task depends on, in declared order."""
    needed = {dep for task_deps in deps.values() for dep in task_deps}
    return [task_id for task_id in deps if task_id not in needed]


def dependents(deps: Deps) -> dict[str, list[str]]:
    """Map every task to the tasks that depend on it directly, in declared order."""
    result: dict[str, list[str]] = {task_id: [] for task_id in deps}
    for task_id, task_deps in deps.items():
        for dep in dict.fromkeys(task_deps):
            result.setdefault(dep, []).append(task_id)
    return result


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a new dict merged by Cloacina's rule: two dicts merge recursively, two lists
    concatenate without duplicates (items of `override`'s list not already present are
    appended), anything else: `override`'s value wins.

    Neither input is mutated. Values that are not merged (scalars, lists, dicts present on
    one side only) are shared with the inputs rather than copied: callers that must isolate
    the result copy it (e.g. through `Context`); the engine merges freshly decoded outputs
    and so skips that cost.
    """
    return _merge_into(dict(base), override)


def _merge_into(target: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``target`` in place by the :func:`deep_merge` rule.

    Iterative (a stack of dict pairs still to merge), so no nesting depth can exhaust the
    interpreter's recursion limit. A nested dict merged here is a fresh copy of the
    target's, so the inputs' nested dicts are never mutated.
    """
    pending: list[tuple[dict[str, Any], Mapping[str, Any]]] = [(target, override)]
    while pending:
        into, source = pending.pop()
        for key, value in source.items():
            current = into.get(key)
            if isinstance(current, dict) and isinstance(value, dict):
                merged = dict(current)
                into[key] = merged
                pending.append((merged, value))
            elif isinstance(current, list) and isinstance(value, list):
                into[key] = _merge_lists(current, value)
            else:
                into[key] = value
    return target


def _merge_lists(current: list[Any], extra: list[Any]) -> list[Any]:
    """``current`` plus the items of ``extra`` not already present (a new list)."""
    merged = list(current)
    seen = {_item_key(item) for item in current}
    for item in extra:
        key = _item_key(item)
        if key not in seen:
            seen.add(key)
            merged.append(item)
    return merged


def _item_key(item: Any) -> tuple[bool, str]:
    """A hashable identity of a JSON value in which ``1``, ``1.0`` and ``true`` differ (as
    JSON values do) and dicts compare whatever their key order."""
    if type(item) is str:
        return True, item
    return False, json.dumps(item, sort_keys=True, separators=(",", ":"))


def merge_outputs(outputs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Deep-merge task outputs in order (later wins); equal to folding `deep_merge` over {}.

    The top level is merged in place into one accumulator, so merging n outputs does not
    copy the top level n times. Same sharing rule as `deep_merge`.
    """
    result: dict[str, Any] = {}
    for output in outputs:
        _merge_into(result, output)
    return result
