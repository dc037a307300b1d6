"""What notifications save on PostgreSQL: while the LISTEN connection is up, other
processes' work and schedule changes are announced, so an idle runner checks the
database's version only as a rare safety net (PostgreSQL only: SQLite has no
notifications and polls its cheap local ``data_version`` instead)."""

from __future__ import annotations

import time
from typing import Any

import cloaca


def test_an_idle_runner_that_hears_notifications_rarely_polls_the_database(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    with cloaca.DefaultRunner.with_schema(url, schema) as runner:
        db: Any = runner._store.db
        deadline = time.monotonic() + 10
        while not db.hearing and time.monotonic() < deadline:
            time.sleep(0.01)
        assert db.hearing
        checks = 0
        real = db.data_version

        def counting() -> int:
            nonlocal checks
            checks += 1
            return int(real())

        db.data_version = counting
        time.sleep(1.5)  # fifteen fallback intervals of 100 ms
        assert checks <= 2
