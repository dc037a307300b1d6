"""Two fire transactions of one trigger on PostgreSQL decide the failed-run policy one after
the other: the second waits for the first's schedule row lock, then reads the refire the
first one started and refuses to start another. (PostgreSQL only: SQLite has one writer at
a time, so its fire transactions never overlap.)"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from store_backends import postgres_backend

from cloaca.engine.triggers.failed_runs import RUNS_READ, Suppressed, decide
from cloaca.store.core import Store
from cloaca.store.db import Tx
from cloaca.store.records import ExecutionStatus, NewTask

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HASH = "h1"


def _fire(store: Store, tx: Tx, schedule_id: str, fire_id: str, now: datetime) -> None:
    """What the fire recorder writes for one started execution (concurrent fires allowed)."""
    assert store.triggers.insert_execution(
        tx,
        trigger_execution_id=fire_id,
        schedule_id=schedule_id,
        trigger_name="files",
        context_hash=HASH,
        hold=False,
        now=now,
    )
    store.executions.insert(
        tx,
        execution_id=f"e-{fire_id}",
        workflow_name="wf",
        version="0123456789abcdef",
        context_json="{}",
        tasks=[NewTask("a", 0, 1)],
        now=now,
    )
    store.triggers.link_execution(tx, fire_id, f"e-{fire_id}", now)


def _decide(store: Store, tx: Tx, now: datetime) -> Suppressed | None:
    return decide(
        "backoff",
        store.triggers.context_runs(tx, "files", HASH, RUNS_READ),
        now,
        allow_concurrent=True,
        base=timedelta(seconds=30),
        cap=timedelta(hours=1),
    )


def test_a_second_fire_transaction_sees_the_refire_the_first_one_started() -> None:
    backend = postgres_backend()
    try:
        store = backend.open()
        schedule_id = store.triggers.upsert_schedule("files", "wf", 1000, True, T0)
        with store.write() as tx:  # the first run failed at T0
            _fire(store, tx, schedule_id, "f0", T0)
            store.executions.finish(tx, "e-f0", ExecutionStatus.FAILED, T0, error="bad file")
        now = T0 + timedelta(minutes=5)  # the backoff has passed
        in_fire = threading.Event()
        second: list[Suppressed | None] = []

        def fire_as_b() -> None:
            assert in_fire.wait(10)
            with store.write() as tx:
                store.triggers.schedule_state(tx, schedule_id)  # waits for A's lock
                second.append(_decide(store, tx, now))

        other = threading.Thread(target=fire_as_b)
        other.start()
        try:
            with store.write() as tx:  # A's fire transaction
                store.triggers.schedule_state(tx, schedule_id)
                assert _decide(store, tx, now) is None  # A may refire
                in_fire.set()
                time.sleep(0.3)  # B's transaction starts now and must wait for this commit
                assert not second
                _fire(store, tx, schedule_id, "f1", now)
        finally:
            other.join(10)
        [refused] = second
        assert refused is not None and "its refire e-f1 is still running" in refused.message
    finally:
        backend.close_all()
