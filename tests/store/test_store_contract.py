"""The Store contract (docstrings of ``cloaca.store.core.Store``), run on every backend.

Each test gets a :class:`~store_backends.Backend` from the parametrized ``backend`` fixture
(``conftest.py``): a way to open fresh Store connections on one empty database, plus a raw
side channel to arrange and inspect rows the Store has no method for.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from store_backends import Backend

from cloaca.clock import to_db_time
from cloaca.engine import outcomes
from cloaca.engine.shape import Shape
from cloaca.store.core import Store
from cloaca.store.db import NotACloacaDatabase, SchemaTooNew, load_migrations, load_queries
from cloaca.store.migrate import VERSION_TABLE, current_version, latest_version
from cloaca.store.records import (
    ClaimedTask,
    ExecutionStatus,
    FinalOutcome,
    FinishedTask,
    NewTask,
    TaskStatus,
)
from pg_support import POSTGRES_URL

T0 = datetime(2026, 1, 1, tzinfo=UTC)


# -- helpers ---------------------------------------------------------------------------------

_counter = iter(range(1_000_000))


def make_execution(
    store: Store,
    workflow: str = "wf",
    tasks: tuple[str, ...] = ("a",),
    ready: Mapping[str, datetime] | None = None,
    now: datetime = T0,
    max_attempts: int = 3,
) -> str:
    """Insert an execution of ``tasks`` (all NotStarted) and make ``ready`` ones Ready."""
    execution_id = f"exec-{next(_counter)}"
    with store.write() as tx:
        store.executions.insert(
            tx,
            execution_id=execution_id,
            workflow_name=workflow,
            version="0123456789abcdef",
            context_json='{"in": 1}',
            tasks=[NewTask(t, i, max_attempts) for i, t in enumerate(tasks)],
            now=now,
        )
        for task_id, at in (ready or {}).items():
            store.tasks.set_status(tx, execution_id, task_id, TaskStatus.READY, at)
    return execution_id


def finish_one(
    store: Store,
    tx: Any,
    claimed: ClaimedTask,
    runner: str,
    status: TaskStatus,
    output_json: str | None = None,
    error: str | None = None,
) -> FinishedTask:
    """``finish_tasks`` of one final outcome at T0."""
    final = FinalOutcome(claimed, status, T0, output_json, error)
    (found,) = store.executions.finish_tasks(tx, runner, [final])
    return found


def task_row(store: Store, execution_id: str, task_id: str) -> Any:
    """The task execution record of ``task_id``."""
    (found,) = [t for t in store.tasks.list_for(execution_id) if t.task_id == task_id]
    return found


def finish(store: Store, claimed: ClaimedTask, runner: str, **kwargs: Any) -> bool:
    """finish_attempt in its own transaction."""
    kwargs.setdefault("status", TaskStatus.COMPLETED)
    kwargs.setdefault("now", T0)
    with store.write() as tx:
        return store.tasks.finish_attempt(tx, claimed, runner, **kwargs)


# -- migrations and schema version ------------------------------------------------------------


def test_migrate_returns_latest_version_and_is_idempotent(backend: Backend) -> None:
    store = backend.open(migrate=False)
    latest = latest_version(backend.dialect)
    assert latest >= 1
    assert store.migrate() == latest
    assert store.migrate() == latest
    assert backend.open().migrate() == latest  # another connection, already migrated
    assert current_version(store.db) == latest
    rows = backend.raw(f"SELECT version FROM {VERSION_TABLE} ORDER BY version", {})
    assert [r[0] for r in rows] == [n for n, _, _ in load_migrations(backend.dialect)]


def test_empty_database_has_schema_version_zero(backend: Backend) -> None:
    store = backend.open(migrate=False)
    assert current_version(store.db) == 0


def test_migrations_race_safely_across_threads(backend: Backend) -> None:
    stores = [backend.open(migrate=False) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[int] = []
    errors: list[BaseException] = []

    def run(store: Store) -> None:
        barrier.wait(timeout=10)
        try:
            results.append(store.migrate())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert results == [latest_version(backend.dialect)] * len(stores)
    rows = backend.raw(f"SELECT COUNT(*) FROM {VERSION_TABLE}", {})
    assert rows[0][0] == len(load_migrations(backend.dialect))


_MIGRATE_CHILD = """
import sys
from cloaca.store.core import Store
dialect, location, url = sys.argv[1:4]
if dialect == "sqlite":
    from cloaca.store.drivers.sqlite import SqliteDatabase
    db = SqliteDatabase(location)
else:
    from cloaca.store.drivers.postgres import PostgresDatabase
    db = PostgresDatabase(url, schema=location, pool_size=1)
