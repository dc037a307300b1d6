"""Trigger polling through the runner on a fake clock: cadence, hand-off, context, cursor,
fire_many, enable/disable, re-registration and ``@trigger(on=...)`` schedules."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerResult
from cloaca.clock import from_db_time
from cloaca.engine.triggers.view import next_poll
from cloaca.testing import DEFAULT_START, Harness
from cloaca.triggers.definition import unregister_trigger


@pytest.fixture
def seen() -> list[dict[str, Any]]:
    """Contexts received by the ``record`` workflow's single task."""
    received: list[dict[str, Any]] = []

    @cloaca.task(id="record")
    def record(context: Context) -> None:
        received.append(context.to_dict())

    cloaca.workflow("record_wf", [record])
    return received


def _poll_times(h: Harness, name: str) -> list[float]:
    """Seconds since the harness start at which ``name`` was polled, oldest first."""
    evaluations = h.runner.get_trigger_evaluations(name, limit=1000)
    return sorted(
        (from_db_time(e["evaluated_at"].replace("Z", "+00:00")) - DEFAULT_START).total_seconds()
        for e in evaluations
    )


class Counting(cloaca.Trigger):
    """Skips, counting its polls."""

    def __init__(self, name: str, interval: Any) -> None:
        super().__init__(name=name, poll_interval=interval)
        self.polls = 0

    def poll(self) -> TriggerResult:
        self.polls += 1
        return TriggerResult.skip()


def test_each_trigger_is_polled_on_its_own_interval(harness: Harness, seen: list) -> None:
    fast, slow = Counting("fast", "1s"), Counting("slow", "3s")
    harness.runner.register_trigger(fast, "record_wf")
    harness.runner.register_trigger(slow, "record_wf")
    harness.advance(9)
    assert _poll_times(harness, "fast") == [float(s) for s in range(10)]
    assert _poll_times(harness, "slow") == [0.0, 3.0, 6.0, 9.0]


def test_intervals_below_the_base_poll_interval_are_polled_at_the_base_resolution(
    seen: list,
    new_harness: Callable[..., Harness],
) -> None:
    with new_harness(config=DefaultRunnerConfig(trigger_base_poll_interval=2.0)) as h:
        h.runner.register_trigger(Counting("eager", "100ms"), "record_wf")
        h.advance(6)
        assert _poll_times(h, "eager") == [0.0, 2.0, 4.0, 6.0]


@pytest.mark.parametrize(
    ("due", "interval", "now", "expected"),
    [
        (0.0, 2.0, 0.0, 2.0),  # on time: fixed rate
        (0.0, 2.0, 0.015, 2.0),  # a little late: no drift
        (0.0, 2.0, 1.99, 2.0),
        (0.0, 2.0, 5.0, 7.0),  # far behind: one poll now, then from here (no catch-up burst)
        (10.0, 0.5, 10.0, 10.5),
    ],
)
def test_next_poll_is_fixed_rate_but_never_in_the_past(
    due: float, interval: float, now: float, expected: float
) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(s: float) -> datetime:
        return t0 + timedelta(seconds=s)

    assert next_poll(at(due), timedelta(seconds=interval), at(now)) == at(expected)


def test_a_fire_starts_the_workflow_with_the_trigger_context_and_metadata(
    harness: Harness, seen: list
) -> None:
    @cloaca.trigger(name="inbox", poll_interval="5s")
    def inbox() -> TriggerResult:
        return TriggerResult.fire({"filename": "a.csv", "trigger_name": "mine"})

    harness.runner.register_trigger(inbox, "record_wf")
    harness.advance(0)
    assert len(seen) == 1
    ctx = seen[0]
    assert ctx["filename"] == "a.csv"
    assert ctx["trigger_name"] == "mine"  # keys the user set win
    assert ctx["triggered_at"] == "2026-01-01T00:00:00Z"


def test_the_metadata_is_added_when_the_user_did_not_set_it(harness: Harness, seen: list) -> None:
    @cloaca.trigger(name="plain", poll_interval="5s")
    def plain() -> bool:
        return True

    harness.runner.register_trigger(plain, "record_wf")
    harness.advance(0)
    assert seen == [{"trigger_name": "plain", "triggered_at": "2026-01-01T00:00:00Z"}]


def test_a_fire_hands_off_without_waiting_for_the_workflow(harness: Harness, seen: list) -> None:
    @cloaca.trigger(name="handoff", poll_interval="5s")
    def handoff() -> bool:
        return True

    harness.runner.register_trigger(handoff, "record_wf")
    assert harness.poll_triggers()  # the trigger part alone: poll and fire
    [execution] = harness.runner.list_executions()
    assert execution["status"] == "Pending" and seen == []  # handed off, not run
    harness.run_until_idle()
    assert harness.runner.get_execution(execution["id"]).status == "Completed"
    assert len(seen) == 1


