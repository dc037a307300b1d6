"""Dashboard fixtures: one database per backend filled by a real runner for the whole
session (pages only read it), and a headless Chromium (Debian's package) for the
browser tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from dashboard_support import Filled, Site, dashboard, fill
from pg_support import fresh_database

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def filled_databases(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[str, Filled]]]:
    """backend → (url, what was made), filled lazily on first use and kept for the session."""
    with ExitStack() as stack:

        class Lazy(dict[str, tuple[str, Filled]]):
            def __missing__(self, backend: str) -> tuple[str, Filled]:
                if backend == "sqlite":
                    url = f"sqlite://{tmp_path_factory.mktemp('dash') / 'cloaca.db'}"
                else:
                    url = stack.enter_context(fresh_database())
                self[backend] = (url, fill(url))
                return self[backend]

        yield Lazy()


@pytest.fixture
def filled(filled_databases: dict[str, tuple[str, Filled]], backend: str) -> tuple[str, Filled]:
    """(url, what was made) of the session's filled database of this backend. Tests that
    use it only read: actions run on their own database."""
    return filled_databases[backend]


@pytest.fixture(scope="session")
def served_sites(
    filled_databases: dict[str, tuple[str, Filled]],
) -> Iterator[dict[str, Site]]:
    """backend → the session's dashboard over its filled database, started on first use."""
    with ExitStack() as stack:

        class Lazy(dict[str, Site]):
            def __missing__(self, backend: str) -> Site:
                url, made = filled_databases[backend]
                client, base = stack.enter_context(dashboard(url))
                self[backend] = Site(client, base, made)
                return self[backend]

        yield Lazy()


@pytest.fixture
def site(served_sites: dict[str, Site], backend: str) -> Site:
    """The dashboard over this backend's filled database (shared: read-only tests only)."""
    return served_sites[backend]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """A headless Chromium driven by Playwright (never downloads a browser). Module-scoped:
    Playwright's sync API keeps an event loop running in the main thread while it is
    open, which later tests calling ``asyncio.run`` must not find."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (make .venv/.installed-dev does it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()
