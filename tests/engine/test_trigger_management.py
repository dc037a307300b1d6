"""Trigger management calls (SPEC 6.4 / 6.5): dict shapes, ordering, paging, the
evaluation log and its retention, and managing from a second runner on the same file."""

from __future__ import annotations

from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerResult
from cloaca.testing import Harness
from pg_support import run_sql

SCHEDULE_KEYS = {
    # SPEC 6.4
    "id",
    "trigger_name",
    "workflow_name",
    "poll_interval_ms",
    "allow_concurrent",
    "enabled",
    "last_poll_at",
    "created_at",
    "updated_at",
    # SPEC 6.5 additions
    "next_poll_at",
    "consecutive_errors",
    "paused_reason",
    "cursor",
    # the failed-run policy
    "on_failed_run",
}
HISTORY_KEYS = {
    "id",
    "schedule_id",
    "context_hash",
    "workflow_execution_id",
    "started_at",
    "completed_at",
    "created_at",
}
EVALUATION_KEYS = {
    "id",
    "trigger_name",
    "runner_id",
    "scheduled_at",
    "evaluated_at",
    "duration_ms",
    "outcome",
    "message",
    "execution_ids",
}


@pytest.fixture(autouse=True)
def wf() -> None:
    @cloaca.task(id="noop")
    def noop(context: Context) -> None:
        return None

    cloaca.workflow("wf", [noop])


class Numbered(cloaca.Trigger):
    """Fires ``{"n": <poll number>}`` every poll."""

    poll_interval = "1s"

    def __init__(self, name: str) -> None:
        super().__init__(name=name)
        self.n = 0

    def poll(self) -> TriggerResult:
        self.n += 1
        return TriggerResult.fire({"n": self.n})


def test_schedule_dicts_have_the_documented_keys_and_types(harness: Harness) -> None:
    schedule_id = harness.runner.register_trigger(Numbered("t1"), "wf")
    harness.advance(0)
    [listed] = harness.runner.list_trigger_schedules()
    got = harness.runner.get_trigger_schedule("t1")
    assert got == listed
    assert set(listed) == SCHEDULE_KEYS
    assert listed["id"] == schedule_id
    assert listed["trigger_name"] == "t1" and listed["workflow_name"] == "wf"
    assert listed["poll_interval_ms"] == 1000
    assert listed["allow_concurrent"] is False and listed["enabled"] is True
    assert listed["last_poll_at"] == "2026-01-01T00:00:00Z"
    assert listed["created_at"] == listed["updated_at"] == "2026-01-01T00:00:00Z"
    assert listed["next_poll_at"] == "2026-01-01T00:00:01Z"
    assert listed["consecutive_errors"] == 0
    assert listed["paused_reason"] is None and listed["cursor"] is None
    assert listed["on_failed_run"] == "backoff"


def test_an_unknown_schedule_is_none_and_its_history_and_evaluations_are_empty(
    harness: Harness,
) -> None:
    assert harness.runner.get_trigger_schedule("nobody") is None
    assert harness.runner.get_trigger_execution_history("nobody") == []
    assert harness.runner.get_trigger_evaluations("nobody") == []


def test_history_is_newest_first_with_the_documented_keys_and_pages(harness: Harness) -> None:
    harness.runner.register_trigger(Numbered("hist"), "wf")
    harness.advance(4)
    history = harness.runner.get_trigger_execution_history("hist")
    assert len(history) == 5
    assert all(set(h) == HISTORY_KEYS for h in history)
    created = [h["created_at"] for h in history]
    assert created == sorted(created, reverse=True)
    contexts = [
        harness.runner.get_execution(h["workflow_execution_id"]).final_context.get("n")
        for h in history
    ]
    assert contexts == [5, 4, 3, 2, 1]
    assert all(h["started_at"] == h["created_at"] and h["completed_at"] for h in history)
    page = harness.runner.get_trigger_execution_history("hist", limit=2, offset=1)
    assert page == history[1:3]


