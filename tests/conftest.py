"""Shared fixtures: a clean process registry per test, database URLs, a fake-clock harness."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from cloaca import DefaultRunner
from cloaca.testing import Harness
from cloaca.triggers import registry as triggers
from cloaca.workflows.registry import _listeners as workflow_listeners
from cloaca.workflows.registry import clear_registry
from pg_support import drop_schema, fresh_database, require_postgres


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    """Workflows, tasks and triggers registered by one test never leak into the next."""
    clear_registry()
    for spec in triggers.registered_triggers():
        triggers.unregister_trigger(spec.name)
    yield
    clear_registry()
    for spec in triggers.registered_triggers():
        triggers.unregister_trigger(spec.name)


#: The backends every engine, trigger, cron, multiprocess and compat test runs on.
BACKENDS = ("sqlite", "postgres")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test's parametrisation ("sqlite" or "postgres")."""
    return str(request.param)


@pytest.fixture
def db_url(backend: str, tmp_path) -> Iterator[str]:
    """A fresh, empty database on each backend: a SQLite file, or a new PostgreSQL database
    (dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite://{tmp_path / 'cloaca.db'}"
        return
    with fresh_database() as url:
        yield url
        _shut_down_leaked_runners(url)


def _shut_down_leaked_runners(url: str) -> None:
    """A runner a test left open would keep writing (workflow registrations reach every live
    runner) into a database that is about to be dropped: shut it down first."""
    for listener in list(workflow_listeners):
        runner = getattr(listener, "__self__", None)
        if isinstance(runner, DefaultRunner) and runner.database_url == url:
            runner.shutdown(timeout=1)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A fresh SQLite database file, for tests of SQLite-only behaviour (files, locks)."""
    return f"sqlite://{tmp_path / 'cloaca.db'}"


@pytest.fixture
def new_harness(backend: str) -> Iterator[Callable[..., Harness]]:
    """``new_harness(**kwargs)``: a ``Harness(**kwargs)`` on a fresh, empty database of this
    test's backend at every call (in-memory SQLite, or a new PostgreSQL schema), as
    ``Harness()`` alone gives on SQLite; everything is closed and dropped afterwards."""
    with ExitStack() as stack:

        def make(**kwargs: Any) -> Harness:
            url = ":memory:" if backend == "sqlite" else stack.enter_context(fresh_database())
            made = Harness(url, **kwargs)
            stack.callback(made.close)
            return made

        yield make


@pytest.fixture
def harness(backend: str, db_url: str) -> Iterator[Harness]:
    """A manually driven runner on a fake clock, on each backend (in-memory SQLite, or a
    fresh PostgreSQL database)."""
    h = Harness(":memory:" if backend == "sqlite" else db_url)
    yield h
    h.close()


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a fresh PostgreSQL schema for one test, dropped afterwards."""
    url = require_postgres()
    schema = f"cloaca_test_{uuid.uuid4().hex[:12]}"
    yield url, schema
    drop_schema(url, schema)
