"""Which due slots fire in one round: ``plan_slots`` (pure) and the fired context."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloaca.cron.schedule import CronSchedule
from cloaca.engine.cron_plan import SlotPlan, plan_slots, slot_context
from cloaca.engine.shape import Shape
from cloaca.store.cron_records import CatchupPolicy

SKIP, RUN_ALL = CatchupPolicy.SKIP, CatchupPolicy.RUN_ALL
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """T0 plus some minutes."""
    return T0 + timedelta(minutes=minutes)


HOURLY = CronSchedule("0 * * * *")
EVERY_10_MIN = CronSchedule("*/10 * * * *")

PLANS = [
    # id, cron, next_run_at, now, on_time_since, policy, cap, fired (minutes), resumes, dropped
    ("not due yet", HOURLY, at(60), at(59), at(0), SKIP, 100, [], 60, False),
    ("due exactly now", HOURLY, at(60), at(60), at(0), SKIP, 100, [60], 120, False),
    ("due, a little late", HOURLY, at(60), at(60.5), at(0), SKIP, 100, [60], 120, False),
    # Late while the scheduler was running (a busy process): every slot fires, any policy.
    ("late while alive", EVERY_10_MIN, at(10), at(35), at(0), SKIP, 100, [10, 20, 30], 40, False),
    # Missed while down (before on_time_since): skip fires only the latest missed slot ...
    ("skip after downtime", HOURLY, at(60), at(400), at(400), SKIP, 100, [360], 420, True),
    ("skip, one missed", HOURLY, at(60), at(61), at(61), SKIP, 100, [60], 120, False),
    # ... and nothing late at all when a slot is on time in the same round.
    ("skip, on time wins", HOURLY, at(60), at(360), at(360), SKIP, 100, [360], 420, True),
    (
        "run_all after downtime",
        HOURLY,
        at(60),
        at(400),
        at(400),
        RUN_ALL,
        100,
        [60, 120, 180, 240, 300, 360],
        420,
        False,
    ),
    ("run_all capped", HOURLY, at(60), at(400), at(400), RUN_ALL, 2, [60, 120], 420, True),
    (
        "run_all, missed then on time",
        EVERY_10_MIN,
        at(10),
        at(45),
        at(25),
        RUN_ALL,
        100,
        [10, 20, 30, 40],
        50,
        False,
    ),
    (
        "skip, missed then on time",
        EVERY_10_MIN,
        at(10),
        at(45),
        at(25),
        SKIP,
        100,
        [30, 40],
        50,
        True,
    ),
    ("on-time slots capped", EVERY_10_MIN, at(10), at(55), at(0), SKIP, 2, [10, 20], 60, True),
]


@pytest.mark.parametrize(
    ("cron", "next_run_at", "now", "on_time_since", "policy", "cap", "fired", "resumes", "dropped"),
    [p[1:] for p in PLANS],
    ids=[p[0] for p in PLANS],
)
def test_plan_slots(
    cron: CronSchedule,
    next_run_at: datetime,
    now: datetime,
    on_time_since: datetime,
    policy: CatchupPolicy,
    cap: int,
    fired: list[int],
    resumes: int,
    dropped: bool,
) -> None:
    plan = plan_slots(cron, next_run_at, now, on_time_since, policy, cap)
    assert plan == SlotPlan(tuple(at(m) for m in fired), at(resumes), dropped)


def test_plan_across_a_dst_gap_fires_the_collapsed_slot_once() -> None:
    berlin = CronSchedule("0,20,40 2 * * *", "Europe/Berlin")
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    first = berlin.next_after(start)  # 02:00..02:40 do not exist: once at 03:00 CEST
    assert first == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    plan = plan_slots(berlin, first, first + timedelta(hours=2), start, SKIP, 100)
    assert plan.fire == (first,)
    assert plan.next_run_at == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["* * * * * *", "*/7 * * * * *", "*/5 * * * *", "0 */3 * * *"]),
    st.integers(0, 3_000),
    st.integers(0, 3_000),
    st.sampled_from([SKIP, RUN_ALL]),
    st.integers(1, 50),
)
def test_plan_properties(
    expression: str, lag: int, alive_offset: int, policy: CatchupPolicy, cap: int
) -> None:
    cron = CronSchedule(expression)
    next_run_at = cron.next_after(T0)
    now = next_run_at + timedelta(seconds=lag)
    on_time_since = min(now, T0 + timedelta(seconds=alive_offset))
    plan = plan_slots(cron, next_run_at, now, on_time_since, policy, cap)
    fired = list(plan.fire)
    assert fired == sorted(set(fired))  # ascending, no duplicates
    assert all(next_run_at <= s <= now for s in fired)
    assert all(cron.next_after(s - timedelta(microseconds=1)) == s for s in fired)  # real slots
    assert plan.next_run_at == cron.next_after(now)  # resumes at the first future slot
    on_time = [s for s in fired if s >= on_time_since]
    missed = [s for s in fired if s < on_time_since]
    # every on-time slot fires (up to the cap), whatever the policy
    expected = cron.slots_between(max(next_run_at, on_time_since) - timedelta(microseconds=1), now)
    assert on_time == expected[:cap]
    if policy is SKIP:
        assert len(missed) <= 1 and not (missed and on_time)
    else:
        assert len(missed) <= cap
    all_due = cron.slots_between(next_run_at - timedelta(microseconds=1), now)
    assert plan.dropped == (set(all_due) != set(fired))


def test_slot_context_holds_params_and_the_schedule_keys() -> None:
    shape = Shape.from_definition(
        {"name": "wf", "version": "v", "tasks": [{"id": "a", "dependencies": []}]}
    )
    text = slot_context(shape, "sid", "0 9 * * *", "Europe/Berlin", {"region": "eu"}, at(60))
    assert json.loads(text) == {
        "region": "eu",
        "scheduled_time": "2026-01-01T01:00:00Z",
        "schedule_id": "sid",
        "schedule_timezone": "Europe/Berlin",
        "schedule_expression": "0 9 * * *",
    }
