"""``DefaultRunner``: the facade users touch. It owns the database, the engine loop, the
executor, the recovery part and the trigger and cron schedulers."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cloaca.clock import Clock, SystemClock
from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context, check_context_size
from cloaca.engine import planner
from cloaca.engine.aio import AsyncBridge
from cloaca.engine.executor import Claim, Executor
from cloaca.engine.heartbeat import Heartbeat
from cloaca.engine.loop import Loop, Part
from cloaca.engine.planner import Shape, terminate
from cloaca.engine.recovery import Recovery
from cloaca.names import check_name, check_schema_name
from cloaca.paging import check_count
from cloaca.runner.cron import CronManagement
from cloaca.runner.results import WorkflowResult
from cloaca.runner.triggers import TriggerManagement
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.drivers.sqlite import SqliteDatabase
from cloaca.store.drivers.urls import masked_url, parse_database_url
from cloaca.store.records import ExecutionStatus
from cloaca.workflows.registry import (
    add_workflow_listener,
    get_workflow,
    registered_workflows,
    remove_workflow_listener,
)
from cloaca.workflows.workflow import Workflow

log = logging.getLogger(__name__)


def open_store(database_url: str, schema: str | None = None, pool_size: int = 10) -> Store:
    """A Store on the database a URL names (not migrated yet)."""
    url = parse_database_url(database_url)
    if url.dialect == "postgres":
        from cloaca.store.drivers.postgres import PostgresDatabase  # psycopg is an optional extra

        return Store(PostgresDatabase(url.target, schema=schema, pool_size=pool_size))
    return Store(SqliteDatabase(url.target))


def context_json(context: Context | Mapping[str, Any] | None) -> str:
    """Encode an execution's input context (a Context, a plain dict or None)."""
    if context is None:
        return "{}"
    if isinstance(context, Context):
        return json.dumps(context._raw())
    if isinstance(context, Mapping):
        return json.dumps(Context(dict(context))._raw())
    raise TypeError(f"context must be a Context, a dict or None, got {type(context).__name__}")


def _check_schema_url(database_url: str, schema: str) -> None:
    check_schema_name(schema)
    if parse_database_url(database_url).dialect != "postgres":
        raise ValueError(
            f"with_schema requires PostgreSQL; {masked_url(database_url)!r} is not a "
            f"postgres:// URL"
        )