sys.stdin.readline()  # wait for the parent's "go" so the processes really race
print(Store(db).migrate())
"""


def test_migrations_race_safely_across_processes(backend: Backend) -> None:
    args = [backend.dialect, backend.location, POSTGRES_URL]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_CHILD, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=30) for proc in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [str(latest_version(backend.dialect))] * 3
    rows = backend.raw(f"SELECT COUNT(*) FROM {VERSION_TABLE}", {})
    assert rows[0][0] == len(load_migrations(backend.dialect))


def test_database_with_foreign_tables_is_refused_untouched(backend: Backend) -> None:
    backend.raw("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)", {})
    backend.raw("INSERT INTO users (id, name) VALUES (1, 'ada')", {})
    store = backend.open(migrate=False)
    with pytest.raises(NotACloacaDatabase, match="not a cloaca database") as info:
        store.migrate()
    assert "users" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert backend.tables() == {"users"}
    assert backend.raw("SELECT name FROM users", {}) == [("ada",)]


def test_newer_schema_version_is_refused(backend: Backend) -> None:
    backend.open()
    latest = latest_version(backend.dialect)
    backend.raw(
        f"INSERT INTO {VERSION_TABLE} (version, applied_at) VALUES (:v, :at)",
        {"v": latest + 1, "at": to_db_time(T0)},
    )
    store = backend.open(migrate=False)
    with pytest.raises(SchemaTooNew) as info:
        store.migrate()
    message = str(info.value)
    assert str(latest + 1) in message and str(latest) in message and "newer" in message
    assert isinstance(info.value, ValueError)


# -- claims -------------------------------------------------------------------------------------


def test_claim_takes_only_ready_rows_of_listed_workflows(store: Store) -> None:
    e1 = make_execution(store, "wf", ("a", "b"), ready={"a": T0})
    e2 = make_execution(store, "other", ("x",), ready={"x": T0})
    claimed = store.tasks.claim_ready("r1", ["wf"], 10, T0)
    assert [(c.execution_id, c.task_id, c.attempt) for c in claimed] == [(e1, "a", 1)]
    assert claimed[0].workflow_name == "wf" and claimed[0].max_attempts == 3
    a = task_row(store, e1, "a")
    assert (a.status, a.claimed_by, a.attempt, a.started_at) == (TaskStatus.RUNNING, "r1", 1, T0)
    assert task_row(store, e1, "b").status is TaskStatus.NOT_STARTED
    assert task_row(store, e2, "x").status is TaskStatus.READY
    execution = store.executions.get(e1)
    assert execution is not None
    assert (execution.status, execution.started_at) == (ExecutionStatus.RUNNING, T0)
    other = store.executions.get(e2)
    assert other is not None and other.status is ExecutionStatus.PENDING
    # A Running row is not claimed twice, by this runner or another.
    assert store.tasks.claim_ready("r2", ["wf"], 10, T0) == []
    assert [c.task_id for c in store.tasks.claim_ready("r2", ["wf", "other"], 10, T0)] == ["x"]


def test_claim_with_no_workflows_claims_nothing(store: Store) -> None:
    make_execution(store, ready={"a": T0})
    assert store.tasks.claim_ready("r1", [], 10, T0) == []


def test_claim_respects_ready_at(store: Store) -> None:
    later = T0 + timedelta(seconds=10)
    e = make_execution(store, ready={"a": later})
    assert store.tasks.next_ready_at(["wf"]) == later
    assert store.tasks.next_ready_at(["other"]) is None
    assert store.tasks.claim_ready("r1", ["wf"], 10, later - timedelta(microseconds=1)) == []
    assert [c.execution_id for c in store.tasks.claim_ready("r1", ["wf"], 10, later)] == [e]
    assert store.tasks.next_ready_at(["wf"]) is None


def test_claim_respects_limit_oldest_ready_first(store: Store) -> None:
    ids = [
        make_execution(store, ready={"a": T0 + timedelta(seconds=5 - i)}) for i in range(5)
    ]  # the last inserted is the oldest ready
    now = T0 + timedelta(seconds=10)
    batches = [store.tasks.claim_ready("r1", ["wf"], 2, now) for _ in range(4)]
    assert [len(b) for b in batches] == [2, 2, 1, 0]
    # Oldest ready first across batches (order inside one batch is not part of the contract).
    oldest_first = list(reversed(ids))
    claimed = [{c.execution_id for c in b} for b in batches]
    assert claimed == [set(oldest_first[0:2]), set(oldest_first[2:4]), {oldest_first[4]}, set()]


def test_finish_attempt_only_for_the_owning_runner_and_attempt(store: Store) -> None:
    e = make_execution(store, ready={"a": T0})
    (claim,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    assert not finish(store, claim, "r2")  # another runner
    stale = dataclasses.replace(claim, attempt=claim.attempt + 1)
    assert not finish(store, stale, "r1")  # another attempt
    assert task_row(store, e, "a").status is TaskStatus.RUNNING
    assert finish(store, claim, "r1", output_json='{"out": 1}')
    row = task_row(store, e, "a")
    assert (row.status, row.claimed_by, row.completed_at) == (TaskStatus.COMPLETED, None, T0)
    with store.read() as tx:
        assert store.tasks.outputs(tx, e, ["a"]) == {"a": '{"out": 1}'}
    assert not finish(store, claim, "r1", status=TaskStatus.FAILED)  # no longer Running
    assert task_row(store, e, "a").status is TaskStatus.COMPLETED


def test_finish_task_counts_the_owned_outcome_and_reads_what_ending_needs(store: Store) -> None:
    e = make_execution(store, tasks=("a", "b"), ready={"a": T0, "b": T0})
    a, b = store.tasks.claim_ready("r1", ["wf"], 2, T0)
    with store.write() as tx:
        lost = finish_one(store, tx, a, "r2", TaskStatus.COMPLETED)
        assert lost == FinishedTask(False)  # another runner's claim: nothing counted
        first = finish_one(store, tx, a, "r1", TaskStatus.COMPLETED, output_json='{"a": 1}')
    assert first == FinishedTask(True, ExecutionStatus.RUNNING, 1, None)
    with store.write() as tx:
        last = finish_one(store, tx, b, "r1", TaskStatus.FAILED, error="boom")
    assert last.inputs == (
        '{"in": 1}',
        {"a": (TaskStatus.COMPLETED, '{"a": 1}', None), "b": (TaskStatus.FAILED, None, "boom")},
    )
    assert (last.execution, last.remaining) == (ExecutionStatus.RUNNING, 0)
    assert task_row(store, e, "b").status is TaskStatus.FAILED


def test_finish_tasks_counts_each_outcome_as_if_recorded_alone_in_order(store: Store) -> None:
    """Several final outcomes of one execution in one call (one round trip on
    PostgreSQL): each finds what it would have found recorded alone at its place in the
    order; the last one's count reaches zero and it reads every output."""
    make_execution(store, tasks=("a", "b"), ready={"a": T0, "b": T0})
    a, b = store.tasks.claim_ready("r1", ["wf"], 2, T0)
    finals = [
        FinalOutcome(a, TaskStatus.COMPLETED, T0, '{"a": 1}'),
        FinalOutcome(b, TaskStatus.FAILED, T0, None, "boom"),
    ]
    with store.write() as tx:
        first, last = store.executions.finish_tasks(tx, "r1", finals)
    assert first == FinishedTask(True, ExecutionStatus.RUNNING, 1, None)
    assert (last.owned, last.execution, last.remaining) == (True, ExecutionStatus.RUNNING, 0)
    assert last.inputs == (
        '{"in": 1}',
        {"a": (TaskStatus.COMPLETED, '{"a": 1}', None), "b": (TaskStatus.FAILED, None, "boom")},
    )


