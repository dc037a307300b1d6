"""The per-process registry of workflows and standalone tasks, and the open-builder stack.

``@task`` reports each new task here (:func:`task_defined`); a ``with WorkflowBuilder(...)``
block open on this thread takes it (and it is remembered under that workflow's name), else
it joins the standalone tasks; ``add_task("id")`` finds both. Runners subscribe to workflow
registrations.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloaca.workflows.task import TaskSpec
    from cloaca.workflows.workflow import Workflow, WorkflowBuilder

_lock = threading.RLock()
_standalone_tasks: dict[str, TaskSpec] = {}
# Tasks defined inside ``with WorkflowBuilder`` blocks: task id -> workflow name -> task.
_builder_tasks: dict[str, dict[str, TaskSpec]] = {}
_workflows: dict[str, Workflow] = {}
_constructors: dict[str, Callable[[], Any]] = {}
_listeners: list[Callable[[Workflow], None]] = []
_local = threading.local()


def open_builder(builder: WorkflowBuilder) -> None:
    """Make ``builder`` take the tasks defined on this thread until :func:`close_builder`."""
    stack = getattr(_local, "builders", None)
    if stack is None:
        stack = _local.builders = []
    stack.append(builder)


def close_builder() -> None:
    """Close the innermost builder opened on this thread."""
    _local.builders.pop()


def task_defined(spec: TaskSpec) -> None:
    """Called by ``@task``: join the open builder (and be remembered under its workflow
    name), else the standalone registry."""
    stack = getattr(_local, "builders", None)
    if stack:
        builder = stack[-1]
        builder._add_spec(spec)
        with _lock:
            _builder_tasks.setdefault(spec.id, {})[builder.name] = spec
        return
    with _lock:
        _standalone_tasks[spec.id] = spec


def find_task(workflow_name: str, task_id: str) -> TaskSpec | None:
    """The task ``add_task(task_id)`` means in a builder of ``workflow_name``: one defined
    in a builder of that workflow, else a standalone task, else the one task of that id
    defined in some builder (None when there is none, or several)."""
    with _lock:
        in_builders = _builder_tasks.get(task_id, {})
        found = in_builders.get(workflow_name) or _standalone_tasks.get(task_id)
        if found is None and len(in_builders) == 1:
            found = next(iter(in_builders.values()))
        return found


def store_workflow(wf: Workflow) -> None:
    """Record ``wf`` (replacing a same-named one) and tell the listeners."""
    with _lock:
        _workflows[wf.name] = wf
        listeners = list(_listeners)
    for listener in listeners:
        listener(wf)


def store_constructor(name: str, constructor: Callable[[], Any]) -> None:
    """Remember the constructor of workflow ``name``."""
    with _lock:
        _constructors[name] = constructor


def get_workflow(name: str) -> Workflow | None:
    """The workflow registered under ``name`` in this process, or None."""
    with _lock:
        return _workflows.get(name)


def registered_workflows() -> list[Workflow]:
    """Every workflow registered in this process."""
    with _lock:
        return list(_workflows.values())


def add_workflow_listener(callback: Callable[[Workflow], None]) -> None:
    """Call ``callback`` whenever a workflow is registered (runners record definitions)."""
    with _lock:
        _listeners.append(callback)


def remove_workflow_listener(callback: Callable[[Workflow], None]) -> None:
    """Stop calling ``callback``."""
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


def clear_registry() -> None:
    """Forget every workflow and standalone task (for tests)."""
    with _lock:
        _workflows.clear()
        _standalone_tasks.clear()
        _builder_tasks.clear()
        _constructors.clear()
