"""Shared fixtures: a clean process registry per test, database URLs, a fake-clock harness."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from cloaca import triggers
from cloaca.testing import Harness
from cloaca.workflow import clear_registry
from pg_support import drop_schema, require_postgres


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


@pytest.fixture
def db_url(tmp_path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite://{tmp_path / 'cloaca.db'}"


@pytest.fixture
def harness() -> Iterator[Harness]:
    """A manually driven runner on a fake clock and an in-memory database."""
    h = Harness()
    yield h
    h.close()


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """``(url, schema)``: a fresh PostgreSQL schema for one test, dropped afterwards."""
    url = require_postgres()
    schema = f"cloaca_test_{uuid.uuid4().hex[:12]}"
    yield url, schema
    drop_schema(url, schema)
