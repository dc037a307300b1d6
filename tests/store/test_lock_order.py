"""Lock order on PostgreSQL: a claim never waits for an execution row another transaction
holds. A cancel locks the execution and then its tasks; a claim locks a task and then marks
its execution Running. Waiting in both would deadlock. (PostgreSQL only: SQLite has one
writer at a time and no row locks.)"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import psycopg
from store_backends import postgres_backend

from cloaca.store.records import ExecutionStatus, NewTask, TaskStatus
from pg_support import require_postgres

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_claim_does_not_wait_for_an_execution_row_a_cancel_holds() -> None:
    backend = postgres_backend()
    try:
        store = backend.open()
        with store.write() as tx:
            store.executions.insert(
                tx,
                execution_id="e1",
                workflow_name="wf",
                version="0123456789abcdef",
                context_json="{}",
                tasks=[NewTask("a", 0, 3)],
                now=T0,
            )
            store.tasks.set_status(tx, "e1", "a", TaskStatus.READY, T0)
        held = threading.Event()
        release = threading.Event()

        def hold_execution_row() -> None:  # what terminate() does first
            with psycopg.connect(require_postgres(), autocommit=True) as conn, conn.transaction():
                conn.execute(f'SET LOCAL search_path TO "{backend.location}"')
                conn.execute("SELECT id FROM cloaca_executions WHERE id = 'e1' FOR UPDATE")
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold_execution_row)
        holder.start()
        try:
            assert held.wait(10)
            started = time.monotonic()
            [claim] = store.tasks.claim_ready("r1", ["wf"], 10, T0)
            waited = time.monotonic() - started
        finally:
            release.set()
            holder.join()
        assert claim.task_id == "a"
        assert waited < 2.0  # it did not sit behind the held row lock
        record = store.executions.get("e1")
        assert record is not None and record.status is ExecutionStatus.PENDING  # skipped
        # Finishing an execution a claim skipped still records when it started.
        with store.write() as tx:
            assert store.executions.finish(tx, "e1", ExecutionStatus.COMPLETED, T0, "{}")
        record = store.executions.get("e1")
        assert record is not None and record.started_at == T0
    finally:
        backend.close_all()
