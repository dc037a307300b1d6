"""``Shape``: the structure of a workflow as the engine plans it (tasks in topological
order, dependencies, rules, retry limits, declared inputs), built from a registered
Workflow's definition or from one recorded in the database."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.workflows import dag, rules
from cloaca.workflows.params import bind_params, merge_declarations
from cloaca.workflows.registry import get_workflow
from cloaca.workflows.workflow import Workflow


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

    @functools.cached_property
    def roots(self) -> int:
        """How many tasks depend on nothing (an execution starts with them Ready)."""
        return sum(1 for tid in self.order if not self.deps[tid])

    @functools.cached_property
    def sinks(self) -> int:
        """How many tasks no other task depends on (an execution ends after all of them)."""
        return sum(1 for tid in self.order if not self.dependents.get(tid))

    def ready_after(self, task_id: str) -> tuple[str, ...] | None:
        """The dependants ``task_id`` makes Ready by itself when it completes (each waits
        for it alone, under the default rule), or None when planning after it must look at
        other tasks (no dependant; one with other dependencies or a trigger rule)."""
        dependants = self.dependents.get(task_id)
        if not dependants:
            return None
        for dependant in dependants:
            if self.deps[dependant] != (task_id,) or self.rules.get(dependant) is not None:
                return None
        return dependants

    def in_order(self, task_ids: Iterable[str]) -> list[str]:
        """``task_ids`` sorted topologically (duplicates dropped)."""
        return sorted(set(task_ids), key=self.position.__getitem__)


def local_roots(shape: Shape) -> int:
    """Roots of an execution of ``shape`` that a transaction creating it may claim for this
    process: all of them when this process runs that version of the workflow, else none."""
    wf = get_workflow(shape.name)
    if wf is None or wf.version != shape.version:
        return 0
    return shape.roots


class ShapeCache:
    """The Shape an execution is planned with, cached per (workflow, version): the workflow
    registered in this process when its version matches, else the definition of that version
    recorded in the database."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._shapes: dict[tuple[str, str], Shape] = {}

    def of(self, wf: Workflow) -> Shape:
        """The shape of a registered workflow."""
        key = (wf.name, wf.version)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = Shape.from_definition(wf.definition())
        return shape

    def for_version(self, name: str, version: str, tx: Tx | None = None) -> Shape | None:
        """The structure an execution of ``name`` at ``version`` started with (None if this
        version is unknown). Inside an open transaction (a claim's) pass it as ``tx``: the
        recorded definition is then read through it (SQLite cannot nest a transaction)."""
        key = (name, version)
        shape = self._shapes.get(key)
        if shape is None:
            wf = get_workflow(name)
            if wf is not None and wf.version == version:
                return self.of(wf)
            definition = (
                self._store.workflows.definition(name, version)
                if tx is None
                else self._store.workflows.version_definition(tx, name, version)
            )
            if definition is None:
                return None
            shape = self._shapes[key] = Shape.from_definition(definition)
        return shape
