"""The cron scheduler through the runner on a fake clock: slots fire at their instant with
the schedule's context, across DST in two zones, catch up after downtime by policy, fire
exactly once with two runners on one SQLite file, and follow edits, pauses and deletes.
One real-time test checks the timer-driven loop with a real clock."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunner
from cloaca.testing import FakeClock, Harness
from cloaca.workflows.registry import clear_registry
from cron_support import START, quiet


@pytest.fixture
def h(fired: list[dict[str, Any]], new_harness: Callable[..., Harness]) -> Iterator[Harness]:
    """A quiet harness on an in-memory database with the ``report`` workflow."""
    with new_harness(config=quiet(), start=START) as harness:
        yield harness


def utc(text: str) -> datetime:
    """An aware datetime from an ISO string."""
    return datetime.fromisoformat(text)


def times(contexts: list[dict[str, Any]]) -> list[str]:
    """The scheduled times of fired contexts."""
    return [c["scheduled_time"] for c in contexts]


# -- firing -----------------------------------------------------------------------------------


def test_slots_fire_at_their_instant_with_the_schedule_context(
    h: Harness, fired: list[dict[str, Any]]
) -> None:
    sid = h.runner.register_cron_workflow("report", "*/15 * * * *", "Europe/Berlin")
    assert h.next_due() == utc("2026-01-01T00:15:00Z")  # the loop sleeps until the slot
    h.advance(timedelta(minutes=14, seconds=59))
    assert fired == []
    h.advance(1)
    assert fired == [
        {
            "scheduled_time": "2026-01-01T00:15:00Z",
            "schedule_id": sid,
            "schedule_timezone": "Europe/Berlin",
            "schedule_expression": "*/15 * * * *",
        }
    ]
    h.advance(timedelta(minutes=45))
    assert times(fired)[1:] == [
        "2026-01-01T00:30:00Z",
        "2026-01-01T00:45:00Z",
        "2026-01-01T01:00:00Z",
    ]
    schedule = h.runner.get_cron_schedule(sid)
    assert schedule["last_run_at"] == "2026-01-01T01:00:00Z"
    assert schedule["next_run_at"] == "2026-01-01T01:15:00Z"
    history = h.runner.get_cron_execution_history(sid)
    assert [r["scheduled_time"] for r in history] == list(reversed(times(fired)))
    assert {r["status"] for r in history} == {"Completed"}


def test_six_field_expressions_fire_every_second(h: Harness, fired: list[dict[str, Any]]) -> None:
    h.runner.register_cron_workflow("report", "* * * * * *")
    h.advance(5)
    assert times(fired) == [f"2026-01-01T00:00:0{s}Z" for s in range(1, 6)]


def test_instances_merge_their_params_and_fire_independently(
    h: Harness, fired: list[dict[str, Any]]
) -> None:
    eu = h.runner.register_workflow_instance(
        "report", "eu", "0 * * * *", "Europe/Berlin", {"region": "eu", "limit": 5}
    )
    us = h.runner.register_workflow_instance(
        "report", "us", "30 * * * *", "America/New_York", {"region": "us"}
    )
    h.advance(3600)
    assert [(c["region"], c["schedule_id"], c["scheduled_time"]) for c in fired] == [
        ("us", us, "2026-01-01T00:30:00Z"),
        ("eu", eu, "2026-01-01T01:00:00Z"),
    ]
    assert fired[1]["limit"] == 5
    # Registering an instance again updates it in place (same id, new params and time).
    again = h.runner.register_workflow_instance(
        "report", "eu", "15 * * * *", "Europe/Berlin", {"region": "eu-west"}
    )
    assert again == eu
    h.advance(3600)
    assert [(c["region"], c["scheduled_time"]) for c in fired[2:]] == [
        ("eu-west", "2026-01-01T01:15:00Z"),
        ("us", "2026-01-01T01:30:00Z"),
    ]


def test_registering_the_same_schedule_again_returns_it(h: Harness) -> None:
    first = h.runner.register_cron_workflow("report", "0 9 * * *", "UTC")
    h.runner.set_cron_schedule_enabled(first, False)
    assert h.runner.register_cron_workflow("report", " 0  9 * *\t* ", "UTC") == first
    assert h.runner.get_cron_schedule(first)["enabled"] is False  # the flag is kept
    other = h.runner.register_cron_workflow("report", "0 9 * * *", "Europe/Berlin")
    assert other != first
    assert len(h.runner.list_cron_schedules()) == 2


DST = [
    # zone, expression, start, days, expected fire instants (UTC)
    (
        "Europe/Berlin",
        "30 2 * * *",
        "2026-03-27T12:00:00Z",
        3,
        # 02:30 does not exist on 03-29 (clocks jump 02:00 -> 03:00): once at 03:00 CEST
        ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),
    (
        "Europe/Berlin",
        "30 2 * * *",
        "2026-10-24T12:00:00Z",
        3,
        # 02:30 happens twice on 10-25 (03:00 CEST -> 02:00 CET): once, at the first
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"],
    ),
    (
        "America/New_York",
        "30 2 * * *",
        "2026-03-07T12:00:00Z",
        3,
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
    ),
    (
        "America/New_York",
        "30 1 * * *",
        "2026-10-31T12:00:00Z",
        3,
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z", "2026-11-03T06:30:00Z"],
    ),
    (
        "America/New_York",
        "0,30 1 * * *",
        "2026-11-01T04:00:00Z",
        1,
        # the repeated 01:00-02:00 hour fires its two slots once, not four times
        ["2026-11-01T05:00:00Z", "2026-11-01T05:30:00Z"],
    ),
]


@pytest.mark.parametrize(("zone", "expression", "start", "days", "expected"), DST)
def test_dst_transitions_end_to_end(
    fired: list[dict[str, Any]],
    zone: str,
    expression: str,
    start: str,
    days: int,
    expected: list[str],
    new_harness: Callable[..., Harness],
) -> None:
    with new_harness(config=quiet(), start=utc(start)) as h:
        h.runner.register_cron_workflow("report", expression, zone)
        h.advance(timedelta(days=days))
    assert times(fired) == expected
    assert all(c["schedule_timezone"] == zone for c in fired)


# -- catch-up after downtime ---------------------------------------------------------------------


def downtime(
    db_url: str, policy: str, down_hours: float, **config: Any
) -> tuple[str, list[str], Harness]:
    """Run an hourly schedule for two hours, stop, and reopen ``down_hours`` later.

    Returns the schedule id, the scheduled times fired before the downtime, and the new
    (open) harness, which has not ticked yet."""
    before = Harness(db_url, quiet(**config), start=START)
    sid = before.runner.register_cron_workflow("report", "0 * * * *", catchup_policy=policy)
    before.advance(7200)
    fired_before = [r["scheduled_time"] for r in before.runner.get_cron_execution_history(sid)]
    before.close()
    later = START + timedelta(hours=2 + down_hours)
    return sid, fired_before, Harness(db_url, quiet(**config), start=later)


def test_skip_runs_once_after_downtime_then_resumes(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    sid, before, h = downtime(db_url, "skip", 5.5)
    with h:
        assert before == ["2026-01-01T02:00:00Z", "2026-01-01T01:00:00Z"]
        h.run_until_idle()  # 03:00 .. 07:00 were missed: one late run, for the latest
        assert times(fired)[2:] == ["2026-01-01T07:00:00Z"]
        h.advance(3600)
        assert times(fired)[3:] == ["2026-01-01T08:00:00Z"]
        assert h.runner.get_cron_schedule(sid)["next_run_at"] == "2026-01-01T09:00:00Z"


def test_run_all_fires_every_missed_slot_oldest_first(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    sid, _, h = downtime(db_url, "run_all", 3.5)
    with h:
        h.run_until_idle()
        assert times(fired)[2:] == [
            "2026-01-01T03:00:00Z",
            "2026-01-01T04:00:00Z",
            "2026-01-01T05:00:00Z",
        ]
        h.advance(3600)
        assert times(fired)[5:] == ["2026-01-01T06:00:00Z"]
        assert len(h.runner.get_cron_execution_history(sid)) == 6


def test_run_all_is_capped_by_cron_max_catchup_executions(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    _, _, h = downtime(db_url, "run_all", 10.5, cron_max_catchup_executions=3)
    with h:
        h.run_until_idle()
        assert times(fired)[2:] == [
            "2026-01-01T03:00:00Z",
            "2026-01-01T04:00:00Z",
            "2026-01-01T05:00:00Z",
        ]
        h.advance(3600)  # the rest was dropped: resume at the next future slot
        assert times(fired)[5:] == ["2026-01-01T13:00:00Z"]


def test_a_stalled_scheduler_counts_as_downtime_but_a_busy_one_does_not(
    fired: list[dict[str, Any]],
    new_harness: Callable[..., Harness],
) -> None:
    # cron_poll_interval_seconds=30: a gap of more than 60 s between ticks is a stall.
    with new_harness(config=quiet(cron_poll_interval_seconds=30), start=START) as h:
        h.runner.register_cron_workflow("report", "*/10 * * * * *")
        h.run_until_idle()
        h.clock.advance(35)  # late by up to 25 s while running: every slot still fires
        h.run_until_idle()
        assert times(fired) == [
            "2026-01-01T00:00:10Z",
            "2026-01-01T00:00:20Z",
            "2026-01-01T00:00:30Z",
        ]
        h.clock.advance(3 * 3600)  # no tick for three hours: downtime, so skip runs once
        h.run_until_idle()
        assert times(fired)[3:] == ["2026-01-01T03:00:30Z"]


# -- exactly once with two runners ---------------------------------------------------------------


def test_two_runners_on_one_file_fire_each_slot_exactly_once(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    clock = FakeClock(START)
    with Harness(db_url, quiet(), clock=clock) as a, Harness(db_url, quiet(), clock=clock) as b:
        ids = [
            a.runner.register_workflow_instance("report", f"i{i}", "* * * * * *", "UTC", {"i": i})
            for i in range(3)
        ]
        for step in range(30):
            dues = [d for d in (a.next_due(), b.next_due()) if d is not None]
            clock.set(max(clock.now(), min(dues)))
            first, second = (a, b) if step % 2 else (b, a)
            first.run_until_idle()
            second.run_until_idle()
        history = [r for sid in ids for r in a.runner.get_cron_execution_history(sid)]
    slots = Counter((c["schedule_id"], c["scheduled_time"]) for c in fired)
    assert len(slots) == 3 * 30 and set(slots.values()) == {1}  # every slot, each once
    assert len(history) == 90
    assert {r["claimed_by"] for r in history} == {a.runner.runner_id, b.runner.runner_id}


def test_a_slot_key_can_be_claimed_only_once(h: Harness) -> None:
    sid = h.runner.register_cron_workflow("report", "0 * * * *")
    store, slot = h.runner._store, utc("2026-01-01T01:00:00Z")
    with store.write() as tx:
        assert store.cron.claim_slots(tx, [("claim-1", sid, slot)], "runner-a", START) == {
            "claim-1"
        }
    with store.write() as tx:
        # One batch: a free slot is won, a taken one is not, whoever holds it.
        other = slot + timedelta(hours=1)
        won = store.cron.claim_slots(
            tx, [("claim-2", sid, slot), ("claim-3", sid, other)], "runner-b", START
        )
        assert won == {"claim-3"}


# -- edits, pauses, deletes -------------------------------------------------------------------


def test_updating_the_expression_moves_next_run_at_at_once(
    h: Harness, fired: list[dict[str, Any]]
) -> None:
    sid = h.runner.register_cron_workflow("report", "0 0 * * *")
    assert h.next_due() == utc("2026-01-02T00:00:00Z")
    h.runner.update_cron_schedule(sid, "*/5 * * * *", "Asia/Kolkata")
    schedule = h.runner.get_cron_schedule(sid)
    assert (schedule["cron_expression"], schedule["timezone"]) == ("*/5 * * * *", "Asia/Kolkata")
    assert schedule["next_run_at"] == "2026-01-01T00:05:00Z"
    assert h.next_due() == utc("2026-01-01T00:05:00Z")  # the scheduler re-read it
    h.advance(600)
    assert times(fired) == ["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]
    assert fired[0]["schedule_expression"] == "*/5 * * * *"
    h.runner.update_cron_schedule(sid, "0 12 * * *")  # timezone kept
    assert h.runner.get_cron_schedule(sid)["next_run_at"] == "2026-01-01T06:30:00Z"


def test_disable_pauses_and_enable_resumes_without_catch_up(
    h: Harness, fired: list[dict[str, Any]]
) -> None:
    sid = h.runner.register_cron_workflow("report", "0 * * * *", catchup_policy="run_all")
    h.advance(3600)
    h.runner.set_cron_schedule_enabled(sid, False)
    assert h.runner.get_cron_schedule(sid)["next_run_at"] is None
    assert h.runner.list_cron_schedules(enabled_only=True) == []
    h.advance(3 * 3600)
    assert times(fired) == ["2026-01-01T01:00:00Z"]
    h.advance(1800)
    h.runner.set_cron_schedule_enabled(sid, True)
    assert h.runner.get_cron_schedule(sid)["next_run_at"] == "2026-01-01T05:00:00Z"
    h.advance(1800)
    assert times(fired) == ["2026-01-01T01:00:00Z", "2026-01-01T05:00:00Z"]


def test_deleting_stops_the_schedule_and_drops_its_history(
    h: Harness, fired: list[dict[str, Any]]
) -> None:
    sid = h.runner.register_cron_workflow("report", "0 * * * *")
    keep = h.runner.register_cron_workflow("report", "30 * * * *")
    h.advance(3600)
    h.runner.delete_cron_schedule(sid)
    assert h.next_due() == utc("2026-01-01T01:30:00Z")
    h.advance(3600)
    assert times(fired) == ["2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:30:00Z"]
    assert h.runner.get_cron_execution_history(sid) == []
    assert [s["id"] for s in h.runner.list_cron_schedules()] == [keep]
    assert len(h.runner.list_executions("report")) == 3  # its executions are kept


def test_changes_from_another_runner_are_seen_within_the_poll_interval(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    clock = FakeClock(START)
    with (
        Harness(db_url, quiet(cron_poll_interval_seconds=60), clock=clock) as worker,
        Harness(db_url, quiet(enable_cron_scheduling=False), clock=clock) as manager,
    ):
        worker.advance(30)
        sid = manager.runner.register_cron_workflow("report", "* * * * * *")
        worker.advance(29)  # before its next poll the worker does not know the schedule
        assert fired == []
        # The poll at 00:01:00 finds it. The slots since 00:00:31 came due before the worker
        # could know them: missed, so "skip" fires only the one due now.
        worker.advance(1)
        assert times(fired) == ["2026-01-01T00:01:00Z"]
        worker.advance(1)  # from now on it is known: every slot fires
        assert times(fired)[1:] == ["2026-01-01T00:01:01Z"]
        manager.runner.set_cron_schedule_enabled(sid, False)
        worker.advance(120)
        # the worker's cached next slot is re-read in the firing transaction: nothing fires
        assert len(fired) == 2


def test_enable_cron_scheduling_false_fires_nothing_but_manages(
    fired: list[dict[str, Any]],
    new_harness: Callable[..., Harness],
) -> None:
    with new_harness(config=quiet(enable_cron_scheduling=False), start=START) as h:
        sid = h.runner.register_cron_workflow("report", "* * * * *")
        h.advance(600)
        assert fired == []
        assert h.runner.get_cron_schedule(sid)["next_run_at"] == "2026-01-01T00:01:00Z"


def test_schedules_of_workflows_not_registered_here_still_fire(db_url: str) -> None:
    @cloaca.task(id="elsewhere")
    def elsewhere(context: Context) -> None:
        return None

    cloaca.workflow("remote_only", [elsewhere])
    with Harness(db_url, quiet(), start=START) as recorder:
        sid = recorder.runner.register_cron_workflow("remote_only", "0 * * * *")
    clear_registry()  # this process no longer has the workflow: only its record remains
    with Harness(db_url, quiet(), start=START) as h:
        h.advance(3600)
        (row,) = h.runner.get_cron_execution_history(sid)
        assert row["scheduled_time"] == "2026-01-01T01:00:00Z"
        assert row["status"] == "Pending"  # started; run by whoever has the workflow


def test_real_clock_fires_each_second_on_a_threaded_runner(
    db_url: str, fired: list[dict[str, Any]]
) -> None:
    # The one real-time test: registering wakes the loop, which sleeps until the slot.
    with DefaultRunner(db_url) as runner:
        sid = runner.register_cron_workflow("report", "* * * * * *")
        first_slot = runner.get_cron_schedule(sid)["next_run_at"]
        deadline = time.monotonic() + 10
        while not fired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert fired, "the first slot did not fire within 10 s"
        assert fired[0]["schedule_id"] == sid
        assert fired[0]["scheduled_time"] == first_slot