def _fan_out_shape() -> Shape:
    """a -> (b, c): both dependants wait for a alone (PostgreSQL plans them in the statement
    that records a's outcome)."""
    deps: dict[str, tuple[str, ...]] = {"a": (), "b": ("a",), "c": ("a",)}
    return Shape(
        name="wf",
        version="0123456789abcdef",
        order=("a", "b", "c"),
        deps=deps,
        rules={},
        max_attempts={"a": 3, "b": 3, "c": 3},
        dependents={"a": ("b", "c")},
        position={"a": 0, "b": 1, "c": 2},
    )


def _record(store: Store, claimed: ClaimedTask, runner: str) -> outcomes.Written:
    shape = _fan_out_shape()
    outcome = outcomes.Outcome(claimed, shape, TaskStatus.COMPLETED, T0, '{"a": 1}')
    with store.write() as tx:
        (written,) = outcomes.write_all(store, tx, runner, [outcome])
    return written.settled()


def test_a_completed_task_plans_the_dependants_that_wait_for_it_alone(store: Store) -> None:
    """Recording a Completed outcome makes the dependants that wait only for it Ready,
    counts it, and says the runner owned it: on every backend, whichever way it writes."""
    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    assert _record(store, a, "r1") == outcomes.Written(True, None, None, True)
    assert [task_row(store, e, t).status for t in "abc"] == [
        TaskStatus.COMPLETED,
        TaskStatus.READY,
        TaskStatus.READY,
    ]
    with store.write() as tx:
        assert store.executions.lock_counting_finished(tx, e, 0) == (ExecutionStatus.RUNNING, 2)


def test_a_lost_claim_plans_nothing(store: Store) -> None:
    """The outcome of an attempt this runner no longer owns writes nothing: its
    dependants stay NotStarted (their input would be an output never recorded)."""
    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    assert _record(store, a, "r2").owned is False
    assert [task_row(store, e, t).status for t in "abc"] == [
        TaskStatus.RUNNING,
        TaskStatus.NOT_STARTED,
        TaskStatus.NOT_STARTED,
    ]


def test_an_ended_execution_plans_nothing_after_its_running_task(store: Store) -> None:
    """An execution cancelled while a task ran: the task's outcome is recorded, nothing
    after it becomes Ready."""
    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    with store.write() as tx:  # as a cancel does, without touching the running task
        store.executions.lock(tx, e)
        store.executions.finish(tx, e, ExecutionStatus.CANCELLED, T0, None, "cancelled")
        tx.send(
            "task_set_status",
            {
                "execution_id": e,
                "task_id": "b",
                "status": "Skipped",
                "error": "cancelled",
                "ready_at": None,
                "completed_at": to_db_time(T0),
            },
        )
    assert _record(store, a, "r1").owned is True
    assert [task_row(store, e, t).status for t in "abc"] == [
        TaskStatus.COMPLETED,
        TaskStatus.SKIPPED,
        TaskStatus.NOT_STARTED,
    ]


def _one_task_shape() -> Shape:
    return Shape(
        name="wf",
        version="0123456789abcdef",
        order=("a",),
        deps={"a": ()},
        rules={},
        max_attempts={"a": 3},
        position={"a": 0},
    )


