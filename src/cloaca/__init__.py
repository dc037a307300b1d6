"""cloaca: embedded, durable workflow orchestration with cron schedules and event triggers.

Declare tasks with :func:`task`, group them with :class:`WorkflowBuilder` or
:func:`workflow`, and run them with :class:`DefaultRunner` on SQLite (or PostgreSQL).
"""

from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context
from cloaca.errors import CloacaError
from cloaca.runner.default import DefaultRunner
from cloaca.runner.results import TaskResult, WorkflowResult
from cloaca.tenants import DatabaseAdmin, TenantConfig, TenantCredentials
from cloaca.triggers.definition import (
    Trigger,
    TriggerError,
    TriggerResult,
    register_trigger,
    trigger,
)
from cloaca.workflows.params import (
    boundary_schema,
    var,
    var_or,
    workflow_params,
    workflow_secrets,
)
from cloaca.workflows.retry import (
    BackoffStrategy,
    RetryCondition,
    RetryPolicy,
    RetryPolicyBuilder,
)
from cloaca.workflows.rules import (
    all_of,
    always,
    any_of,
    context_value,
    none_of,
    task_failed,
    task_skipped,
    task_success,
)
from cloaca.workflows.task import TaskHandle, task
from cloaca.workflows.workflow import (
    Workflow,
    WorkflowBuilder,
    register_workflow_constructor,
    workflow,
)

__version__ = "0.1.0"

__all__ = [
    "BackoffStrategy",
    "CloacaError",
    "Context",
    "DatabaseAdmin",
    "DefaultRunner",
    "DefaultRunnerConfig",
    "RetryCondition",
    "RetryPolicy",
    "RetryPolicyBuilder",
    "TaskHandle",
    "TaskResult",
    "TenantConfig",
    "TenantCredentials",
    "Trigger",
    "TriggerError",
    "TriggerResult",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowResult",
    "__version__",
    "all_of",
    "always",
    "any_of",
    "boundary_schema",
    "context_value",
    "none_of",
    "register_trigger",
    "register_workflow_constructor",
    "task",
    "task_failed",
    "task_skipped",
    "task_success",
    "trigger",
    "var",
    "var_or",
    "workflow",
    "workflow_params",
    "workflow_secrets",
]
