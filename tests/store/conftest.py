"""Fixtures of the store tests: an empty database per test on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_backends import BACKENDS, Backend, postgres_backend, sqlite_backend

from cloaca.store.core import Store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """An empty database per test, on each backend in ``BACKENDS``."""
    if request.param == "sqlite":
        made = sqlite_backend(tmp_path)
    elif request.param == "postgres":
        made = postgres_backend()
    else:  # pragma: no cover - a backend listed without a branch here
        raise AssertionError(f"no fixture branch for backend {request.param!r}")
    yield made
    made.close_all()


@pytest.fixture
def store(backend: Backend) -> Store:
    """A migrated Store on the backend's database."""
    return backend.open()