def _record_last(
    store: Store, claimed: ClaimedTask, runner: str, **kwargs: Any
) -> outcomes.Written:
    kwargs.setdefault("status", TaskStatus.COMPLETED)
    outcome = outcomes.Outcome(claimed, _one_task_shape(), now=T0, **kwargs)
    with store.write() as tx:
        (written,) = outcomes.write_all(store, tx, runner, [outcome])
    return written.settled()


def assert_completed_with(store: Store, execution_id: str, final_context: str) -> None:
    """The execution Completed with ``final_context``, and a waiter here gets it from the
    transaction that ended it."""
    record = store.executions.get(execution_id)
    assert record is not None and record.status is ExecutionStatus.COMPLETED
    assert record.final_context == final_context
    found = store.executions.finished_result(execution_id)
    assert found is not None and found[0].status is ExecutionStatus.COMPLETED


def test_the_only_task_ends_its_execution_with_its_outcome(store: Store) -> None:
    """Recording the outcome of an execution's only task ends the execution with the
    input and the output merged (PostgreSQL sends it all with the COMMIT); a waiter
    here gets the ended execution from that transaction."""
    e = make_execution(store, ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    store.executions.expected.expect(e)
    written = _record_last(store, a, "r1", output='{"in": 2, "out": {"x": 1}}')
    assert written == outcomes.Written(True, ExecutionStatus.COMPLETED, None, False)
    assert_completed_with(store, e, '{"in": 2, "out": {"x": 1}}')


def test_the_only_task_failing_fails_its_execution(store: Store) -> None:
    e = make_execution(store, ready={"a": T0}, max_attempts=1)
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    written = _record_last(store, a, "r1", status=TaskStatus.FAILED, error="boom")
    assert written.ended is ExecutionStatus.FAILED
    record = store.executions.get(e)
    assert record is not None and record.status is ExecutionStatus.FAILED
    assert record.error_message == "Task 'a' failed: boom"


def test_the_only_task_with_a_lost_claim_ends_nothing(store: Store) -> None:
    """Another runner's claim: nothing is recorded, the execution keeps running, and a
    waiter here is not handed a result (it reads the execution again)."""
    e = make_execution(store, ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    store.executions.expected.expect(e)
    written = _record_last(store, a, "r2", output="{}")
    assert (written.owned, written.ended) == (False, None)
    record = store.executions.get(e)
    assert record is not None and record.status is ExecutionStatus.RUNNING
    assert task_row(store, e, "a").status is TaskStatus.RUNNING
    assert store.executions.finished_result(e) is None


def test_the_only_task_of_a_cancelled_execution_leaves_it_cancelled(store: Store) -> None:
    e = make_execution(store, ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    with store.write() as tx:
        store.executions.lock(tx, e)
        store.executions.finish(tx, e, ExecutionStatus.CANCELLED, T0, None, "cancelled")
    written = _record_last(store, a, "r1", output="{}")
    assert (written.owned, written.ended) == (True, None)
    record = store.executions.get(e)
    assert record is not None and record.status is ExecutionStatus.CANCELLED
    assert record.error_message == "cancelled"


def _chain_shape() -> Shape:
    """a -> b: b waits for a alone."""
    return Shape(
        name="wf",
        version="0123456789abcdef",
        order=("a", "b"),
        deps={"a": (), "b": ("a",)},
        rules={},
        max_attempts={"a": 3, "b": 3},
        dependents={"a": ("b",)},
        position={"a": 0, "b": 1},
    )


def _record_handing_on(
    store: Store, claimed: ClaimedTask, runner: str, shape: Shape, output: str = '{"a": 1}'
) -> outcomes.Written:
    """Record a Completed outcome whose attempt's slot may go to its dependant."""
    outcome = outcomes.Outcome(claimed, shape, TaskStatus.COMPLETED, T0, output)
    with store.write() as tx:
        (written,) = outcomes.write_all(store, tx, runner, [outcome], [True])
    return written.settled()


def test_a_chain_task_hands_its_slot_to_its_next_task(store: Store) -> None:
    """A finishing attempt whose slot may go on: the task that waits for it alone is either
    claimed for the same runner by the recording statement (PostgreSQL: Running, its first
    attempt, reported in ``claimed``, and nobody needs telling of Ready work) or left Ready
    for a claim (the other dialects). Never both, never lost."""
    e = make_execution(store, tasks=("a", "b"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    written = _record_handing_on(store, a, "r1", _chain_shape())
    b = task_row(store, e, "b")
    assert written.owned is True
    if store.executions.finishes_with_commit:
        assert written.claimed == (ClaimedTask(b.id, e, "wf", "0123456789abcdef", "b", 1, 3),)
        assert (b.status, b.claimed_by, b.attempt) == (TaskStatus.RUNNING, "r1", 1)
        assert written.may_ready is False
        assert store.tasks.claim_ready("r2", ["wf"], 5, T0) == []
    else:
        assert (written.claimed, written.may_ready) == ((), True)
        assert b.status is TaskStatus.READY
        (taken,) = store.tasks.claim_ready("r1", ["wf"], 5, T0)
        assert taken.task_id == "b"
    with store.write() as tx:
        assert store.executions.lock_counting_finished(tx, e, 0) == (ExecutionStatus.RUNNING, 1)


def test_a_task_with_several_dependants_leaves_them_ready(store: Store) -> None:
    """One slot cannot run two tasks: a fan-out's dependants become Ready for a claim."""
    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    written = _record_handing_on(store, a, "r1", _fan_out_shape())
    assert (written.owned, written.may_ready, written.claimed) == (True, True, ())
    assert [task_row(store, e, t).status for t in "bc"] == [TaskStatus.READY] * 2


def test_a_lost_claim_hands_nothing_on(store: Store) -> None:
    e = make_execution(store, tasks=("a", "b"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    written = _record_handing_on(store, a, "r2", _chain_shape())
    assert (written.owned, written.claimed) == (False, ())
    b = task_row(store, e, "b")
    assert (b.status, b.claimed_by, b.attempt) == (TaskStatus.NOT_STARTED, None, 0)


def test_an_ended_execution_hands_nothing_on(store: Store) -> None:
    e = make_execution(store, tasks=("a", "b"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    with store.write() as tx:
        store.executions.lock(tx, e)
        store.executions.finish(tx, e, ExecutionStatus.CANCELLED, T0, None, "cancelled")
    written = _record_handing_on(store, a, "r1", _chain_shape())
    assert (written.owned, written.claimed) == (True, ())
    assert task_row(store, e, "b").status is TaskStatus.NOT_STARTED


def _join_shape() -> Shape:
    """(a, b) -> c: c waits for both."""
    return Shape(
        name="wf",
        version="0123456789abcdef",
        order=("a", "b", "c"),
        deps={"a": (), "b": (), "c": ("a", "b")},
        rules={},
        max_attempts={"a": 3, "b": 3, "c": 3},
        dependents={"a": ("c",), "b": ("c",)},
        position={"a": 0, "b": 1, "c": 2},
    )


@pytest.mark.parametrize("known", [True, False], ids=["known_here", "read"])
def test_the_last_branch_of_a_fan_in_plans_its_join(store: Store, known: bool) -> None:
    """The join becomes Ready (or, where the slot is handed on, claimed) when its last
    dependency completes, whether the others' outcomes are known here (nothing read) or
    must be read; before that it stays NotStarted."""
    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0, "b": T0})
    a, b = store.tasks.claim_ready("r1", ["wf"], 2, T0)
    first = _record_handing_on(store, a, "r1", _join_shape())
    assert (first.owned, first.claimed) == (True, ())
    assert task_row(store, e, "c").status is TaskStatus.NOT_STARTED
    if known:
        store.executions.completed_here(e, "a", '{"a": 1}')
    last = _record_handing_on(store, b, "r1", _join_shape(), output='{"b": 2}')
    c = task_row(store, e, "c")
    if last.claimed:
        assert known and store.executions.finishes_with_commit
        assert last.claimed == (ClaimedTask(c.id, e, "wf", "0123456789abcdef", "c", 1, 3),)
        assert (c.status, c.claimed_by) == (TaskStatus.RUNNING, "r1")
    else:
        assert not (known and store.executions.finishes_with_commit)
        assert c.status is TaskStatus.READY
    with store.write() as tx:
        assert store.executions.lock_counting_finished(tx, e, 0) == (ExecutionStatus.RUNNING, 1)


def _chain_at_its_last_task(store: Store, known: bool) -> tuple[str, ClaimedTask]:
    """An execution of a -> b with a Completed (``known``: by this process) and b claimed
    by r1; returns its id and b's claim."""
    e = make_execution(store, tasks=("a", "b"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    with store.write() as tx:
        store.tasks.finish_attempt(
            tx, a, "r1", status=TaskStatus.COMPLETED, now=T0, output_json='{"a": 1}'
        )
        store.executions.count_finished(tx, e, 1)
        store.tasks.set_status(tx, e, "b", TaskStatus.READY, T0)
    if known:
        store.executions.completed_here(e, "a", '{"a": 1}')
    (b,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    return e, b


def _record_chain_end(store: Store, claimed: ClaimedTask, runner: str) -> outcomes.Written:
    outcome = outcomes.Outcome(claimed, _chain_shape(), TaskStatus.COMPLETED, T0, '{"b": 2}')
    with store.write() as tx:
        (written,) = outcomes.write_all(store, tx, runner, [outcome])
    return written.settled()


@pytest.mark.parametrize("known", [True, False], ids=["known_here", "read"])
def test_the_last_task_of_a_chain_ends_its_execution(store: Store, known: bool) -> None:
    """The last task's outcome ends the execution with the input and every output merged,
    whether the other tasks' outputs are known here (recorded by this process: nothing
    is read, and PostgreSQL sends it all with the COMMIT) or must be read."""
    e, b = _chain_at_its_last_task(store, known)
    store.executions.expected.expect(e)
    trips = getattr(store.db, "round_trips", 0)
    written = _record_chain_end(store, b, "r1")
    assert written.ended is ExecutionStatus.COMPLETED
    if known and store.executions.finishes_with_commit:
        assert getattr(store.db, "round_trips", 0) - trips == 1
    assert_completed_with(store, e, '{"in": 1, "a": 1, "b": 2}')


def test_the_last_task_of_a_chain_with_a_lost_claim_ends_nothing(store: Store) -> None:
    e, b = _chain_at_its_last_task(store, known=True)
    store.executions.expected.expect(e)
    written = _record_chain_end(store, b, "r2")
    assert (written.owned, written.ended) == (False, None)
    record = store.executions.get(e)
    assert record is not None and record.status is ExecutionStatus.RUNNING
    assert task_row(store, e, "b").status is TaskStatus.RUNNING
    assert store.executions.finished_result(e) is None


def test_claimed_branches_read_their_shared_input_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Branches of a fan-out claimed together, each waiting for the same source that
    finished in another transaction: their inputs come from one read of its output, not
    one read per branch, and each branch gets a dict of its own."""
    from cloaca.engine.inputs import committed_inputs

    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0})
    (a,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    with store.write() as tx:
        store.tasks.finish_attempt(
            tx, a, "r1", status=TaskStatus.COMPLETED, now=T0, output_json='{"a": 1}'
        )
        store.tasks.set_status(tx, e, "b", TaskStatus.READY, T0)
        store.tasks.set_status(tx, e, "c", TaskStatus.READY, T0)
    claimed = store.tasks.claim_ready("r1", ["wf"], 2, T0)
    reads: list[list[str]] = []
    real = store.tasks.outputs

    def counting(tx: Any, execution_id: str, task_ids: Any) -> Any:
        reads.append(list(task_ids))
        return real(tx, execution_id, task_ids)

    monkeypatch.setattr(store.tasks, "outputs", counting)
    shape = _fan_out_shape()
    inputs = committed_inputs(store, claimed, {("wf", shape.version): shape}, {})
    assert inputs == [{"a": 1}, {"a": 1}]
    assert inputs[0] is not inputs[1]
    assert reads == [["a"]]


def test_finish_task_sees_a_task_that_finished_while_it_waited_for_the_lock(
    store: Store,
) -> None:
    """The last two tasks finish at the same moment: the one that waited for the
    execution's lock must see the other's committed outcome when it ends the execution."""
    make_execution(store, tasks=("a", "b"), ready={"a": T0, "b": T0})
    a, b = store.tasks.claim_ready("r1", ["wf"], 2, T0)
    found: list[FinishedTask] = []
    holder = store.write()
    tx = holder.__enter__()
    try:
        finish_one(store, tx, a, "r1", TaskStatus.COMPLETED, output_json='{"a": 1}')

        def finish_b() -> None:
            with store.write() as other:
                found.append(
                    finish_one(store, other, b, "r1", TaskStatus.COMPLETED, output_json="{}")
                )

        waiter = threading.Thread(target=finish_b)
        waiter.start()
        waiter.join(0.3)  # b's statement waits for the lock (PostgreSQL) or the write lock
    finally:
        holder.__exit__(None, None, None)
    waiter.join(10)
    (last,) = found
    assert last.remaining == 0 and last.inputs is not None
    assert last.inputs[1]["a"] == (TaskStatus.COMPLETED, '{"a": 1}', None)


def test_finish_attempt_refuses_an_attempt_taken_over(store: Store) -> None:
    store.runners.register("dead", "host", 1, T0)
    store.runners.register("alive", "host", 2, T0 + timedelta(seconds=100))
    e = make_execution(store, ready={"a": T0})
    (first,) = store.tasks.claim_ready("dead", ["wf"], 1, T0)
    now = T0 + timedelta(seconds=100)
    assert store.runners.requeue_stale("alive", now - timedelta(seconds=60), now) == 1
    (second,) = store.tasks.claim_ready("alive", ["wf"], 1, now)
    assert second.attempt == first.attempt + 1
    assert not finish(store, first, "dead")  # the late result of the first attempt
    assert finish(store, second, "alive", status=TaskStatus.FAILED, error="boom", now=now)
    row = task_row(store, e, "a")
    assert (row.status, row.error, row.attempt) == (TaskStatus.FAILED, "boom", 2)


def test_finish_attempt_ready_schedules_a_retry(store: Store) -> None:
    e = make_execution(store, ready={"a": T0})
    (claim,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    retry_at = T0 + timedelta(seconds=30)
    assert finish(store, claim, "r1", status=TaskStatus.READY, error="flaky", retry_at=retry_at)
    row = task_row(store, e, "a")
    assert (row.status, row.ready_at, row.error, row.completed_at) == (
        TaskStatus.READY,
        retry_at,
        "flaky",
        None,
    )
    assert store.tasks.claim_ready("r1", ["wf"], 1, retry_at - timedelta(seconds=1)) == []
    (again,) = store.tasks.claim_ready("r1", ["wf"], 1, retry_at)
    assert again.attempt == 2


def test_sub_status_is_set_and_cleared_for_the_running_attempt(store: Store) -> None:
    e = make_execution(store, ready={"a": T0})
    (claim,) = store.tasks.claim_ready("r1", ["wf"], 1, T0)
    store.tasks.set_sub_status(claim, "Deferred")
    assert task_row(store, e, "a").sub_status == "Deferred"
    store.tasks.set_sub_status(claim, None)
    assert task_row(store, e, "a").sub_status is None
    store.tasks.set_sub_status(claim, "Deferred")
    assert finish(store, claim, "r1")
    assert task_row(store, e, "a").sub_status is None


# -- executions ---------------------------------------------------------------------------------


def _hold(backend: Backend, execution_id: str, name: str) -> None:
    backend.raw(
        "INSERT INTO cloaca_trigger_executions (id, schedule_id, trigger_name, context_hash,"
        " workflow_execution_id, holds_dedup, started_at, created_at)"
        " VALUES (:id, 's', :name, 'h', :e, 1, :t, :t)",
        {"id": f"te-{name}", "name": name, "e": execution_id, "t": to_db_time(T0)},
    )


def _holds(backend: Backend) -> dict[str, tuple[Any, Any]]:
    rows = backend.raw(
        "SELECT trigger_name, holds_dedup, completed_at FROM cloaca_trigger_executions", {}
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def test_finish_execution_releases_trigger_holds_in_the_same_transaction(
    backend: Backend, store: Store
) -> None:
    e1 = make_execution(store)
    e2 = make_execution(store)
    _hold(backend, e1, "t1")
    _hold(backend, e2, "t2")
    end = T0 + timedelta(seconds=5)

    # A transaction that fails after finish_execution keeps both the execution and the hold.
    with pytest.raises(RuntimeError, match="abort"), store.write() as tx:
        assert store.executions.finish(tx, e1, ExecutionStatus.COMPLETED, end, "{}")
        raise RuntimeError("abort")
    record = store.executions.get(e1)
    assert record is not None and record.status is ExecutionStatus.PENDING
    assert _holds(backend)["t1"] == (1, None)

    with store.write() as tx:
        assert store.executions.finish(tx, e1, ExecutionStatus.FAILED, end, '{"x": 1}', "bad")
    record = store.executions.get(e1)
    assert record is not None
    assert (record.status, record.final_context, record.error_message, record.completed_at) == (
        ExecutionStatus.FAILED,
        '{"x": 1}',
        "bad",
        end,
    )
    assert _holds(backend) == {"t1": (None, to_db_time(end)), "t2": (1, None)}
    with store.write() as tx:  # already terminal: refused, nothing changes
        assert not store.executions.finish(tx, e1, ExecutionStatus.COMPLETED, end)
    record = store.executions.get(e1)
    assert record is not None and record.status is ExecutionStatus.FAILED


def test_cancel_pending_tasks_skips_only_unstarted_ones(store: Store) -> None:
    e = make_execution(store, tasks=("a", "b", "c"), ready={"a": T0, "b": T0})
    store.tasks.claim_ready("r1", ["wf"], 1, T0)  # a is Running
    with store.write() as tx:
        store.tasks.cancel_pending(tx, e, T0)
    statuses = {t.task_id: t.status for t in store.tasks.list_for(e)}
    assert statuses == {"a": TaskStatus.RUNNING, "b": TaskStatus.SKIPPED, "c": TaskStatus.SKIPPED}


# -- runners and stale claims -------------------------------------------------------------------


def test_requeue_stale_takes_over_only_silent_runners_work(store: Store) -> None:
    store.runners.register("silent", "h", 1, T0)
    store.runners.register("busy", "h", 2, T0)
    e1 = make_execution(store, ready={"a": T0})
    e2 = make_execution(store, ready={"a": T0})
    store.tasks.claim_ready("silent", ["wf"], 1, T0)
    store.tasks.claim_ready("busy", ["wf"], 1, T0)
    now = T0 + timedelta(seconds=90)
    assert store.runners.heartbeat("busy", now)
    assert store.runners.requeue_stale("me", now - timedelta(seconds=60), now) == 1
    row = task_row(store, e1, "a")
    assert (row.status, row.claimed_by, row.ready_at) == (TaskStatus.READY, None, now)
    assert task_row(store, e2, "a").status is TaskStatus.RUNNING
    assert not store.runners.heartbeat("silent", now)  # its row is gone: it was declared dead
    assert store.runners.heartbeat("busy", now)
    assert store.runners.requeue_stale("me", now - timedelta(seconds=60), now) == 0


def test_requeue_stale_never_takes_the_callers_own_work(store: Store) -> None:
    store.runners.register("me", "h", 1, T0)
    e = make_execution(store, ready={"a": T0})
    store.tasks.claim_ready("me", ["wf"], 1, T0)
    far = T0 + timedelta(days=1)
    assert store.runners.requeue_stale("me", far, far) == 0
    assert task_row(store, e, "a").status is TaskStatus.RUNNING
    assert store.runners.heartbeat("me", far)


def test_removed_runner_work_is_requeued(store: Store) -> None:
    store.runners.register("gone", "h", 1, T0)
    e = make_execution(store, ready={"a": T0})
    store.tasks.claim_ready("gone", ["wf"], 1, T0)
    store.runners.remove("gone")
    assert store.runners.requeue_stale("me", T0, T0) == 1
    assert task_row(store, e, "a").status is TaskStatus.READY


# -- listing ------------------------------------------------------------------------------------


def test_list_executions_newest_first_with_filters_and_paging(store: Store) -> None:
    ids = []
    for i in range(5):
        workflow = "wf" if i % 2 == 0 else "other"
        ids.append(make_execution(store, workflow, now=T0 + timedelta(seconds=i)))
    tie = [make_execution(store, "wf", now=T0 + timedelta(seconds=9)) for _ in range(2)]
    newest_first = [tie[1], tie[0], *reversed(ids)]
    assert [r.id for r in store.executions.list_newest(None, None, 100, 0)] == newest_first
    pages = [store.executions.list_newest(None, None, 3, offset) for offset in (0, 3, 6, 9)]
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert [r.id for p in pages for r in p] == newest_first
    assert [r.id for r in store.executions.list_newest("other", None, 100, 0)] == [ids[3], ids[1]]
    with store.write() as tx:
        store.executions.finish(tx, ids[2], ExecutionStatus.COMPLETED, T0)
    assert [r.id for r in store.executions.list_newest(None, "Completed", 100, 0)] == [ids[2]]
    assert [r.id for r in store.executions.list_newest("other", "Completed", 100, 0)] == []
    assert store.executions.list_newest(None, None, 0, 0) == []
    assert store.executions.get("missing") is None


def test_record_workflow_upserts_by_name(store: Store) -> None:
    definition = {"name": "wf", "version": "v1", "tasks": []}
    assert store.workflows.definition("wf") is None
    store.workflows.record("wf", "v1", definition, T0)
    store.workflows.record("wf", "v1", definition, T0)
    assert store.workflows.definition("wf") == definition
    store.workflows.record("wf", "v2", {**definition, "version": "v2"}, T0)
    assert store.workflows.definition("wf") == {**definition, "version": "v2"}


# -- dialects in step ---------------------------------------------------------------------------

_SQL_ROOT = resources.files("cloaca.store") / "sql"
_DIALECTS = sorted(p.name for p in _SQL_ROOT.iterdir() if p.is_dir() and p.name[0] != "_")
_SRC = Path(__file__).resolve().parents[2] / "src" / "cloaca"
_QUERY_CALL = re.compile(r"""\.(?:one|all|run|run_many)\(\s*["'](\w+)["']""")


def _queries_used_by_code() -> set[str]:
    used: set[str] = set()
    for path in _SRC.rglob("*.py"):
        used.update(_QUERY_CALL.findall(path.read_text(encoding="utf-8")))
    return used


#: Queries a driver runs for a capability only its database has (LISTEN/NOTIFY, the WAL
#: position); the Store's own queries exist in every dialect.
_DRIVER_ONLY = {"postgres": {"notify", "data_version"}}
#: Queries one dialect has alone: PostgreSQL folds several statements into one (a
#: data-modifying CTE) or sends many rows as one JSON parameter; SQLite runs the separate
#: statements, one row at a time where that is cheaper for it.
_ONLY = {
    "postgres": {
        "task_finish_counting",
        "execution_finish_counted",
        "trigger_release_holds_ended",
        "task_claim_ready_marking",
        "trigger_evaluation_insert",
    },
    "sqlite": {"task_claim_ready", "execution_mark_running", "trigger_evaluation_insert_one"},
}


def test_every_named_query_exists_in_every_dialect() -> None:
    assert "sqlite" in _DIALECTS
    names = {
        dialect: set(load_queries(dialect))
        - _DRIVER_ONLY.get(dialect, set())
        - _ONLY.get(dialect, set())
        for dialect in _DIALECTS
    }
    union = set().union(*names.values())
    for dialect, found in names.items():
        assert union - found == set(), f"sql/{dialect} lacks queries {sorted(union - found)}"
    used = _queries_used_by_code()
    assert "task_claim_ready" in used  # the scan itself works
    for dialect, found in names.items():
        missing = used - found - set().union(*_DRIVER_ONLY.values(), *_ONLY.values())
        assert missing == set(), f"code uses queries missing in sql/{dialect}: {missing}"


def test_every_dialect_has_the_same_numbered_migrations() -> None:
    numbered = {d: [(n, name) for n, name, _ in load_migrations(d)] for d in _DIALECTS}
    first = numbered[_DIALECTS[0]]
    numbers = [n for n, _ in first]
    assert numbers == list(range(1, len(numbers) + 1))  # 1, 2, 3, ... with no gap
    assert all(m == first for m in numbered.values()), numbered


def test_an_execution_with_its_tasks_is_one_read_and_skips_tasks_while_active(
    store: Store,
) -> None:
    e = make_execution(store, tasks=("a", "b"), ready={"a": T0})
    record, tasks = store.executions.get_with_tasks(e)
    assert record is not None and record.id == e
    assert [t.task_id for t in tasks] == ["a", "b"]
    # A waiter asks for the tasks only once the execution is terminal.
    assert store.executions.get_with_tasks(e, tasks_unless_active=True) == (record, [])
    with store.write() as tx:
        store.executions.finish(tx, e, ExecutionStatus.FAILED, T0, "{}", "bad")
    record, tasks = store.executions.get_with_tasks(e, tasks_unless_active=True)
    assert record is not None and record.status is ExecutionStatus.FAILED
    assert [t.task_id for t in tasks] == ["a", "b"]
    assert store.executions.get_with_tasks("missing") == (None, [])