def test_list_filters_orders_and_pages(harness: Harness) -> None:
    for name in ["c", "a", "b"]:
        harness.runner.register_trigger(Numbered(name), "wf")
    harness.runner.set_trigger_enabled("b", False)
    names = [s["trigger_name"] for s in harness.runner.list_trigger_schedules()]
    assert names == ["a", "b", "c"]
    enabled = harness.runner.list_trigger_schedules(enabled_only=True)
    assert [s["trigger_name"] for s in enabled] == ["a", "c"]
    every = harness.runner.list_trigger_schedules(enabled_only=False)
    assert [s["trigger_name"] for s in every] == ["a", "b", "c"]
    page = harness.runner.list_trigger_schedules(limit=1, offset=1)
    assert [s["trigger_name"] for s in page] == ["b"]
    assert harness.runner.list_trigger_schedules(None, 2) == every[:2]  # positional too


def test_evaluations_explain_each_poll_newest_first(harness: Harness) -> None:
    outcomes = iter(
        [TriggerResult.skip(), TriggerResult.fire({"k": 1}), TriggerResult.fire({"k": 1})]
    )

    @cloaca.trigger(name="why", poll_interval="1s")
    def why() -> TriggerResult:
        return next(outcomes)

    @cloaca.task(id="stays")
    def stays(context: Context) -> None:
        return None

    cloaca.workflow("held", [stays])
    harness.runner.register_trigger(why, "held")
    for _ in range(3):  # only the trigger part: the fired execution stays active
        harness.poll_triggers()
        harness.clock.advance(1)
    dedup, fired, skipped = harness.runner.get_trigger_evaluations("why")
    assert all(set(e) == EVALUATION_KEYS for e in (dedup, fired, skipped))
    assert [skipped["outcome"], fired["outcome"], dedup["outcome"]] == [
        "skipped",
        "fired",
        "deduplicated",
    ]
    assert skipped["scheduled_at"] == skipped["evaluated_at"] == "2026-01-01T00:00:00Z"
    assert skipped["message"] is None and skipped["execution_ids"] == []
    assert fired["execution_ids"] == [harness.runner.list_executions()[0]["id"]]
    assert fired["execution_ids"][0] in dedup["message"]
    assert skipped["runner_id"] == harness.runner.runner_id
    assert skipped["duration_ms"] >= 0
    assert harness.runner.get_trigger_evaluations("why", limit=1) == [dedup]