def test_fire_many_starts_one_execution_per_context(harness: Harness, seen: list) -> None:
    @cloaca.trigger(name="batch", poll_interval="1h")
    def batch() -> TriggerResult:
        return TriggerResult.fire_many([{"n": 1}, {"n": 2}, None])

    harness.runner.register_trigger(batch, "record_wf")
    harness.advance(0)
    assert sorted(str(c.get("n")) for c in seen) == ["1", "2", "None"]
    [evaluation] = harness.runner.get_trigger_evaluations("batch")
    assert evaluation["outcome"] == "fired"
    assert len(evaluation["execution_ids"]) == 3
    assert len(harness.runner.get_trigger_execution_history("batch")) == 3


def test_fire_many_deduplicates_each_context_separately(harness: Harness) -> None:
    @cloaca.task(id="noop")
    def noop(context: Context) -> None:
        return None

    cloaca.workflow("noop_wf", [noop])

    @cloaca.trigger(name="twice", poll_interval="1h")
    def twice() -> TriggerResult:
        return TriggerResult.fire_many([{"f": "a"}, {"f": "a"}, {"f": "b"}])

    harness.runner.register_trigger(twice, "noop_wf")
    harness.poll_triggers()
    [evaluation] = harness.runner.get_trigger_evaluations("twice")
    assert evaluation["outcome"] == "fired"
    assert len(evaluation["execution_ids"]) == 2
    assert evaluation["execution_ids"][0] in evaluation["message"]  # the holder is named
    assert "1 of 3 contexts deduplicated" in evaluation["message"]


class CursorFeed(cloaca.Trigger):
    """Fires each new item of a feed once, remembering its place in the cursor."""

    name = "feed"
    poll_interval = "1s"

    def __init__(self, feed: list[str]) -> None:
        self.feed = feed
        self.cursors: list[str | None] = []

    def poll(self, cursor: str | None) -> TriggerResult:
        self.cursors.append(cursor)
        position = int(cursor or 0)
        if position >= len(self.feed):
            return TriggerResult.skip()
        return TriggerResult.fire({"item": self.feed[position]}, cursor=str(position + 1))


def test_the_cursor_is_persisted_with_the_fire_and_passed_to_the_next_poll(
    harness: Harness, seen: list
) -> None:
    feed = ["a", "b"]
    trigger = CursorFeed(feed)
    harness.runner.register_trigger(trigger, "record_wf")
    harness.advance(3)
    assert [c["item"] for c in seen] == ["a", "b"]
    assert trigger.cursors == [None, "1", "2", "2"]
    schedule = harness.runner.get_trigger_schedule("feed")
    assert schedule is not None and schedule["cursor"] == "2"


def test_a_skip_may_advance_the_cursor_and_an_error_leaves_it(harness: Harness, seen: list) -> None:
    results: list[Any] = [TriggerResult.skip(cursor="s1"), RuntimeError("down"), False]
    got: list[str | None] = []

    @cloaca.trigger(name="cur", poll_interval="1s")
    def cur(cursor: str | None) -> Any:
        got.append(cursor)
        value = results.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    harness.runner.register_trigger(cur, "record_wf")
    harness.advance(2)  # polls at 0 (skip + cursor), 1 (error), 2 (the first backoff is 1x)
    assert got == [None, "s1", "s1"]
    schedule = harness.runner.get_trigger_schedule("cur")
    assert schedule is not None and schedule["cursor"] == "s1"


def test_async_polls_run_under_the_harness(harness: Harness, seen: list) -> None:
    class AsyncTrigger(cloaca.Trigger):
        name = "async_one"
        poll_interval = 2

        async def poll(self) -> TriggerResult:
            return TriggerResult.fire({"from": "async"})

    harness.runner.register_trigger(AsyncTrigger(), "record_wf")
    harness.advance(0)
    assert [c["from"] for c in seen] == ["async"]


def test_a_disabled_trigger_is_not_polled_and_enabling_polls_it_at_once(
    harness: Harness, seen: list
) -> None:
    trigger = Counting("toggle", "10s")
    harness.runner.register_trigger(trigger, "record_wf")
    harness.advance(0)
    assert trigger.polls == 1
    harness.runner.set_trigger_enabled("toggle", False)
    harness.advance(60)
    assert trigger.polls == 1
    harness.runner.set_trigger_enabled("toggle", True)
    harness.advance(0)
    assert trigger.polls == 2


def test_re_registering_updates_the_row_but_keeps_its_id_enabled_flag_and_history(
    harness: Harness, seen: list
) -> None:
    @cloaca.trigger(name="rereg", poll_interval="1s")
    def rereg() -> bool:
        return True

    first_id = harness.runner.register_trigger(rereg, "record_wf")
    harness.advance(0)
    harness.runner.set_trigger_enabled("rereg", False)
    second_id = harness.runner.register_trigger(
        "rereg", "record_wf", poll_interval="7s", allow_concurrent=True
    )
    schedule = harness.runner.get_trigger_schedule("rereg")
    assert schedule is not None
    assert second_id == first_id == schedule["id"]
    assert schedule["enabled"] is False
    assert schedule["poll_interval_ms"] == 7000
    assert schedule["allow_concurrent"] is True
    assert len(harness.runner.get_trigger_execution_history("rereg")) == 1


