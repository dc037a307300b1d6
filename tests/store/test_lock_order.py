"""Lock order on PostgreSQL: a claim never waits for an execution row another transaction
holds. A cancel locks the execution and then its tasks; a claim locks a task and then marks
its execution Running. Waiting in both would deadlock. (PostgreSQL only: SQLite has one
writer at a time and no row locks.)"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from store_backends import postgres_backend

from cloaca.store.records import ExecutionStatus, NewTask, TaskStatus
from cloaca.store.trigger_records import ClaimedPoll
from cloaca.store.triggers import PollClaim, PollEnd, won_polls
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


def test_a_claim_of_an_expired_lease_waits_for_the_fire_that_still_holds_it() -> None:
    """Runner A's poll outlived its lease; its fire transaction has checked it still owns
    the lease when runner B claims the expired lease. B must wait for A's fire to commit
    and then poll from the cursor A's fire moved, never from the old cursor (which would
    fire the same item twice)."""
    backend = postgres_backend()
    try:
        store = backend.open()
        schedule_id = store.triggers.upsert_schedule("items", "wf", 1000, True, T0)
        due, lease_end, later = T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=5)
        a_claims = [PollClaim(schedule_id, due, lease_end)]
        with store.write() as tx:
            claiming = store.triggers.claim_polls_later(tx, a_claims, "A", T0)
        [claimed] = won_polls(claiming).values()
        assert claimed.cursor is None
        in_fire = threading.Event()
        b_claimed: list[ClaimedPoll] = []

        def claim_as_b() -> None:
            assert in_fire.wait(10)
            b_claims = [PollClaim(schedule_id, lease_end, later)]
            with store.write() as tx:
                claiming = store.triggers.claim_polls_later(tx, b_claims, "B", later)
            b_claimed.extend(won_polls(claiming).values())

        other = threading.Thread(target=claim_as_b)
        other.start()
        try:
            with store.write() as tx:  # A's fire transaction, as the fire recorder runs it
                assert store.triggers.schedule_state(tx, schedule_id) == (True, "A")
                in_fire.set()
                time.sleep(0.3)  # B's claim runs now, and must wait for this commit
                assert not b_claimed
                store.triggers.end_polls(
                    tx, [(schedule_id, PollEnd(False, set_cursor=True, cursor="1"))], "A", 10
                )
        finally:
            other.join(10)
        [b] = b_claimed
        assert b.cursor == "1"  # B polls after item 1, which A fired
    finally:
        backend.close_all()
