"""Store: every persistence operation of the engine, written once, in query groups.

Each group is a noun with verb methods over one :class:`~cloaca.store.db.Database`:
``store.workflows``, ``store.executions``, ``store.tasks``, ``store.runners``,
``store.triggers``, ``store.cron``, ``store.retention``. Methods whose first parameter is
``tx`` run inside a transaction the caller opened with :meth:`Store.write` /
:meth:`Store.read`, so the engine can compose a state change with its side records in ONE
transaction (DESIGN: one transaction per state change). Methods without ``tx`` open their
own transaction.
Timestamps go in as aware datetimes and are stored as UTC text; contexts go in and come out
as JSON text (the engine owns (de)serialisation so a context is encoded once per hop).
Two read-only groups serve management tools: ``store.admin`` (workflow definitions, runner
rows) and ``store.overview`` (the dashboard's pages and the metrics).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from cloaca.store import retry
from cloaca.store.admin_reads import AdminReads
from cloaca.store.cron import CronQueries
from cloaca.store.db import Database, Tx
from cloaca.store.executions import ExecutionQueries
from cloaca.store.group import Notices
from cloaca.store.migrate import migrate
from cloaca.store.overview import OverviewReads
from cloaca.store.retention import RetentionQueries
from cloaca.store.runners import RunnerQueries
from cloaca.store.tasks import TaskQueries
from cloaca.store.triggers import TriggerQueries
from cloaca.store.workflows import WorkflowQueries

T = TypeVar("T")


class Store:
    """Persistence operations over one :class:`~cloaca.store.db.Database`, in groups."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._notices = Notices(db)
        self.workflows = WorkflowQueries(db, self._notices)
        self.admin = AdminReads(db)
        self.overview = OverviewReads(db)
        self.executions = ExecutionQueries(db, self._notices)
        self.tasks = TaskQueries(db, self._notices)
        self.runners = RunnerQueries(db, self._notices)
        self.triggers = TriggerQueries(db, self._notices)
        self.cron = CronQueries(db, self._notices)
        self.retention = RetentionQueries(db, self._notices)

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
