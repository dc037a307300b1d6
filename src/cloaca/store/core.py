"""Store: every persistence operation of the engine, written once, in query groups.

Each group is a noun with verb methods over one :class:`~cloaca.store.db.Database`:
``store.workflows``, ``store.executions``, ``store.tasks``, ``store.runners``,
``store.triggers``, ``store.cron``. Methods whose first parameter is ``tx`` run inside a
transaction the caller opened with :meth:`Store.write` / :meth:`Store.read`, so the engine
can compose a state change with its side records in ONE transaction (DESIGN: one
transaction per state change). Methods without ``tx`` open their own transaction.
Timestamps go in as aware datetimes and are stored as UTC text; contexts go in and come out
as JSON text (the engine owns (de)serialisation so a context is encoded once per hop).

The Store also answers to each group method's older flat name (``store.claim_ready`` is
``store.tasks.claim_ready``) while call sites move to the groups: see :class:`_Flat`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import MethodType
from typing import Concatenate, Generic, ParamSpec, TypeVar, cast, overload

from cloaca.store import retry
from cloaca.store.admin_reads import AdminReads
from cloaca.store.cron import CronQueries
from cloaca.store.db import Database, Tx
from cloaca.store.executions import ExecutionQueries
from cloaca.store.group import Notices
from cloaca.store.migrate import migrate
from cloaca.store.overview import OverviewReads
from cloaca.store.runners import RunnerQueries
from cloaca.store.tasks import TaskQueries
from cloaca.store.triggers import TriggerQueries
from cloaca.store.workflows import WorkflowQueries

T = TypeVar("T")
G = TypeVar("G")
P = ParamSpec("P")
R = TypeVar("R")


class _Flat(Generic[G, P, R]):
    """A group method under its older flat Store name: ``store.claim_ready(...)`` calls
    ``store.tasks.claim_ready(...)``. Typed like the group method, so mypy checks the flat
    call sites too; a test instance may still replace one (``monkeypatch.setattr``)."""

    def __init__(self, group: Callable[[Store], G], method: Callable[Concatenate[G, P], R]) -> None:
        self._group = group
        self._method = method
        self.__doc__ = method.__doc__  # help(Store) shows what the flat name does

    @overload
    def __get__(self, store: None, owner: type[Store]) -> _Flat[G, P, R]: ...

    @overload
    def __get__(self, store: Store, owner: type[Store]) -> Callable[P, R]: ...

    def __get__(self, store: Store | None, owner: type[Store]) -> _Flat[G, P, R] | Callable[P, R]:
        if store is None:
            return self
        return cast(Callable[P, R], MethodType(self._method, self._group(store)))


class Store(AdminReads, OverviewReads):
    """Persistence operations over one :class:`~cloaca.store.db.Database`, in groups."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._notices = Notices(db)
        self.workflows = WorkflowQueries(db, self._notices)
        self.executions = ExecutionQueries(db, self._notices)
        self.tasks = TaskQueries(db, self._notices)
        self.runners = RunnerQueries(db, self._notices)
        self.triggers = TriggerQueries(db, self._notices)
        self.cron = CronQueries(db, self._notices)

    @property
    def origin(self) -> str:
        """Who writes through this Store (a runner id): ``ready`` notifications carry it, so
        a runner's own listener can ignore the work it made Ready itself."""
        return self._notices.origin

    @origin.setter
    def origin(self, runner_id: str) -> None:
        self._notices.origin = runner_id

    # -- plumbing ---------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create or upgrade the schema; returns the schema version (safe to race)."""
        return migrate(self.db)

    def write(self) -> AbstractContextManager[Tx]:
        """Open a write transaction for composed operations."""
        return self.db.write()

    def read(self) -> AbstractContextManager[Tx]:
        """Open a read transaction for composed reads."""
        return self.db.read()

    def write_retrying(self, fn: Callable[[Tx], T], what: str) -> T:
        """Run ``fn(tx)`` in a write transaction and return its result; when the database
        fails transiently (:class:`~cloaca.store.db.TransientStoreError`) the WHOLE
        transaction is run again, with backoff, on a fresh connection. ``fn`` must be safe
        to run again after a rollback (engine writes are conditional, so they are)."""
        return retry.write_retrying(self.db, fn, what)

    def read_retrying(self, fn: Callable[[Tx], T], what: str) -> T:
        """Like :meth:`write_retrying`, for a read transaction."""
        return retry.read_retrying(self.db, fn, what)

    def data_version(self) -> int:
        """Changes whenever another connection commits (cheap cross-process change probe)."""
        return self.db.data_version()

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    # -- flat names of the group methods (see _Flat) ----------------------------------------

    record_workflow = _Flat(lambda s: s.workflows, WorkflowQueries.record)
    get_workflow_definition = _Flat(lambda s: s.workflows, WorkflowQueries.definition)
    workflow_version_definition = _Flat(lambda s: s.workflows, WorkflowQueries.version_definition)

    insert_execution = _Flat(lambda s: s.executions, ExecutionQueries.insert)
    execution_context = _Flat(lambda s: s.executions, ExecutionQueries.context)
    lock_execution = _Flat(lambda s: s.executions, ExecutionQueries.lock)
    lock_counting_finished = _Flat(lambda s: s.executions, ExecutionQueries.lock_counting_finished)
    count_finished_tasks = _Flat(lambda s: s.executions, ExecutionQueries.count_finished)
    recount_remaining = _Flat(lambda s: s.executions, ExecutionQueries.recount_remaining)
    execution_status = _Flat(lambda s: s.executions, ExecutionQueries.status)
    finish_execution = _Flat(lambda s: s.executions, ExecutionQueries.finish)
    execution_statuses = _Flat(lambda s: s.executions, ExecutionQueries.statuses)
    get_execution = _Flat(lambda s: s.executions, ExecutionQueries.get)
    list_executions = _Flat(lambda s: s.executions, ExecutionQueries.list_newest)
    executions_older_than = _Flat(lambda s: s.executions, ExecutionQueries.older_than)
    oldest_active_created_at = _Flat(
        lambda s: s.executions, ExecutionQueries.oldest_active_created_at
    )
    stalled_executions = _Flat(lambda s: s.executions, ExecutionQueries.stalled)

    claim_ready = _Flat(lambda s: s.tasks, TaskQueries.claim_ready)
    claim_ready_in = _Flat(lambda s: s.tasks, TaskQueries.claim_ready_in)
    next_ready_at = _Flat(lambda s: s.tasks, TaskQueries.next_ready_at)
    finish_attempt = _Flat(lambda s: s.tasks, TaskQueries.finish_attempt)
    set_task_status = _Flat(lambda s: s.tasks, TaskQueries.set_status)
    set_sub_status = _Flat(lambda s: s.tasks, TaskQueries.set_sub_status)
    cancel_pending_tasks = _Flat(lambda s: s.tasks, TaskQueries.cancel_pending)
    task_statuses = _Flat(lambda s: s.tasks, TaskQueries.statuses)
    task_outputs = _Flat(lambda s: s.tasks, TaskQueries.outputs)
    task_results = _Flat(lambda s: s.tasks, TaskQueries.results)
    list_task_executions = _Flat(lambda s: s.tasks, TaskQueries.list_for)

    register_runner = _Flat(lambda s: s.runners, RunnerQueries.register)
    heartbeat = _Flat(lambda s: s.runners, RunnerQueries.heartbeat)
    remove_runner = _Flat(lambda s: s.runners, RunnerQueries.remove)
    requeue_stale = _Flat(lambda s: s.runners, RunnerQueries.requeue_stale)

    upsert_trigger_schedule = _Flat(lambda s: s.triggers, TriggerQueries.upsert_schedule)
    get_trigger_schedule = _Flat(lambda s: s.triggers, TriggerQueries.get_schedule)
    list_trigger_schedules = _Flat(lambda s: s.triggers, TriggerQueries.list_schedules)
    set_trigger_schedule_enabled = _Flat(lambda s: s.triggers, TriggerQueries.set_enabled)
    active_trigger_schedules = _Flat(lambda s: s.triggers, TriggerQueries.active_schedules)
    claim_trigger_polls = _Flat(lambda s: s.triggers, TriggerQueries.claim_polls)
    extend_trigger_leases = _Flat(lambda s: s.triggers, TriggerQueries.extend_leases)
    end_polls = _Flat(lambda s: s.triggers, TriggerQueries.end_polls)
    trigger_schedule_state = _Flat(lambda s: s.triggers, TriggerQueries.schedule_state)
    release_trigger_leases = _Flat(lambda s: s.triggers, TriggerQueries.release_leases)
    insert_trigger_execution = _Flat(lambda s: s.triggers, TriggerQueries.insert_execution)
    trigger_dedup_holder = _Flat(lambda s: s.triggers, TriggerQueries.dedup_holder)
    link_trigger_execution = _Flat(lambda s: s.triggers, TriggerQueries.link_execution)
    trigger_execution_history = _Flat(lambda s: s.triggers, TriggerQueries.execution_history)
    insert_trigger_evaluations = _Flat(lambda s: s.triggers, TriggerQueries.insert_evaluations)
    prune_trigger_evaluations = _Flat(lambda s: s.triggers, TriggerQueries.prune_evaluations)
    trigger_evaluations = _Flat(lambda s: s.triggers, TriggerQueries.evaluations)

    cron_register = _Flat(lambda s: s.cron, CronQueries.register)
    cron_get_in = _Flat(lambda s: s.cron, CronQueries.get_in)
    cron_get = _Flat(lambda s: s.cron, CronQueries.get)
    cron_find_plain = _Flat(lambda s: s.cron, CronQueries.find_plain)
    cron_list = _Flat(lambda s: s.cron, CronQueries.list_schedules)
    cron_set_expression = _Flat(lambda s: s.cron, CronQueries.set_expression)
    cron_set_enabled = _Flat(lambda s: s.cron, CronQueries.set_enabled)
    cron_delete = _Flat(lambda s: s.cron, CronQueries.delete)
    cron_due_workflows = _Flat(lambda s: s.cron, CronQueries.due_workflows)
    cron_due = _Flat(lambda s: s.cron, CronQueries.due)
    cron_next_run_at = _Flat(lambda s: s.cron, CronQueries.next_run_at)
    cron_claim_slot = _Flat(lambda s: s.cron, CronQueries.claim_slot)
    cron_link_execution = _Flat(lambda s: s.cron, CronQueries.link_execution)
    cron_advance = _Flat(lambda s: s.cron, CronQueries.advance)
    cron_history = _Flat(lambda s: s.cron, CronQueries.history)
    cron_stats = _Flat(lambda s: s.cron, CronQueries.stats)
    cron_lost_candidates = _Flat(lambda s: s.cron, CronQueries.lost_candidates)
    cron_mark_recovery = _Flat(lambda s: s.cron, CronQueries.mark_recovery)
