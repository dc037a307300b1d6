"""``ManagementClient``: reads and admin writes on a cloaca database from a process that
executes nothing (the CLI, a dashboard).

It composes the same services as :class:`~cloaca.runner.default.DefaultRunner` (every
method of the same name takes the same parameters and returns the same shapes) but has no
engine loop, executor, heartbeat or runner row. What it starts or fires is run by the
workers of other processes: PostgreSQL wakes them with NOTIFY when the transaction commits,
SQLite runners notice the commit at their next poll.

``ManagementClient.open(url)`` never creates a database or tables unless ``create=True``.
"""

from __future__ import annotations

import uuid
from typing import Any

from cloaca.clock import Clock, SystemClock, rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.errors import OperationError, ValidationError
from cloaca.names import check_schema_name
from cloaca.runner.cron import CronSchedules
from cloaca.runner.database import open_existing, open_migrated
from cloaca.runner.executions import Executions, NoLocalEngine, Shapes, shape_of_definition
from cloaca.runner.facade import Services
from cloaca.runner.overview import Overview
from cloaca.runner.retention import Retention
from cloaca.runner.triggers import Triggers
from cloaca.store.core import Store
from cloaca.store.migrate import current_version, latest_version
from cloaca.workflows.params import merge_declarations


class ManagementClient(Services):
    """Lists, shows, cancels, starts, fires and toggles, with no engine of its own.

    Open it with :meth:`open`; close it with :meth:`close` or use it as a context manager.
    """

    def __init__(
        self,
        store: Store,
        config: DefaultRunnerConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = (config or DefaultRunnerConfig()).copy()
        #: Stamped on what this client writes (evaluations of manual fires, notifications).
        self.client_id = f"management-{uuid.uuid4()}"
        self._store = store
        self._store.origin = self.client_id
        self._clock: Clock = clock or SystemClock()
        self._closed = False
        shapes = Shapes(store, shape_of_definition)
        engine = NoLocalEngine()
        self._executions = Executions(
            store, self._clock, self.config, shapes, engine, self._check_open
        )
        self._triggers = Triggers(
            store,
            self._clock,
            self.config,
            self.client_id,
            shapes,
            self._executions.create,
            changed=lambda name: None,  # runners re-read schedules on their own
            check_open=self._check_open,
            slots=engine,
        )
        self._cron_schedules = CronSchedules(
            store, self._clock, self.config, shapes, lambda: None, self._check_open
        )
        self._retention = Retention(store, self._clock, self.config, self._check_open)
        self._overview = Overview(store, self._check_open)

    @classmethod
    def open(
        cls,
        database_url: str,
        schema: str | None = None,
        create: bool = False,
        config: DefaultRunnerConfig | None = None,
    ) -> ManagementClient:
        """Open the cloaca database ``database_url`` names (its tables in PostgreSQL schema
        ``schema`` if given).

        Without ``create`` a missing database, schema or set of tables is a ``ValueError``
        naming the URL (password masked), and nothing is created; ``create=True`` creates
        and migrates it like a runner would."""
        if schema is not None:
            check_schema_name(schema)
        if config is not None and not isinstance(config, DefaultRunnerConfig):
            raise ValidationError(
                f"config must be a DefaultRunnerConfig, got {type(config).__name__}"
            )
        pool_size = 2
        if create:
            store = open_migrated(database_url, schema, pool_size)
        else:
            store = open_existing(database_url, schema, pool_size)
        return cls(store, config)

    def _check_open(self) -> None:
        if self._closed:
            raise OperationError("this ManagementClient has been closed")

    # -- what only a management tool asks ---------------------------------------------------

    def list_workflows(self) -> list[dict[str, Any]]:
        """Workflow definitions recorded in the database (by any runner), by name: dicts
        with ``name, version, description, updated_at``, ``params`` (declared inputs, if
        recorded) and ``tasks``, a list of dicts with ``id``, ``dependencies``,
        ``max_attempts`` and ``trigger_rules``; ``params`` and ``secrets`` are what its tasks
        declare with ``@workflow_params`` / ``@workflow_secrets``."""
        self._check_open()
        return [
            {
                "name": w.name,
                "version": w.version,
                "description": w.definition.get("description"),
                "updated_at": rfc3339(w.updated_at),
                "tasks": [
                    {
                        "id": t["id"],
                        "dependencies": list(t["dependencies"]),
                        "max_attempts": t.get("max_attempts"),
                        "trigger_rules": t.get("trigger_rules"),
                    }
                    for t in w.definition.get("tasks", [])
                ],
                "params": declared_params(w.name, w.definition),
                "secrets": sorted(
                    {s for t in w.definition.get("tasks", []) for s in t.get("secrets", [])}
                ),
            }
            for w in self._store.admin.list_workflows()
        ]

    def list_runners(self) -> list[dict[str, Any]]:
        """Runner rows, oldest first: dicts with ``id, hostname, pid, started_at,
        heartbeat_at, running_tasks`` (task executions it runs now) and ``trigger_leases``
        (trigger polls it holds). A runner that died keeps its row until a peer's recovery
        sweep finds its heartbeat stale."""
        self._check_open()
        return [
            {
                "id": r.id,
                "hostname": r.hostname,
                "pid": r.pid,
                "started_at": rfc3339(r.started_at),
                "heartbeat_at": rfc3339(r.heartbeat_at),
                "running_tasks": r.running_tasks,
                "trigger_leases": r.trigger_leases,
            }
            for r in self._store.admin.list_runners()
        ]

    # -- overviews (the dashboard, the metrics): see cloaca.runner.overview ------------------

    def list_executions_page(
        self,
        workflow_name: str | None = None,
        status: str | None = None,
        started_by: str | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Executions newest first, one keyset page at a time, with their origin (see
        ``Overview.list_executions_page``)."""
        return self._overview.list_executions_page(workflow_name, status, started_by, before, limit)

    def describe_execution(self, execution_id: str) -> dict[str, Any]:
        """An execution's origin and input context (see ``Overview.describe_execution``)."""
        return self._overview.describe_execution(execution_id)

    def find_execution_ids(self, prefix: str, limit: int = 10) -> list[str]:
        """Execution ids starting with ``prefix`` (see ``Overview.find_execution_ids``)."""
        return self._overview.find_execution_ids(prefix, limit)

    def queue_counts(self) -> dict[str, int]:
        """Pending/Running executions, Ready/Running tasks (see ``Overview.queue_counts``)."""
        return self._overview.queue_counts()

    def metrics_tail_end(self, what: str) -> int:
        """Where a metrics reader starts (see ``Overview.metrics_tail_end``)."""
        return self._overview.metrics_tail_end(what)

    def metrics_tail(self, what: str, after: int, limit: int) -> list[dict[str, Any]]:
        """Rows added after a position (see ``Overview.metrics_tail``)."""
        return self._overview.metrics_tail(what, after, limit)

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the schema version now in place."""
        self._check_open()
        return self._store.migrate()

    def schema_version(self) -> tuple[int, int]:
        """``(current, latest)``: the database's schema version and the newest this cloaca
        knows."""
        self._check_open()
        return current_version(self._store.db), latest_version(self._store.db.dialect)

    def close(self) -> None:
        """Close the database connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._store.close()

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def declared_params(name: str, definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The inputs a recorded definition's tasks declare, merged (they sit on each task)."""
    return merge_declarations(
        name, [(t["id"], t["params"]) for t in definition.get("tasks", []) if t.get("params")]
    )
