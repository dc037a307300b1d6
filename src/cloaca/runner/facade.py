"""The public methods a :class:`~cloaca.runner.default.DefaultRunner` and a
:class:`~cloaca.runner.management.ManagementClient` share: each delegates to one of the
services both compose (executions, trigger schedules, cron schedules, retention), so the two answer
every call alike. The docstrings are the services' own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cloaca.context import Context
from cloaca.runner.cron import CronSchedules
from cloaca.runner.executions import Executions
from cloaca.runner.results import WorkflowResult
from cloaca.runner.retention import Retention
from cloaca.runner.triggers import DEFAULT_EVALUATION_LIMIT, Triggers
from cloaca.triggers.definition import Trigger


class Services:
    """Delegates to ``_executions``, ``_triggers``, ``_cron_schedules`` and ``_retention``."""

    _executions: Executions
    _triggers: Triggers
    _cron_schedules: CronSchedules
    _retention: Retention

    # -- executions -------------------------------------------------------------------------

    def start(self, workflow_name: str, context: Context | Mapping[str, Any] | None = None) -> str:
        return self._executions.start(workflow_name, context)

    def execute(
        self, workflow_name: str, context: Context | Mapping[str, Any] | None = None
    ) -> WorkflowResult:
        return self._executions.execute(workflow_name, context)

    def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowResult:
        return self._executions.wait(execution_id, timeout)

    def get_execution(self, execution_id: str) -> WorkflowResult:
        return self._executions.get_execution(execution_id)

    def list_executions(
        self,
        workflow_name: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        return self._executions.list_executions(workflow_name, status, limit, offset)

    def cancel_execution(self, execution_id: str) -> bool:
        return self._executions.cancel_execution(execution_id)

    # -- trigger schedules ------------------------------------------------------------------

    def register_trigger(
        self,
        trigger_or_name: Trigger | Callable[..., Any] | str,
        workflow_name: str,
        poll_interval: timedelta | float | int | str | None = None,
        allow_concurrent: bool | None = None,
        on_failed_run: str | None = None,
    ) -> str:
        return self._triggers.register_trigger(
            trigger_or_name, workflow_name, poll_interval, allow_concurrent, on_failed_run
        )

    def list_trigger_schedules(
        self,
        enabled_only: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        return self._triggers.list_trigger_schedules(enabled_only, limit, offset)

    def get_trigger_schedule(self, name: str) -> dict[str, Any] | None:
        return self._triggers.get_trigger_schedule(name)

    def set_trigger_enabled(self, name: str, enabled: bool) -> None:
        self._triggers.set_trigger_enabled(name, enabled)

    def get_trigger_execution_history(
        self, name: str, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        return self._triggers.get_trigger_execution_history(name, limit, offset)

    def get_trigger_evaluations(
        self, name: str, limit: int = DEFAULT_EVALUATION_LIMIT
    ) -> list[dict[str, Any]]:
        return self._triggers.get_trigger_evaluations(name, limit)

    def fire_trigger(
        self, name: str, context: Context | Mapping[str, Any] | None = None
    ) -> str | None:
        return self._triggers.fire_trigger(name, context)

    # -- cron schedules ---------------------------------------------------------------------

    def register_cron_workflow(
        self,
        workflow_name: str,
        cron_expression: str,
        timezone: str = "UTC",
        *,
        catchup_policy: str = "skip",
    ) -> str:
        return self._cron_schedules.register_cron_workflow(
            workflow_name, cron_expression, timezone, catchup_policy=catchup_policy
        )

    def register_workflow_instance(
        self,
        workflow_name: str,
        instance_name: str,
        cron_expression: str,
        timezone: str = "UTC",
        params: Mapping[str, Any] | None = None,
        *,
        catchup_policy: str = "skip",
    ) -> str:
        return self._cron_schedules.register_workflow_instance(
            workflow_name,
            instance_name,
            cron_expression,
            timezone,
            params,
            catchup_policy=catchup_policy,
        )

    def list_cron_schedules(
        self,
        enabled_only: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        return self._cron_schedules.list_cron_schedules(enabled_only, limit, offset)

    def get_cron_schedule(self, schedule_id: str) -> dict[str, Any]:
        return self._cron_schedules.get_cron_schedule(schedule_id)

    def get_cron_execution_history(
        self, schedule_id: str, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        return self._cron_schedules.get_cron_execution_history(schedule_id, limit, offset)

    def get_cron_execution_stats(self, since: datetime | str) -> dict[str, Any]:
        return self._cron_schedules.get_cron_execution_stats(since)

    def update_cron_schedule(
        self, schedule_id: str, cron_expression: str, timezone: str | None = None
    ) -> None:
        self._cron_schedules.update_cron_schedule(schedule_id, cron_expression, timezone)

    def set_cron_schedule_enabled(self, schedule_id: str, enabled: bool) -> None:
        self._cron_schedules.set_cron_schedule_enabled(schedule_id, enabled)

    def delete_cron_schedule(self, schedule_id: str) -> None:
        self._cron_schedules.delete_cron_schedule(schedule_id)

    # -- retention --------------------------------------------------------------------------

    def prune(self, older_than: timedelta, *, dry_run: bool = False) -> dict[str, int]:
        return self._retention.prune(older_than, dry_run=dry_run)


def _copy_docs() -> None:
    for service in (Executions, Triggers, CronSchedules, Retention):
        for name, member in vars(service).items():
            mine = vars(Services).get(name)
            if callable(mine) and not name.startswith("_"):
                mine.__doc__ = member.__doc__


_copy_docs()
