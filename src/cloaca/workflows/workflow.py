"""Workflows: ``WorkflowBuilder``, ``workflow()`` and the validated ``Workflow``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cloaca.context import Context
from cloaca.errors import ValidationError
from cloaca.names import check_name
from cloaca.workflows import dag, params, registry, rules
from cloaca.workflows.task import TASK_ATTR, TaskSpec


class Workflow:
    """A named, validated DAG of tasks with a content version."""

    def __init__(
        self,
        name: str,
        tasks: Iterable[TaskSpec],
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        self.name = check_name("workflow name", name)
        self.description = description
        self.tags = dict(tags or {})
        self.tasks: dict[str, TaskSpec] = {}
        for spec in tasks:
            if spec.id in self.tasks:
                raise ValidationError(f"duplicate task id {spec.id!r} in workflow {name!r}")
            self.tasks[spec.id] = spec
        self.dependencies = {tid: s.dependencies for tid, s in self.tasks.items()}
        self.validate()
        self._task_params = {
            tid: declared
            for tid, spec in self.tasks.items()
            if (declared := getattr(spec.fn, params.PARAMS_ATTR, None))
        }
        self._task_secrets = {
            tid: list(declared)
            for tid, spec in self.tasks.items()
            if (declared := getattr(spec.fn, params.SECRETS_ATTR, None))
        }
        #: The typed inputs its tasks declare with ``@workflow_params``: name -> ``{"type":
        #: "int"}`` (required) or ``{"type": "int", "default": 3}``.
        self.declared_params = params.merge_declarations(name, self._task_params.items())
        #: The secret names its tasks declare with ``@workflow_secrets``.
        self.declared_secrets = tuple(sorted({n for ns in self._task_secrets.values() for n in ns}))
        self.order = dag.topological_order(self.dependencies)
        # The version hashes the structure only (tasks, dependencies, rules, attempts), so
        # equal structures have equal versions whatever the name or description.
        self.version = _content_version(self.definition(with_version=False)["tasks"])

    def validate(self) -> None:
        """Raise ``ValueError`` for an empty workflow, unknown dependencies, a cycle, or a
        trigger rule naming a task the workflow does not have."""
        if not self.tasks:
            raise ValidationError(f"Workflow {self.name!r} cannot be empty: add at least one task")
        dag.validate_graph(self.dependencies, self.name)
        for tid, spec in self.tasks.items():
            # A misspelt name would otherwise make the rule silently false forever.
            unknown = sorted(rules.referenced_tasks(spec.trigger_rules) - self.tasks.keys())
            if unknown:
                raise ValidationError(
                    f"Trigger rule of task {tid!r} in workflow {self.name!r} names unknown "
                    f"task {unknown[0]!r}; known tasks: {', '.join(sorted(self.tasks))}"
                )

    def topological_sort(self) -> list[str]:
        """Task ids in an order where every task comes after its dependencies."""
        return list(self.order)

    def get_execution_levels(self) -> list[list[str]]:
        """Task ids grouped by depth: level 0 holds the roots."""
        return dag.execution_levels(self.dependencies)

    def get_roots(self) -> list[str]:
        """Tasks without dependencies."""
        return dag.roots(self.dependencies)

    def get_leaves(self) -> list[str]:
        """Tasks nothing depends on."""
        return dag.leaves(self.dependencies)

    def bind_params(self, context: Context | Mapping[str, Any] | None = None) -> Context:
        """The input ``context`` with declared defaults filled in; a ``ValueError``
        (:class:`~cloaca.errors.ParamsError`) listing every missing or mistyped input."""
        data = params.bind_params(self.name, self.declared_params, self.declared_secrets, context)
        return Context(data)

    def definition(self, with_version: bool = True) -> dict[str, Any]:
        """The JSON-able structure recorded in the database (and hashed into ``version``).
        Declared params and secrets sit on the task that declares them (only there)."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "tasks": [self._task_definition(tid) for tid in self.tasks],
        }
        if with_version:
            out["version"] = self.version
        return out

    def _task_definition(self, tid: str) -> dict[str, Any]:
        spec = self.tasks[tid]
        entry: dict[str, Any] = {
            "id": tid,
            "dependencies": list(spec.dependencies),
            "trigger_rules": spec.trigger_rules,
            "max_attempts": spec.retry.max_attempts,
        }
        if tid in self._task_params:
            entry["params"] = self._task_params[tid]
        if tid in self._task_secrets:
            entry["secrets"] = self._task_secrets[tid]
        return entry

    def __repr__(self) -> str:
        return f"Workflow(name={self.name!r}, tasks={list(self.tasks)!r}, version={self.version!r})"