def test_register_trigger_returns_the_same_id_and_keeps_updated_at_when_nothing_changed(
    harness: Harness, seen: list
) -> None:
    first = harness.runner.register_trigger(Counting("same", "1s"), "record_wf")
    before = harness.runner.get_trigger_schedule("same")
    harness.clock.advance(5)
    assert harness.runner.register_trigger("same", "record_wf") == first
    assert harness.runner.get_trigger_schedule("same") == before


def test_a_shorter_interval_on_re_registration_pulls_the_next_poll_in(
    harness: Harness, seen: list
) -> None:
    trigger = Counting("shorter", "1h")
    harness.runner.register_trigger(trigger, "record_wf")
    harness.advance(10)
    assert trigger.polls == 1
    harness.runner.register_trigger(trigger, "record_wf", poll_interval="5s")
    harness.advance(5)
    assert trigger.polls == 2


def test_on_schedules_are_created_when_a_runner_starts(
    seen: list, new_harness: Callable[..., Harness]
) -> None:
    @cloaca.trigger(name="at_start", on="record_wf", poll_interval="3s")
    def at_start() -> bool:
        return True

    with new_harness() as h:
        schedule = h.runner.get_trigger_schedule("at_start")
        assert schedule is not None
        assert schedule["workflow_name"] == "record_wf"
        assert schedule["poll_interval_ms"] == 3000
        h.advance(0)
        assert len(seen) == 1


def test_on_schedules_are_created_at_once_when_registered_after_the_runner(
    harness: Harness, seen: list
) -> None:
    @cloaca.trigger(name="later", on="record_wf", poll_interval="3s")
    def later() -> bool:
        return True

    assert harness.runner.get_trigger_schedule("later") is not None
    harness.advance(3)
    assert len(seen) == 2


def test_on_schedules_wait_for_a_workflow_registered_after_the_trigger(harness: Harness) -> None:
    @cloaca.trigger(name="early", on="late_wf", poll_interval="3s")
    def early() -> bool:
        return True

    assert harness.runner.get_trigger_schedule("early") is None

    @cloaca.task(id="late_task")
    def late_task(context: Context) -> None:
        return None

    cloaca.workflow("late_wf", [late_task])
    schedule = harness.runner.get_trigger_schedule("early")
    assert schedule is not None and schedule["workflow_name"] == "late_wf"


def test_a_trigger_unregistered_after_scheduling_stops_being_polled_quietly(
    harness: Harness, seen: list, caplog: pytest.LogCaptureFixture
) -> None:
    trigger = Counting("gone", "1s")
    harness.runner.register_trigger(trigger, "record_wf")
    harness.advance(1)
    assert trigger.polls == 2
    unregister_trigger("gone")
    with caplog.at_level(logging.INFO):
        harness.advance(30)
    assert trigger.polls == 2
    assert [r for r in caplog.records if "gone" in r.getMessage()] == []


def test_a_schedule_whose_trigger_is_not_registered_here_is_skipped_quietly(
    db_url: str, seen: list, caplog: pytest.LogCaptureFixture
) -> None:
    # Another process scheduled "elsewhere" (its code lives there), then we open the file.
    with Harness(db_url) as owner:
        owner.runner.register_trigger(Counting("elsewhere", "1s"), "record_wf")
    unregister_trigger("elsewhere")
    with Harness(db_url) as h, caplog.at_level(logging.DEBUG):
        scheduler = h.runner.engine.trigger_scheduler
        assert scheduler is not None
        rounds = h.run_until_idle()
        assert rounds == 1  # nothing to do, no spinning
        assert scheduler.tick(h.clock.now()) == (False, None)  # nothing due, ever
        h.advance(120)
        assert h.runner.get_trigger_evaluations("elsewhere") == []
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


def test_polls_fire_and_executions_run_on_a_file_database_too(db_url: str, seen: list) -> None:
    with Harness(db_url) as h:
        h.runner.register_trigger(CursorFeed(["x", "y", "z"]), "record_wf")
        h.advance(5)
    assert [c["item"] for c in seen] == ["x", "y", "z"]


def test_scheduling_can_be_switched_off(seen: list, new_harness: Callable[..., Harness]) -> None:
    trigger = Counting("off", "1s")
    with new_harness(config=DefaultRunnerConfig(enable_trigger_scheduling=False)) as h:
        h.runner.register_trigger(trigger, "record_wf")
        h.advance(10)
        assert h.runner.get_trigger_schedule("off") is not None
    assert trigger.polls == 0
