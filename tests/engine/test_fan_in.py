"""Fan-in under concurrency: when a join's dependencies finish at the same moment, exactly
one of their transactions makes the join Ready, on both backends.

Under PostgreSQL's READ COMMITTED each finishing transaction used to see the other
dependency still Running, so neither planned the join and the execution stayed Running
forever. Every planning step now locks the execution first.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig
from cloaca.engine import planner
from cloaca.engine.shape import Shape
from cloaca.runner.database import open_store
from cloaca.store.core import Store
from cloaca.store.records import ClaimedTask, TaskStatus

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def diamond() -> cloaca.Workflow:
    """a -> (b, c) -> d, registered as "diamond"."""
    with cloaca.WorkflowBuilder("diamond") as builder:

        @cloaca.task()
        def a(context: Context) -> None:
            context.set("a", 1)

        @cloaca.task(dependencies=[a])
        def b(context: Context) -> None:
            context.set("b", 1)

        @cloaca.task(dependencies=[a])
        def c(context: Context) -> None:
            context.set("c", 1)

        @cloaca.task(dependencies=[b, c])
        def d(context: Context) -> None:
            context.set("d", 1)

    return builder.build()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    opened.migrate()
    yield opened
    opened.close()


def finish_and_plan(store: Store, shape: Shape, claimed: ClaimedTask) -> None:
    """What the executor does when an attempt succeeds, in one transaction."""
    with store.write() as tx:
        assert store.tasks.finish_attempt(
            tx, claimed, "r1", status=TaskStatus.COMPLETED, now=NOW, output_json="{}"
        )
        planner.advance(
            store, tx, shape, claimed.execution_id, claimed.task_id, TaskStatus.COMPLETED, NOW
        )


def test_two_dependencies_finishing_at_once_make_the_join_ready(store: Store) -> None:
    shape = Shape.from_definition(diamond().definition())
    execution_id = str(uuid.uuid4())
    with store.write() as tx:
        planner.create(store, tx, shape, execution_id, "{}", NOW)
    [a] = store.tasks.claim_ready("r1", ["diamond"], 10, NOW)
    finish_and_plan(store, shape, a)
    claimed = {c.task_id: c for c in store.tasks.claim_ready("r1", ["diamond"], 10, NOW)}
    assert set(claimed) == {"b", "c"}

    # Force the interleaving: b's transaction has planned but not committed when c's
    # transaction plans. Without the execution lock, c's planning sees b still Running and
    # commits at once; b then commits having seen c Running, and nobody readies d.
    b_planned, b_may_commit = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def finish_b() -> None:
        try:
            with store.write() as tx:
                store.tasks.finish_attempt(
                    tx, claimed["b"], "r1", status=TaskStatus.COMPLETED, now=NOW, output_json="{}"
                )
                planner.advance(store, tx, shape, execution_id, "b", TaskStatus.COMPLETED, NOW)
                b_planned.set()
                assert b_may_commit.wait(10)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            b_planned.set()

    def finish_c() -> None:
        try:
            finish_and_plan(store, shape, claimed["c"])
        except BaseException as exc:
            errors.append(exc)

    first = threading.Thread(target=finish_b)
    first.start()
    assert b_planned.wait(10)
    second = threading.Thread(target=finish_c)
    second.start()
    second.join(1.0)  # returns at once without the lock; blocks on it with the lock
    b_may_commit.set()
    first.join(10)
    second.join(10)
    assert not errors and not first.is_alive() and not second.is_alive()

    with store.read() as tx:
        assert store.tasks.statuses(tx, execution_id)["d"] is TaskStatus.READY
    [d] = store.tasks.claim_ready("r1", ["diamond"], 10, NOW)
    finish_and_plan(store, shape, d)
    record = store.executions.get(execution_id)
    assert record is not None and str(record.status) == "Completed"


def test_a_hundred_concurrent_diamonds_all_complete(db_url: str) -> None:
    diamond()
    config = DefaultRunnerConfig(max_concurrent_tasks=8)
    with DefaultRunner(db_url, config) as runner:
        ids = [runner.start("diamond") for _ in range(100)]
        results = [runner.wait(i, timeout=60) for i in ids]
    assert [r.status for r in results] == ["Completed"] * 100
    assert all(r.final_context.get("d") == 1 for r in results)