def _content_version(structure: Any) -> str:
    canonical = json.dumps(structure, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class WorkflowBuilder:
    """Collects tasks into a workflow; as a context manager, registers it on exit."""

    def __init__(
        self,
        name: str,
        *,
        tenant: str | None = None,
        package: str | None = None,
        workflow: str | None = None,
    ) -> None:
        self.name = check_name("workflow name", name)
        self.tenant = tenant
        self.package = package
        self._description: str | None = None
        self._tags: dict[str, str] = {}
        self._tasks: dict[str, TaskSpec] = {}

    def description(self, text: str) -> WorkflowBuilder:
        """Set the workflow's description."""
        self._description = text
        return self

    def tag(self, key: str, value: str) -> WorkflowBuilder:
        """Attach a tag."""
        self._tags[key] = value
        return self

    def add_task(self, task: object) -> WorkflowBuilder:
        """Add a task by id or by decorated function; adding a task twice is a no-op.

        An id is looked up among the tasks defined in this builder's ``with`` block, then
        those defined in any builder of the same workflow name, then the standalone tasks,
        then any task defined in a builder (when only one has that id).
        """
        if isinstance(task, str):
            spec = self._tasks.get(task) or registry.find_task(self.name, task)
            if spec is None:
                raise ValidationError(
                    f"Task {task!r} not found in registry: define it with @cloaca.task at "
                    f"module level or inside a `with WorkflowBuilder(...)` block first"
                )
        elif callable(task):
            found = getattr(task, TASK_ATTR, None)
            if not isinstance(found, TaskSpec):
                raise ValidationError(
                    f"Task {task!r} not found in registry: decorate it with @cloaca.task first"
                )
            spec = found
        else:
            raise ValidationError(
                f"add_task expects a string task ID or a function object, got {type(task).__name__}"
            )
        self._add_spec(spec)
        return self

    def _add_spec(self, spec: TaskSpec) -> None:
        # The same task added twice is one task; two different tasks sharing an id are not.
        if spec.id in self._tasks and self._tasks[spec.id] is not spec:
            raise ValidationError(f"duplicate task id {spec.id!r} in workflow {self.name!r}")
        self._tasks[spec.id] = spec

    def build(self) -> Workflow:
        """Validate and return the workflow (does not register it)."""
        return Workflow(self.name, self._tasks.values(), self._description, self._tags)

    def __enter__(self) -> WorkflowBuilder:
        registry.open_builder(self)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        registry.close_builder()
        if exc_type is None:
            register_workflow(self.build())


def workflow(name: str, tasks: Iterable[object], description: str | None = None) -> Workflow:
    """Build and register a workflow from standalone tasks (ids or decorated functions)."""
    if isinstance(tasks, str) or not isinstance(tasks, Iterable):
        raise ValidationError(f"tasks {tasks!r} must be a list of task ids or decorated functions")
    builder = WorkflowBuilder(name)
    if description:
        builder.description(description)
    for t in tasks:
        builder.add_task(t)
    built = builder.build()
    register_workflow(built)
    return built


def register_workflow(wf: Workflow) -> None:
    """Make ``wf`` known to runners in this process (replacing a same-named one)."""
    if not isinstance(wf, Workflow):
        raise ValidationError(f"expected a Workflow, got {type(wf).__name__}")
    registry.store_workflow(wf)


def register_workflow_constructor(name: str, constructor: Callable[[], Any]) -> None:
    """Register a zero-argument callable that builds the workflow ``name`` (compat).

    The constructor runs now; a ``WorkflowBuilder`` or ``Workflow`` it returns is registered
    under ``name``.
    """
    check_name("workflow name", name)
    if not callable(constructor):
        raise ValidationError(
            f"workflow constructor for {name!r} must be callable, got {constructor!r}"
        )
    registry.store_constructor(name, constructor)
    result = constructor()
    if isinstance(result, WorkflowBuilder):
        result = result.build()
    if isinstance(result, Workflow):
        if result.name != name:
            result = Workflow(name, result.tasks.values(), result.description, result.tags)
        register_workflow(result)
    elif registry.get_workflow(name) is None:
        raise ValidationError(
            f"workflow constructor for {name!r} returned {type(result).__name__}; "
            f"it must return a Workflow or a WorkflowBuilder"
        )