@pytest.mark.parametrize("retention", [1, 5, 30])
def test_the_evaluation_log_keeps_the_newest_retention_rows_per_trigger(
    db_url: str, retention: int
) -> None:
    config = DefaultRunnerConfig(trigger_evaluation_retention=retention)

    @cloaca.trigger(name="chatty", poll_interval="1s")
    def chatty() -> bool:
        return False

    @cloaca.trigger(name="quiet", poll_interval="1h")
    def quiet() -> bool:
        return False

    with Harness(db_url, config=config) as h:
        h.runner.register_trigger("chatty", "wf")
        h.runner.register_trigger("quiet", "wf")
        h.advance(3 * retention + 7)
        newest = h.runner.get_trigger_evaluations("chatty", limit=1000)
        assert len(newest) <= retention + max(1, retention // 10)
        assert newest[0]["evaluated_at"] == h.runner.get_trigger_schedule("chatty")["last_poll_at"]
        # A chatty trigger never pushes out another trigger's evaluations.
        assert len(h.runner.get_trigger_evaluations("quiet")) == 1
    [(rows,)] = run_sql(
        db_url, "SELECT COUNT(*) FROM cloaca_trigger_evaluations WHERE trigger_name = 'chatty'"
    )
    assert rows <= retention + max(1, retention // 10)


def test_a_second_runner_on_the_same_file_manages_without_polling_or_executing(
    db_url: str,
) -> None:
    worker_trigger = Numbered("managed")
    with Harness(db_url) as worker:
        worker.runner.register_trigger(worker_trigger, "wf")
        worker.advance(1)
        # Same fake clock; scheduling off, like a CLI or an admin script would open it.
        config = DefaultRunnerConfig(enable_trigger_scheduling=False)
        with Harness(db_url, config, clock=worker.clock) as admin:
            manager = admin.runner
            [schedule] = manager.list_trigger_schedules()
            assert schedule["trigger_name"] == "managed" and schedule["enabled"]
            assert len(manager.get_trigger_execution_history("managed")) == 2
            assert len(manager.get_trigger_evaluations("managed")) == 2
            manager.set_trigger_enabled("managed", False)
            worker.advance(10)
            assert worker_trigger.n == 2  # disabled from the other runner: not polled
            manager.set_trigger_enabled("managed", True)
            worker.advance(1)
            assert worker_trigger.n >= 3
            fired = manager.fire_trigger("managed", {"by": "manager"})
            assert fired is not None
            assert manager.get_execution(fired).status == "Pending"
            # A real worker notices another connection's commit in its loop (data_version);
            # the manually driven one is told.
            worker.runner.engine.executor.poke()
            worker.run_until_idle()
            assert manager.get_execution(fired).status == "Completed"


def test_manual_fire_works_on_a_disabled_schedule_and_leaves_its_state(harness: Harness) -> None:
    harness.runner.register_trigger(Numbered("manual"), "wf")
    harness.runner.set_trigger_enabled("manual", False)
    execution_id = harness.runner.fire_trigger("manual", {"reason": "operator"})
    assert execution_id is not None
    harness.run_until_idle()
    result = harness.runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert result.final_context.get("reason") == "operator"
    assert result.final_context.get("trigger_name") == "manual"
    schedule = harness.runner.get_trigger_schedule("manual")
    assert schedule is not None and schedule["enabled"] is False and schedule["cursor"] is None
    [evaluation] = harness.runner.get_trigger_evaluations("manual")
    assert evaluation["outcome"] == "fired" and evaluation["message"] == "manual fire"


def test_manual_fire_without_context_uses_the_no_context_hash(harness: Harness) -> None:
    harness.runner.register_trigger(Numbered("bare"), "wf")
    assert harness.runner.fire_trigger("bare") is not None
    [fire] = harness.runner.get_trigger_execution_history("bare")
    assert fire["context_hash"] == "fire_no_context"


def test_register_trigger_by_name_from_a_runner_that_only_knows_the_schedule(
    db_url: str,
) -> None:
    with Harness(db_url) as owner:
        owner.runner.register_trigger(Numbered("remote"), "wf", poll_interval="4s")
    cloaca.triggers.definition.unregister_trigger("remote")
    config = DefaultRunnerConfig(enable_trigger_scheduling=False)
    with cloaca.DefaultRunner(db_url, config) as manager:
        manager.register_trigger("remote", "wf", allow_concurrent=True)
        schedule: dict[str, Any] | None = manager.get_trigger_schedule("remote")
        assert schedule is not None
        assert schedule["poll_interval_ms"] == 4000 and schedule["allow_concurrent"] is True


def test_a_trigger_enabled_from_another_process_is_polled_again_at_once(db_url: str) -> None:
    """A real worker learns of a schedule enabled through another connection within a
    moment: on PostgreSQL a notification tells it, on SQLite its version check does."""
    import threading
    import time

    from cloaca.runner.management import ManagementClient

    polled = threading.Event()

    @cloaca.trigger(name="woken", poll_interval=0.05)
    def woken() -> bool:
        polled.set()
        return False

    config = DefaultRunnerConfig(trigger_base_poll_interval=0.05)
    with cloaca.DefaultRunner(db_url, config) as worker:
        worker.register_trigger("woken", "wf")
        assert polled.wait(10)
        client = ManagementClient.open(db_url)
        try:
            client.set_trigger_enabled("woken", False)
            time.sleep(0.3)  # a poll already claimed may still finish
            polled.clear()
            time.sleep(0.3)
            assert not polled.is_set()  # disabled: not polled
            enabled_at = time.monotonic()
            client.set_trigger_enabled("woken", True)
            assert polled.wait(10)
            assert time.monotonic() - enabled_at < 1.5
        finally:
            client.close()
