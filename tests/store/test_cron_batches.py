"""The batched cron statements a firing transaction sends (``Store.cron.advance_many`` and
``Store.cron.link_executions``), on every backend: they keep the per-schedule contract of
``advance`` (conditional on the expected ``next_run_at`` and on being enabled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloaca.store.core import Store
from cloaca.store.records import NewTask

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _schedule(store: Store, name: str) -> str:
    record, _ = store.cron.register(
        new_id=f"s-{name}",
        workflow_name="wf",
        instance_name=name,
        cron_expression="* * * * * *",
        timezone="UTC",
        catchup_policy="skip",
        params=None,
        next_run_at=T0,
        now=T0,
    )
    return record.id


def test_advance_many_moves_only_rows_still_as_expected_and_enabled(store: Store) -> None:
    moved, stale, disabled = (_schedule(store, n) for n in ("moved", "stale", "disabled"))
    store.cron.set_enabled(disabled, False, T0, T0)
    with store.write() as tx:
        store.cron.advance_many(
            tx,
            [
                (moved, T0, T0 + SECOND, T0),
                (stale, T0 - SECOND, T0 + SECOND, T0),  # another runner moved it already
                (disabled, T0, T0 + SECOND, T0),
            ],
        )
    after = {sid: store.cron.get(sid) for sid in (moved, stale, disabled)}
    assert after[moved] is not None and after[moved].next_run_at == T0 + SECOND
    assert after[moved].last_run_at == T0
    assert after[stale] is not None and after[stale].next_run_at == T0
    assert after[stale].last_run_at is None
    assert after[disabled] is not None and after[disabled].last_run_at is None


def test_advance_many_without_a_run_keeps_last_run_at(store: Store) -> None:
    sid = _schedule(store, "kept")
    with store.write() as tx:
        store.cron.advance_many(tx, [(sid, T0, T0 + SECOND, T0)])
    with store.write() as tx:
        store.cron.advance_many(tx, [(sid, T0 + SECOND, T0 + 2 * SECOND, None)])
    record = store.cron.get(sid)
    assert record is not None
    assert (record.next_run_at, record.last_run_at) == (T0 + 2 * SECOND, T0)


def test_link_executions_links_each_claim_to_its_execution(store: Store) -> None:
    a, b = _schedule(store, "a"), _schedule(store, "b")
    with store.write() as tx:
        won = store.cron.claim_slots(tx, [("c-a", a, T0), ("c-b", b, T0)], "r1", T0)
        assert won == {"c-a", "c-b"}
        for execution_id in ("e-a", "e-b"):
            store.executions.insert(
                tx,
                execution_id=execution_id,
                workflow_name="wf",
                version="0123456789abcdef",
                context_json="{}",
                tasks=[NewTask("t", 0, 1)],
                now=T0,
            )
        store.cron.link_executions(tx, [("c-a", "e-a"), ("c-b", "e-b")])
        store.cron.link_executions(tx, [])  # nothing to send
    linked = {
        sid: [r.workflow_execution_id for r in store.cron.history(sid, None, 0)] for sid in (a, b)
    }
    assert linked == {a: ["e-a"], b: ["e-b"]}