class DefaultRunner(TriggerManagement, CronManagement):
    """Runs workflows durably against one database.

    ``DefaultRunner("sqlite://app.db")`` migrates the schema, starts the engine loop on a
    background thread and returns. Use it as a context manager or call :meth:`shutdown`.
    """

    def __init__(
        self,
        database_url: str,
        config: DefaultRunnerConfig | None = None,
        *,
        schema: str | None = None,
        _clock: Clock | None = None,
        _manual: bool = False,
    ) -> None:
        """Open (and migrate) the database ``database_url`` names; ``schema`` keeps the
        tables in that PostgreSQL schema (see :meth:`with_schema`)."""
        if schema is not None:
            _check_schema_url(database_url, schema)
        if config is not None and not isinstance(config, DefaultRunnerConfig):
            raise ValueError(f"config must be a DefaultRunnerConfig, got {type(config).__name__}")
        self.config = (config or DefaultRunnerConfig()).copy()  # copy() validates
        self.database_url = database_url
        self.runner_id = str(uuid.uuid4())
        self._clock: Clock = _clock or SystemClock()
        self._manual = _manual
        self._closed = False
        self._stopping = threading.Event()
        self._waiters: dict[str, list[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self._store = open_store(database_url, schema, self.config.db_pool_size)
        self._store.origin = self.runner_id
        try:
            self._store.migrate()
        except Exception:
            self._store.close()
            raise
        self._aio = AsyncBridge()
        self._executor = Executor(
            self._store,
            self._clock,
            self.runner_id,
            self.config,
            self._aio,
            on_finished=self._execution_finished,
            wake=self._wake_loop,
            stopping=self._stopping,
            inline=_manual,
        )
        self._recovery = Recovery(
            self._store,
            self.runner_id,
            self.config,
            on_requeued=self._executor.poke,
            end_execution=self._end_execution,
            shape_for=self._executor.shape_for,
            on_repaired=self._repaired,
        )
        parts: list[Part] = [self._recovery, self._executor]
        parts.extend(self._init_triggers())
        parts.extend(self._init_cron())
        self._last_data_version = self._store.data_version()
        self._loop = Loop(
            self._clock,
            parts,
            self.config.scheduler_poll_interval_ms / 1000,
            self._external_change,
            self._stopping,
        )
        self._loop.on_external_change = self._executor.external_change
        self._heartbeat = Heartbeat(
            self._store,
            self.runner_id,
            self.config,
            self._clock,
            register=self._recovery.register,
            stuck_for=self._loop.stuck_for,
        )
        if _manual:
            # Under the Harness the heartbeat is refreshed when the harness ticks.
            self._loop.parts.insert(0, self._heartbeat)
        listen = getattr(self._store.db, "listen", None)
        if listen is not None and not _manual:
            listen(self._notified, on_reconnect=self._listener_reconnected)
        self._recovery.register(self._clock.now())
        for wf in registered_workflows():
            self._record_workflow(wf)
        add_workflow_listener(self._record_workflow)
        if not _manual:
            self._heartbeat.start()
            self._loop.start()

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

    # -- engine plumbing --------------------------------------------------------------------

    def _wake(self) -> None:
        """Something in this process may have made work Ready: claim on the next round."""
        self._executor.poke()
        self._loop.wake()

    def _wake_loop(self) -> None:
        """Tick again now (the executor decides itself whether to claim)."""
        self._loop.wake()

    def _external_change(self) -> bool:
        version = self._store.data_version()
        changed = version != self._last_data_version
        self._last_data_version = version
        return changed

    def _record_workflow(self, wf: Workflow) -> None:
        if self._closed:
            return
        try:
            self._store.record_workflow(wf.name, wf.version, wf.definition(), self._clock.now())
        except Exception:
            log.exception("recording workflow definition failed", extra={"workflow": wf.name})
        self._wake()

    def _notified(self, payload: str) -> None:
        """Another process committed something we care about (PostgreSQL NOTIFY)."""
        if payload.startswith("finished:"):
            self._execution_finished(payload.removeprefix("finished:"))
        elif payload != f"ready:{self.runner_id}":  # work this runner made Ready, it knows of
            self._executor.external_change()
            self._loop.wake()

    def _listener_reconnected(self) -> None:
        """The LISTEN connection was lost and is back: notifications sent meanwhile are
        gone, so look at the database once (new work) and let every waiter re-read."""
        self._executor.external_change()
        self._loop.wake()
        with self._waiters_lock:
            waiters = [e for events in self._waiters.values() for e in events]
        for event in waiters:
            event.set()

    def _repaired(self, execution_id: str, ended: ExecutionStatus | None) -> None:
        """The recovery sweep re-planned a stalled execution."""
        if ended is not None:
            self._execution_finished(execution_id, ended)
        self._wake()

    def _execution_finished(self, execution_id: str, status: ExecutionStatus | None = None) -> None:
        with self._waiters_lock:
            events = self._waiters.pop(execution_id, [])
        for event in events:
            event.set()

    def _shape(self, workflow_name: str) -> Shape:
        check_name("workflow name", workflow_name)
        wf = get_workflow(workflow_name)
        if wf is not None:
            return self._executor.shape_of(wf)
        definition = self._store.get_workflow_definition(workflow_name)
        if definition is None:
            raise ValueError(
                f"Workflow {workflow_name!r} not found: register it in this process "
                f"(WorkflowBuilder / cloaca.workflow) or in a runner on the same database"
            )
        return Shape.from_definition(definition)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this DefaultRunner has been shut down")

    def _create_execution(
        self,
        tx: Tx,
        shape: Shape,
        context_text: str,
        now: datetime,
        execution_id: str | None = None,
        *,
        notify_ready: bool = True,
        running: bool = False,
    ) -> str:
        """Insert an execution of ``shape`` and plan its roots, inside ``tx`` (``running``:
        the caller claims its Ready roots in ``tx``)."""
        execution_id = execution_id or str(uuid.uuid4())
        planner.create(
            self._store,
            tx,
            shape,
            execution_id,
            context_text,
            now,
            notify_ready=notify_ready,
            running=running,
        )
        self._recovery.execution_created(now)
        return execution_id

    # -- executions -------------------------------------------------------------------------

    def start(self, workflow_name: str, context: Context | Mapping[str, Any] | None = None) -> str:
        """Start an execution and return its id without waiting.

        ``ValueError`` for an invalid or unknown workflow name, or an input context whose
        JSON is over ``config.max_context_bytes`` (the message names its size and the limit).
        """
        return self._start(workflow_name, context, str(uuid.uuid4()))

    def _start(
        self, workflow_name: str, context: Context | Mapping[str, Any] | None, execution_id: str
    ) -> str:
        self._check_open()
        shape = self._shape(workflow_name)
        text = check_context_size(
            context_json(shape.bind_params(context)),
            self.config.max_context_bytes,
            f"the input context of workflow {workflow_name!r}",
        )
        # When this process runs the workflow and has free slots, the transaction that
        # creates the execution also claims its roots: a one-task execution then costs two
        # commits in all (this one and its outcome's).
        wf = get_workflow(shape.name)
        roots = sum(1 for tid in shape.order if not shape.deps[tid])
        local = wf is not None and wf.version == shape.version
        reserved = self._executor.reserve(roots) if local else 0
        claimed: list[Claim] = []
        try:
            with self._store.write() as tx:
                now = self._clock.now()
                # Roots this transaction claims need no notification to other runners.
                self._create_execution(
                    tx,
                    shape,
                    text,
                    now,
                    execution_id,
                    notify_ready=reserved < roots,
                    running=reserved > 0,
                )
                if reserved:
                    claimed = self._executor.claim_in(
                        tx, [shape.name], reserved, now, execution_id, {execution_id: text}
                    )
        finally:
            self._executor.adopt(claimed, reserved)
        if reserved < roots:
            self._wake()  # roots left Ready: the loop claims them as slots free up
        return execution_id

    def execute(
        self, workflow_name: str, context: Context | Mapping[str, Any] | None = None
    ) -> WorkflowResult:
        """Run a workflow and block until its execution is terminal."""
        # Waiting starts before the execution exists, so an execution that finishes in
        # this process is reported without a first look at the database.
        execution_id = str(uuid.uuid4())
        event = threading.Event()
        with self._waiters_lock:
            self._waiters.setdefault(execution_id, []).append(event)
        try:
            self._start(workflow_name, context, execution_id)
            if not self._manual:
                event.wait(self.config.scheduler_poll_interval_ms / 1000)
        finally:
            self._drop_waiter(execution_id, event)
        return self.wait(execution_id)

    def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowResult:
        """Block until the execution is terminal (``TimeoutError`` after ``timeout`` s)."""
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Executions run by another process finish without a local wake-up; re-read the
        # database at the fallback interval for those.
        fallback = self.config.scheduler_poll_interval_ms / 1000
        while True:
            event = threading.Event()
            with self._waiters_lock:
                self._waiters.setdefault(execution_id, []).append(event)
            try:
                # Retries transient database errors (a dropped connection) with backoff.
                record = self._store.get_execution(execution_id)
            except BaseException:
                self._drop_waiter(execution_id, event)
                raise
            if record is None:
                self._drop_waiter(execution_id, event)
                raise ValueError(f"Execution {execution_id!r} not found")
            if record.status.is_terminal:
                self._drop_waiter(execution_id, event)
                return WorkflowResult.build(record, self._store.list_task_executions(execution_id))
            if self._manual:
                raise RuntimeError(
                    "wait() on a manually driven runner would block forever; "
                    "drive it with cloaca.testing (harness.run_until_idle())"
                )
            remaining = fallback if deadline is None else min(fallback, deadline - time.monotonic())
            if remaining <= 0:
                self._drop_waiter(execution_id, event)
                raise TimeoutError(f"execution {execution_id} not finished after {timeout}s")
            event.wait(remaining)
            self._drop_waiter(execution_id, event)

    def _drop_waiter(self, execution_id: str, event: threading.Event) -> None:
        with self._waiters_lock:
            events = self._waiters.get(execution_id)
            if events and event in events:
                events.remove(event)
                if not events:
                    del self._waiters[execution_id]

    def get_execution(self, execution_id: str) -> WorkflowResult:
        """The current state of an execution (status may be Pending or Running)."""
        self._check_open()
        record = self._store.get_execution(str(execution_id))
        if record is None:
            raise ValueError(f"Execution {execution_id!r} not found")
        return WorkflowResult.build(record, self._store.list_task_executions(record.id))

    def list_executions(
        self,
        workflow_name: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Executions newest first, as dicts."""
        self._check_open()
        accepted = [str(s) for s in ExecutionStatus]
        if status is not None and status not in accepted:
            raise ValueError(f"status {status!r} is not one of {accepted}")
        check_count("limit", limit, optional=False)
        check_count("offset", offset, optional=False)
        from cloaca.clock import rfc3339

        return [
            {
                "id": r.id,
                "workflow_name": r.workflow_name,
                "workflow_version": r.workflow_version,
                "status": str(r.status),
                "created_at": rfc3339(r.created_at),
                "started_at": rfc3339(r.started_at),
                "completed_at": rfc3339(r.completed_at),
                "error_message": r.error_message,
            }
            for r in self._store.list_executions(workflow_name, status, limit, offset)
        ]

    def cancel_execution(self, execution_id: str) -> bool:
        """Cancel a Pending/Running execution: nothing new starts; returns False if it was
        already terminal. Running attempts finish but their results are not planned on."""
        self._check_open()
        if self._store.get_execution(str(execution_id)) is None:
            raise ValueError(f"Execution {execution_id!r} not found")
        return self._end_execution(execution_id, ExecutionStatus.CANCELLED, "cancelled")

    def _end_execution(self, execution_id: str, status: ExecutionStatus, error: str) -> bool:
        """End an execution early (cancel, workflow timeout) and wake whoever waits on it.
        Retried on transient database errors (a deadlock with a concurrent claim among them:
        this takes the execution's lock before its task executions' locks, a claim the
        other way round)."""
        ended = self._store.write_retrying(
            lambda tx: terminate(self._store, tx, execution_id, status, self._clock.now(), error),
            "ending an execution",
        )
        if ended:
            self._executor.cancel_attempts(execution_id)
            self._execution_finished(execution_id, status)
        return ended

    # -- lifecycle --------------------------------------------------------------------------

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop schedulers, wait (bounded) for running tasks, close the database."""
        if self._closed:
            return
        remove_workflow_listener(self._record_workflow)
        self._shutdown_triggers()
        self._stopping.set()
        self._loop.stop()
        self._executor.shutdown(timeout)
        if len(self._executor.unrecorded):
            # A last try for outcomes the database refused so far: what is still unrecorded
            # stays claimed by this runner, which peers re-queue once its row is gone.
            self._executor.unrecorded.retry_due(self._clock.now(), all_of_them=True)
        # Beat until the in-flight attempts are settled: their claims stay ours till then.
        self._heartbeat.stop()
        self._closed = True
        try:
            self._store.remove_runner(self.runner_id)
        except Exception:
            log.exception("removing runner row failed")
        self._aio.close()
        self._store.close()
        with self._waiters_lock:
            waiters = [e for events in self._waiters.values() for e in events]
            self._waiters.clear()
        for event in waiters:
            event.set()
