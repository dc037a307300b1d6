"""Lost hand-off recovery: a claimed slot whose execution is missing (never created, or
deleted since) gets its execution re-created after ``cron_lost_threshold_minutes``, within
``cron_max_recovery_age_seconds`` and at most ``cron_max_recovery_attempts`` times, and is
counted in ``lost_executions``. The lost state is constructed directly in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig
from cloaca.store.cron_records import CatchupPolicy
from cloaca.testing import FakeClock, Harness
from cron_support import START, quiet
from pg_support import run_sql

LOST_SLOT = datetime(2025, 12, 31, 23, 0, tzinfo=UTC)


def config(**overrides: Any) -> DefaultRunnerConfig:
    """Recovery every minute, lost after 10 minutes; other chores out of the way."""
    values: dict[str, Any] = {
        "cron_recovery_interval_seconds": 60,
        "cron_lost_threshold_minutes": 10,
    }
    values.update(overrides)
    return quiet(**values)


@pytest.fixture
def h(fired: list[dict[str, Any]], new_harness: Callable[..., Harness]) -> Iterator[Harness]:
    """A harness with the ``report`` workflow and fast recovery."""
    with new_harness(config=config(), start=START) as harness:
        yield harness


def times(contexts: list[dict[str, Any]]) -> list[str]:
    """The scheduled times of fired contexts."""
    return [c["scheduled_time"] for c in contexts]


def claim_without_execution(h: Harness, schedule_id: str, slot: datetime, claim_id: str) -> None:
    """What an interrupted older version (or a manual deletion) leaves behind."""
    store = h.runner._store
    with store.write() as tx:
        won = store.cron.claim_slots(tx, [(claim_id, schedule_id, slot)], "gone-runner", START)
        assert won == {claim_id}


def test_a_claim_without_execution_is_recovered_after_the_threshold(
    h: Harness, fired: list[dict[str, Any]]
) -> None:
    sid = h.runner.register_cron_workflow("report", "0 0 1 1 *")  # next slot: a year away
    claim_without_execution(h, sid, LOST_SLOT, "lost-1")
    h.advance(timedelta(minutes=9))
    (row,) = h.runner.get_cron_execution_history(sid)
    assert (row["status"], row["lost"], row["workflow_execution_id"]) == ("Lost", False, None)
    assert fired == []
    h.advance(timedelta(minutes=2))
    assert fired == [
        {
            "scheduled_time": "2025-12-31T23:00:00Z",
            "schedule_id": sid,
            "schedule_timezone": "UTC",
            "schedule_expression": "0 0 1 1 *",
        }
    ]
    (row,) = h.runner.get_cron_execution_history(sid)
    assert row["status"] == "Completed"
    assert (row["lost"], row["recovery_attempts"]) == (True, 1)
    assert row["recovered_at"] == "2026-01-01T00:11:00Z"
    stats = h.runner.get_cron_execution_stats("2025-01-01T00:00:00Z")
    assert stats["total_executions"] == 1
    assert stats["lost_executions"] == 1
    assert stats["recovered_executions"] == 1
    assert stats["successful_executions"] == 1
    h.advance(timedelta(minutes=30))
    assert len(fired) == 1  # recovered once, not again


def test_an_execution_deleted_after_the_fire_is_recovered(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    with Harness(db_url, config(), start=START) as h:
        sid = h.runner.register_cron_workflow("report", "0 * * * *")
        h.advance(3600)
        (row,) = h.runner.get_cron_execution_history(sid)
        # Foreign keys on, as on cloaca's own connections: the slot's link is set to NULL.
        run_sql(
            db_url,
            "DELETE FROM cloaca_executions WHERE id = :id",
            {"id": row["workflow_execution_id"]},
        )
        assert h.runner.get_cron_execution_history(sid)[0]["status"] == "Lost"
        h.advance(timedelta(minutes=11))
        (row,) = h.runner.get_cron_execution_history(sid)
        assert row["status"] == "Completed" and row["lost"] is True
        assert times(fired) == ["2026-01-01T01:00:00Z", "2026-01-01T01:00:00Z"]


def test_recovery_gives_up_after_max_attempts(h: Harness) -> None:
    # A schedule whose workflow no process knows: every recovery attempt fails.
    store = h.runner._store
    record, _ = store.cron.register(
        new_id="00000000-0000-4000-8000-000000000001",
        workflow_name="ghost",
        instance_name=None,
        cron_expression="0 0 1 1 *",
        timezone="UTC",
        catchup_policy=CatchupPolicy.SKIP,
        params=None,
        next_run_at=datetime(2027, 1, 1, tzinfo=UTC),
        now=START,
    )
    claim_without_execution(h, record.id, LOST_SLOT, "lost-ghost")
    h.advance(timedelta(minutes=30))
    (row,) = h.runner.get_cron_execution_history(record.id)
    assert (row["status"], row["recovery_attempts"], row["lost"]) == ("Lost", 3, True)
    assert h.runner.get_cron_execution_stats(START - timedelta(days=1))["lost_executions"] == 1


def test_claims_older_than_the_max_recovery_age_are_left_alone(
    fired: list[dict[str, Any]],
    new_harness: Callable[..., Harness],
) -> None:
    with new_harness(config=config(cron_max_recovery_age_seconds=3600), start=START) as h:
        sid = h.runner.register_cron_workflow("report", "0 0 1 1 *")
        claim_without_execution(h, sid, START - timedelta(hours=2), "too-old")
        h.advance(timedelta(minutes=30))
        assert fired == []
        (row,) = h.runner.get_cron_execution_history(sid)
        assert (row["status"], row["recovery_attempts"]) == ("Lost", 0)
        # still counted as lost: its execution is missing past the threshold
        assert h.runner.get_cron_execution_stats(START - timedelta(days=1))["lost_executions"] == 1


def test_recovery_can_be_switched_off(
    fired: list[dict[str, Any]], new_harness: Callable[..., Harness]
) -> None:
    with new_harness(config=config(cron_enable_recovery=False), start=START) as h:
        sid = h.runner.register_cron_workflow("report", "0 0 1 1 *")
        claim_without_execution(h, sid, LOST_SLOT, "lost-off")
        h.advance(timedelta(hours=1))
        assert fired == []


def test_two_runners_recover_a_lost_slot_once(db_url: str, fired: list[dict[str, Any]]) -> None:
    clock = FakeClock(START)
    with Harness(db_url, config(), clock=clock) as a, Harness(db_url, config(), clock=clock) as b:
        sid = a.runner.register_cron_workflow("report", "0 0 1 1 *")
        claim_without_execution(a, sid, LOST_SLOT, "lost-shared")
        for _ in range(20):
            clock.advance(60)
            b.run_until_idle()
            a.run_until_idle()
        assert times(fired) == ["2025-12-31T23:00:00Z"]
        assert len(a.runner.list_executions("report")) == 1


def test_a_schedule_that_fails_to_fire_does_not_block_the_others(
    h: Harness, fired: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    @cloaca.task(id="fragile_task")
    def fragile_task(context: Context) -> None:
        fired.append({"fragile": True, **context.to_dict()})

    cloaca.workflow("fragile", [fragile_task])
    good = h.runner.register_cron_workflow("report", "0 * * * *")
    bad = h.runner.register_cron_workflow("fragile", "0 * * * *")
    scheduler = h.runner.engine.cron_scheduler
    assert scheduler is not None
    create = scheduler._create_execution

    def failing(tx: Any, shape: Any, text: str, now: datetime) -> str:
        if shape.name == "fragile":
            raise RuntimeError("simulated failure while starting the execution")
        return create(tx, shape, text, now)

    monkeypatch.setattr(scheduler, "_create_execution", failing)
    h.advance(3600)
    assert times(fired) == ["2026-01-01T01:00:00Z"] and "fragile" not in fired[0]
    (row,) = h.runner.get_cron_execution_history(bad)
    assert row["status"] == "Lost"  # claimed exactly once, its hand-off failed
    assert h.runner.get_cron_schedule(bad)["next_run_at"] == "2026-01-01T02:00:00Z"
    monkeypatch.setattr(scheduler, "_create_execution", create)
    h.advance(timedelta(minutes=11))  # recovery hands it off again
    assert [c for c in fired if c.get("fragile")][0]["scheduled_time"] == "2026-01-01T01:00:00Z"
    assert len(h.runner.get_cron_execution_history(good)) == 1
