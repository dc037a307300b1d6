"""Executions: start, wait, read, list and cancel (the runner's and the management
client's, one implementation).

The service works on the database alone. What it tells the engine of this process (new
work to claim, an execution it ended) goes through a :class:`LocalEngine`; a management
client has none and passes :data:`NO_LOCAL_ENGINE`, so its starts are picked up by the
workers of other processes (NOTIFY on PostgreSQL, ``data_version`` polling on SQLite).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from cloaca.clock import Clock, rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context, check_context_size
from cloaca.engine import planner
from cloaca.engine.executor import Claim, TaskSlots, root_claims
from cloaca.engine.planner import terminate
from cloaca.engine.shape import Shape, local_roots
from cloaca.errors import OperationError, ValidationError, WrongTypeError
from cloaca.names import check_name
from cloaca.paging import check_count
from cloaca.runner.results import WorkflowResult
from cloaca.runner.waiters import Waiters
from cloaca.store.core import Store
from cloaca.store.db import HEARD_SAFETY_NET_SECONDS, Tx
from cloaca.store.records import ExecutionRecord, ExecutionStatus
from cloaca.workflows.registry import get_workflow
from cloaca.workflows.workflow import Workflow


class LocalEngine(TaskSlots, Protocol):
    """The engine of this process, as the services see it (its task slots too, for the
    claim in a start's transaction)."""

    waiters: Waiters

    @property
    def waits_block(self) -> bool:
        """True when nothing runs executions on its own (an engine driven by hand):
        waiting for one to end would block forever."""
        ...

    def execution_created(self, now: datetime) -> None:
        """An execution was created here (its timeout is a reason to wake up)."""

    def ended(self, execution_id: str, status: ExecutionStatus) -> None:
        """An execution was ended early here: stop its attempts, wake its waiters."""


class NoLocalEngine:
    """The :class:`LocalEngine` of a process that executes nothing (a management client):
    it claims nothing, and its waiters are never woken (waiting polls the database)."""

    waits_block = False

    def __init__(self) -> None:
        self.waiters = Waiters()

    def roots_left_ready(self) -> None:
        pass

    def execution_created(self, now: datetime) -> None:
        pass

    def ended(self, execution_id: str, status: ExecutionStatus) -> None:
        self.waiters.finished(execution_id)

    def reserve(self, wanted: int) -> int:
        return 0

    def adopt(self, claimed: list[Claim], reserved: int) -> None:
        pass


class Shapes:
    """Workflow name -> the planner's :class:`Shape`: the workflow registered in this
    process, else the definition a runner recorded in the database."""

    def __init__(self, store: Store, shape_of: Callable[[Workflow], Shape]) -> None:
        self._store = store
        self._shape_of = shape_of

    def __call__(self, workflow_name: str) -> Shape:
        check_name("workflow name", workflow_name)
        wf = get_workflow(workflow_name)
        if wf is not None:
            return self._shape_of(wf)
        definition = self._store.workflows.definition(workflow_name)
        if definition is None:
            raise ValidationError(
                f"Workflow {workflow_name!r} not found: register it in this process "
                f"(WorkflowBuilder / cloaca.workflow) or in a runner on the same database"
            )
        return Shape.from_definition(definition)


def shape_of_definition(wf: Workflow) -> Shape:
    """A registered workflow's shape, uncached (for processes that plan rarely)."""
    return Shape.from_definition(wf.definition())


def context_json(context: Context | Mapping[str, Any] | None) -> str:
    """Encode an execution's input context (a Context, a plain dict or None)."""
    if context is None:
        return "{}"
    if isinstance(context, Context):
        return json.dumps(context._raw())
    if isinstance(context, Mapping):
        return json.dumps(Context(dict(context))._raw())
    raise WrongTypeError(f"context must be a Context, a dict or None, got {type(context).__name__}")


class Executions:
    """Start, wait for, read, list and cancel executions."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: DefaultRunnerConfig,
        shapes: Shapes,
        engine: LocalEngine,
        check_open: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self._shapes = shapes
        self._engine = engine
        self._check_open = check_open

    def create(
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
        self._engine.execution_created(now)
        return execution_id

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
        shape = self._shapes(workflow_name)
        text = check_context_size(
            context_json(shape.bind_params(context)),
            self._config.max_context_bytes,
            f"the input context of workflow {workflow_name!r}",
        )
        # When this process runs the workflow and has free slots, the transaction that
        # creates the execution also claims its roots: a one-task execution then costs two
        # commits in all (this one and its outcome's).
        roots, local = shape.roots, local_roots(shape)
        engine = self._engine
        reserved = engine.reserve(local) if local else 0
        claimed: list[Claim] = []
        try:
            with self._store.write() as tx:
                now = self._clock.now()
                # Roots this transaction claims need no notification to other runners.
                self.create(
                    tx,
                    shape,
                    text,
                    now,
                    execution_id,
                    notify_ready=reserved < roots,
                    running=reserved > 0,
                )
                if reserved:
                    # Claimed as this process's runner (the Store's origin); the claimed
                    # rows come back with the COMMIT. A root's input is the execution's.
                    later = self._store.tasks.claim_execution_later(
                        tx, self._store.origin, execution_id, reserved, now
                    )
            if reserved:
                claimed = root_claims(later, text)
        finally:
            engine.adopt(claimed, reserved)
        if reserved < roots:
            engine.roots_left_ready()
        return execution_id

    def execute(
        self, workflow_name: str, context: Context | Mapping[str, Any] | None = None
    ) -> WorkflowResult:
        """Run a workflow and block until its execution is terminal."""
        # Waiting starts before the execution exists, so an execution that finishes in
        # this process is reported without a first look at the database.
        # The transaction that ends it reads it too (with its COMMIT): no read here then.
        execution_id = str(uuid.uuid4())
        waiters = self._engine.waiters
        expected = self._store.executions.expected
        expected.expect(execution_id)
        try:
            event = waiters.add(execution_id)
            try:
                self._start(workflow_name, context, execution_id)
                if not self._engine.waits_block:
                    event.wait(self._config.scheduler_poll_interval_ms / 1000)
            finally:
                waiters.drop(execution_id, event)
            return self.wait(execution_id)
        finally:
            expected.forget(execution_id)

    def wait(self, execution_id: str, timeout: float | None = None) -> WorkflowResult:
        """Block until the execution is terminal (``TimeoutError`` after ``timeout`` s)."""
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        # Executions run by another process finish without a local wake-up; re-read the
        # database at the fallback interval for those (rarely while its notices are heard:
        # one wakes this waiter, and a listener that reconnects wakes every waiter).
        interval = self._config.scheduler_poll_interval_ms / 1000
        waiters = self._engine.waiters
        expected = self._store.executions.expected
        expected.expect(execution_id)
        try:
            while True:
                event = waiters.add(execution_id)
                try:
                    result = self._terminal(execution_id)
                    if result is not None:
                        return result
                    fallback = interval
                    if self._store.db.hearing:
                        fallback = max(interval, HEARD_SAFETY_NET_SECONDS)
                    remaining = (
                        fallback if deadline is None else min(fallback, deadline - time.monotonic())
                    )
                    if remaining <= 0:
                        raise TimeoutError(
                            f"execution {execution_id} not finished after {timeout}s"
                        )
                    event.wait(remaining)
                finally:
                    waiters.drop(execution_id, event)
        finally:
            expected.forget(execution_id)

    def _terminal(self, execution_id: str) -> WorkflowResult | None:
        # The notice that woke this thread can come before the ending transaction's thread
        # returns from its COMMIT: wait for that a moment rather than read.
        found = self._store.executions.finished_result(
            execution_id, self._config.scheduler_poll_interval_ms / 1000
        )
        if found is not None:  # ended by a transaction of this process, which read it
            return WorkflowResult.build(*found)
        # Retries transient database errors (a dropped connection) with backoff.
        record, tasks = self._store.executions.get_with_tasks(
            execution_id, tasks_unless_active=True
        )
        if record is None:
            raise ValidationError(f"Execution {execution_id!r} not found")
        if record.status.is_terminal:
            return WorkflowResult.build(record, tasks)
        if self._engine.waits_block:
            raise OperationError(
                "wait() on a manually driven runner would block forever; "
                "drive it with cloaca.testing (harness.run_until_idle())"
            )
        return None

    def get_execution(self, execution_id: str) -> WorkflowResult:
        """The current state of an execution (status may be Pending or Running)."""
        self._check_open()
        record, tasks = self._store.executions.get_with_tasks(str(execution_id))
        if record is None:
            raise ValidationError(f"Execution {execution_id!r} not found")
        return WorkflowResult.build(record, tasks)

    def list_executions(
        self,
        workflow_name: str | None = None,
        status: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Executions newest first, as dicts."""
        self._check_open()
        check_status(status)
        check_count("limit", limit, optional=False)
        check_count("offset", offset, optional=False)
        records = self._store.executions.list_newest(workflow_name, status, limit, offset)
        return [execution_dict(r) for r in records]

    def cancel_execution(self, execution_id: str) -> bool:
        """Cancel a Pending/Running execution: nothing new starts; returns False if it was
        already terminal. Running attempts finish but their results are not planned on."""
        self._check_open()
        if self._store.executions.get(str(execution_id)) is None:
            raise ValidationError(f"Execution {execution_id!r} not found")
        return self.end(execution_id, ExecutionStatus.CANCELLED, "cancelled")

    def end(self, execution_id: str, status: ExecutionStatus, error: str) -> bool:
        """End an execution early (cancel, workflow timeout) and wake whoever waits on it.
        Retried on transient database errors (a deadlock with a concurrent claim among them:
        this takes the execution's lock before its task executions' locks, a claim the
        other way round)."""
        ended = self._store.write_retrying(
            lambda tx: terminate(self._store, tx, execution_id, status, self._clock.now(), error),
            "ending an execution",
        )
        if ended:
            self._engine.ended(execution_id, status)
        return ended


def check_status(status: str | None) -> None:
    """``ValueError`` unless ``status`` is None or an execution status."""
    accepted = [str(s) for s in ExecutionStatus]
    if status is not None and status not in accepted:
        raise ValidationError(f"status {status!r} is not one of {accepted}")


def execution_dict(r: ExecutionRecord) -> dict[str, Any]:
    """An execution as ``list_executions`` returns it."""
    return {
        "id": r.id,
        "workflow_name": r.workflow_name,
        "workflow_version": r.workflow_version,
        "status": str(r.status),
        "created_at": rfc3339(r.created_at),
        "started_at": rfc3339(r.started_at),
        "completed_at": rfc3339(r.completed_at),
        "error_message": r.error_message,
    }
