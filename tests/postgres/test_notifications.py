"""What notifications save on PostgreSQL: while the LISTEN connection is up, other
processes' work and schedule changes are announced, so an idle runner checks the
database's version only as a rare safety net (PostgreSQL only: SQLite has no
notifications and polls its cheap local ``data_version`` instead)."""

from __future__ import annotations

import time
from typing import Any

import cloaca


def wait_until_hearing(runner: cloaca.DefaultRunner) -> None:
    """Wait (bounded) for the runner's LISTEN connection to be up."""
    db: Any = runner._store.db
    deadline = time.monotonic() + 10
    while not db.hearing and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.hearing


def test_an_idle_runner_that_hears_notifications_rarely_polls_the_database(
    pg_schema: tuple[str, str],
) -> None:
    url, schema = pg_schema
    with cloaca.DefaultRunner.with_schema(url, schema) as runner:
        db: Any = runner._store.db
        wait_until_hearing(runner)
        checks = 0
        real = db.data_version

        def counting() -> int:
            nonlocal checks
            checks += 1
            return int(real())

        db.data_version = counting
        time.sleep(1.5)  # fifteen fallback intervals of 100 ms
        assert checks <= 2


def test_a_waiter_hears_an_execution_another_runner_ended(pg_schema: tuple[str, str]) -> None:
    """A waiter whose execution runs elsewhere is woken by the notice of its end, not by
    its fallback re-read (rare while notices are heard): it returns at once, having read
    the execution a couple of times at most."""
    url, schema = pg_schema
    ended: list[float] = []

    @cloaca.task(id="slow")
    def slow(context: cloaca.Context) -> None:
        time.sleep(0.3)
        ended.append(time.monotonic())

    cloaca.workflow("heard_elsewhere", [slow])
    with (
        cloaca.DefaultRunner.with_schema(url, schema) as waiter,
        cloaca.DefaultRunner.with_schema(url, schema) as worker,
    ):
        wait_until_hearing(waiter)
        reads = 0
        real = waiter._store.executions.get_with_tasks

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return real(*args, **kwargs)

        waiter._store.executions.get_with_tasks = counting  # type: ignore[method-assign]
        execution_id = worker.start("heard_elsewhere")
        result = waiter.wait(execution_id, timeout=10)
        returned = time.monotonic()
    assert result.status == "Completed"
    assert len(ended) == 1 and returned - ended[0] < 1.0
    assert reads <= 3
