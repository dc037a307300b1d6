"""``DefaultRunner``: the facade users touch. It owns the database and this process's
:class:`~cloaca.runner.engine.Engine`, and delegates its public methods to the services
(executions, trigger schedules, cron schedules) a ManagementClient composes too."""

from __future__ import annotations

import logging
import uuid

from cloaca.clock import Clock, SystemClock
from cloaca.config import DefaultRunnerConfig
from cloaca.errors import RunnerShutDown, ValidationError
from cloaca.names import check_schema_name
from cloaca.runner.cron import CronSchedules
from cloaca.runner.database import open_migrated
from cloaca.runner.engine import Engine
from cloaca.runner.executions import Executions, Shapes
from cloaca.runner.facade import Services
from cloaca.runner.retention import Retention
from cloaca.runner.triggers import Triggers
from cloaca.store.drivers.urls import masked_url, parse_database_url
from cloaca.workflows.registry import (
    add_workflow_listener,
    registered_workflows,
    remove_workflow_listener,
)
from cloaca.workflows.workflow import Workflow

log = logging.getLogger(__name__)


def _check_schema_url(database_url: str, schema: str) -> None:
    check_schema_name(schema)
    if parse_database_url(database_url).dialect != "postgres":
        raise ValidationError(
            f"with_schema requires PostgreSQL; {masked_url(database_url)!r} is not a "
            f"postgres:// URL"
        )


class DefaultRunner(Services):
    """Runs workflows durably against one database.

    ``DefaultRunner("sqlite://app.db")`` migrates the schema, starts the engine loop on a
    background thread and returns. Use it as a context manager or call :meth:`shutdown`.

    For tests, ``clock=`` replaces the system clock and ``start_engine=False`` starts no
    thread at all: nothing runs until the caller drives :attr:`engine` by hand
    (``runner.engine.step()`` / ``run_until_idle()``; :mod:`cloaca.testing` does).
    """

    def __init__(
        self,
        database_url: str,
        config: DefaultRunnerConfig | None = None,
        *,
        clock: Clock | None = None,
        start_engine: bool = True,
        schema: str | None = None,
    ) -> None:
        """Open (and migrate) the database ``database_url`` names; ``schema`` keeps the
        tables in that PostgreSQL schema (see :meth:`with_schema`). ``clock`` and
        ``start_engine=False`` are the engine's test seam (see :mod:`cloaca.testing`)."""
        if schema is not None:
            _check_schema_url(database_url, schema)
        if config is not None and not isinstance(config, DefaultRunnerConfig):
            raise ValidationError(
                f"config must be a DefaultRunnerConfig, got {type(config).__name__}"
            )
        self.config = (config or DefaultRunnerConfig()).copy()  # copy() validates
        self.database_url = database_url
        self.runner_id = str(uuid.uuid4())
        self._clock: Clock = clock or SystemClock()
        self._closed = False
        self._store = open_migrated(database_url, schema, self.config.db_pool_size)
        self._store.origin = self.runner_id
        self.engine = Engine(
            self._store, self._clock, self.config, self.runner_id, stepped=not start_engine
        )
        engine = self.engine
        shapes = Shapes(self._store, engine.executor.shapes.of)
        self._executions = Executions(
            self._store, self._clock, self.config, shapes, engine, self._check_open
        )
        self._triggers = Triggers(
            self._store,
            self._clock,
            self.config,
            self.runner_id,
            shapes,
            self._executions.create,
            changed=engine.triggers_changed,
            check_open=self._check_open,
            slots=engine,
        )
        self._cron_schedules = CronSchedules(
            self._store, self._clock, self.config, shapes, engine.cron_changed, self._check_open
        )
        self._retention = Retention(self._store, self._clock, self.config, self._check_open)
        engine.assemble(
            self._executions.end, shapes, self._executions.create, self._triggers.recorder
        )
        self._triggers.follow_registry()
        for wf in registered_workflows():
            self._record_workflow(wf)
        add_workflow_listener(self._record_workflow)
        if start_engine:
            engine.start()

    # -- construction helpers (compat) ------------------------------------------------------

    @classmethod
    def with_config(cls, database_url: str, config: DefaultRunnerConfig) -> DefaultRunner:
        """Create a runner with an explicit configuration."""
        return cls(database_url, config)

    @classmethod
    def with_schema(cls, database_url: str, schema: str) -> DefaultRunner:
        """Create a runner whose tables live in a PostgreSQL schema (created if missing);
        several applications can share one database this way. PostgreSQL only. The two
        parameters are upstream's; with a config: ``DefaultRunner(url, config, schema=...)``.

        ``schema`` is ASCII letters, digits and underscores, at most 63 bytes (PostgreSQL's
        identifier limit); anything else is a ``ValueError`` before anything is created."""
        _check_schema_url(database_url, schema)  # None too: it is not "no schema" here
        return cls(database_url, schema=schema)

    def __enter__(self) -> DefaultRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def _record_workflow(self, wf: Workflow) -> None:
        if self._closed:
            return
        try:
            self._store.workflows.record(wf.name, wf.version, wf.definition(), self._clock.now())
        except Exception:
            log.exception("recording workflow definition failed", extra={"workflow": wf.name})
        self.engine.wake()

    def _check_open(self) -> None:
        if self._closed:
            raise RunnerShutDown("this DefaultRunner has been shut down")

    # -- lifecycle --------------------------------------------------------------------------

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop schedulers, wait (bounded) for running tasks, close the database."""
        if self._closed:
            return
        remove_workflow_listener(self._record_workflow)
        self._triggers.unfollow_registry()
        self.engine.shutdown(timeout)
        self._closed = True
        try:
            self._store.runners.remove(self.runner_id)
        except Exception:
            log.exception("removing runner row failed")
        self.engine.close()
        self._store.close()
        self.engine.waiters.wake_all(clear=True)
