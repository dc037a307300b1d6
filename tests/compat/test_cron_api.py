"""The cron API of SPEC section 7 used like a user would: return shapes, positional calls,
RFC 3339 times, and every bad input as a ``ValueError`` with the documented substring."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunner
from cloaca.testing import Harness
from cloaca.workflows.registry import clear_registry

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
SCHEDULE_KEYS = {
    "id",
    "workflow_name",
    "instance_name",
    "cron_expression",
    "timezone",
    "enabled",
    "catchup_policy",
    "params",
    "next_run_at",
    "last_run_at",
    "created_at",
    "updated_at",
}
HISTORY_KEYS = {
    "id",
    "schedule_id",
    "workflow_execution_id",
    "scheduled_time",
    "claimed_at",
    "claimed_by",
    "status",
    "started_at",
    "completed_at",
    "lost",
    "recovery_attempts",
    "recovered_at",
    "created_at",
    "updated_at",
}
UNKNOWN_ID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture
def h() -> Iterator[Harness]:
    """A harness with a one-task ``nightly`` workflow."""

    @cloaca.task(id="work")
    def work(context: Context) -> None:
        context.set("done", True)

    cloaca.workflow("nightly", [work])
    with Harness(start=datetime(2026, 1, 1, tzinfo=UTC)) as harness:
        yield harness


def test_register_returns_a_uuid_and_get_returns_the_schedule(h: Harness) -> None:
    sid = h.runner.register_cron_workflow("nightly", "0 2 * * *", "Europe/Berlin")
    assert str(uuid.UUID(sid)) == sid
    schedule = h.runner.get_cron_schedule(sid)
    assert set(schedule) == SCHEDULE_KEYS
    assert schedule["id"] == sid
    assert schedule["workflow_name"] == "nightly"
    assert schedule["cron_expression"] == "0 2 * * *"
    assert schedule["timezone"] == "Europe/Berlin"
    assert schedule["enabled"] is True
    assert schedule["catchup_policy"] == "skip"
    assert schedule["instance_name"] is None and schedule["params"] is None
    assert schedule["next_run_at"] == "2026-01-01T01:00:00Z"
    assert schedule["last_run_at"] is None
    assert RFC3339.match(schedule["created_at"]) and RFC3339.match(schedule["updated_at"])


def test_defaults_aliases_and_run_all(h: Harness) -> None:
    utc = h.runner.register_cron_workflow("nightly", "@hourly")
    assert h.runner.get_cron_schedule(utc)["timezone"] == "UTC"
    run_all = h.runner.register_cron_workflow("nightly", "@daily", catchup_policy="run_all")
    assert h.runner.get_cron_schedule(run_all)["catchup_policy"] == "run_all"


def test_list_filters_and_pages_positionally_too(h: Harness) -> None:
    ids = [h.runner.register_cron_workflow("nightly", f"{m} * * * *") for m in range(5)]
    h.runner.set_cron_schedule_enabled(ids[1], False)
    assert [s["id"] for s in h.runner.list_cron_schedules()] == ids
    assert [s["id"] for s in h.runner.list_cron_schedules(True)] == ids[:1] + ids[2:]
    assert [s["id"] for s in h.runner.list_cron_schedules(False, 2, 1)] == ids[1:3]
    assert [s["id"] for s in h.runner.list_cron_schedules(None, None, 3)] == ids[3:]
    assert [s["id"] for s in h.runner.list_cron_schedules(enabled_only=True, limit=1)] == ids[:1]
    assert all(set(s) == SCHEDULE_KEYS for s in h.runner.list_cron_schedules())


def test_instance_params_show_and_reach_the_context(h: Harness) -> None:
    sid = h.runner.register_workflow_instance(
        "nightly", "tenant-a", "0 * * * *", "UTC", {"tenant": "a", "batch": [1, 2]}
    )
    schedule = h.runner.get_cron_schedule(sid)
    assert schedule["instance_name"] == "tenant-a"
    assert schedule["params"] == {"tenant": "a", "batch": [1, 2]}
    h.advance(3600)
    (row,) = h.runner.get_cron_execution_history(sid)
    result = h.runner.get_execution(row["workflow_execution_id"])
    assert result.final_context["tenant"] == "a"
    assert result.final_context["schedule_id"] == sid
    assert result.final_context["done"] is True


def test_history_shape_paging_and_stats(h: Harness) -> None:
    sid = h.runner.register_cron_workflow("nightly", "*/10 * * * *")
    h.advance(3600)
    history = h.runner.get_cron_execution_history(sid)
    assert len(history) == 6
    assert all(set(r) == HISTORY_KEYS for r in history)
    assert history[0]["scheduled_time"] == "2026-01-01T01:00:00Z"  # newest first
    assert [r["status"] for r in history] == ["Completed"] * 6
    assert all(RFC3339.match(r["claimed_at"]) for r in history)
    assert h.runner.get_cron_execution_history(sid, 2, 1) == history[1:3]
    assert h.runner.get_cron_execution_history(sid, limit=1, offset=5) == history[5:]
    assert h.runner.get_cron_execution_history(UNKNOWN_ID) == []
    for since in ("2026-01-01T00:30:00Z", datetime(2026, 1, 1, 0, 30, tzinfo=UTC)):
        stats = h.runner.get_cron_execution_stats(since)
        assert stats["total_executions"] == 4
        assert stats["successful_executions"] == 4
        assert stats["lost_executions"] == 0
        assert stats["success_rate"] == 100.0
    assert h.runner.get_cron_execution_stats("2026-01-01T05:30:00+05:30")["total_executions"] == 6
    empty = h.runner.get_cron_execution_stats("2030-01-01T00:00:00Z")
    assert (empty["total_executions"], empty["success_rate"]) == (0, 0.0)


def test_update_enable_and_delete_change_what_get_returns(h: Harness) -> None:
    sid = h.runner.register_cron_workflow("nightly", "0 2 * * *")
    h.runner.update_cron_schedule(sid, "30 3 * * *", "America/New_York")
    schedule = h.runner.get_cron_schedule(sid)
    assert (schedule["cron_expression"], schedule["timezone"]) == ("30 3 * * *", "America/New_York")
    assert schedule["next_run_at"] == "2026-01-01T08:30:00Z"
    h.runner.set_cron_schedule_enabled(sid, False)
    assert h.runner.get_cron_schedule(sid)["enabled"] is False
    h.runner.set_cron_schedule_enabled(sid, True)
    assert h.runner.get_cron_schedule(sid)["enabled"] is True
    h.runner.delete_cron_schedule(sid)
    with pytest.raises(ValueError, match="Failed to get cron schedule"):
        h.runner.get_cron_schedule(sid)


def test_a_client_process_can_schedule_a_workflow_it_does_not_have(db_url: str) -> None:
    @cloaca.task(id="work")
    def work(context: Context) -> None:
        return None

    cloaca.workflow("recorded", [work])
    DefaultRunner(db_url).shutdown()  # a worker recorded the definition
    clear_registry()  # this process is a client: it has no workflows of its own
    with DefaultRunner(db_url) as client:
        sid = client.register_cron_workflow("recorded", "0 0 * * *")
        assert client.get_cron_schedule(sid)["workflow_name"] == "recorded"


# -- bad input ----------------------------------------------------------------------------------

SID = object()  # stands for the id of an existing schedule

BAD: list[tuple[Any, ...]] = [
    # name, runner method, positional args, [keyword args,] substrings of the ValueError
    (
        "malformed",
        "register_cron_workflow",
        ("nightly", "not a cron"),
        ["Invalid cron expression", "'not a cron'"],
    ),
    (
        "too few fields",
        "register_cron_workflow",
        ("nightly", "* * *"),
        ["Invalid cron expression", "3 field"],
    ),
    (
        "unknown alias",
        "register_cron_workflow",
        ("nightly", "@often"),
        ["Invalid cron expression", "alias"],
    ),
    ("empty expression", "register_cron_workflow", ("nightly", ""), ["Invalid cron expression"]),
    (
        "minute 60",
        "register_cron_workflow",
        ("nightly", "60 * * * *"),
        ["Invalid cron expression", "out of range", "0-59"],
    ),
    (
        "hour 24",
        "register_cron_workflow",
        ("nightly", "0 24 * * *"),
        ["Invalid cron expression", "hour"],
    ),
    (
        "day 32",
        "register_cron_workflow",
        ("nightly", "0 0 32 * *"),
        ["Invalid cron expression", "day-of-month"],
    ),
    (
        "month 13",
        "register_cron_workflow",
        ("nightly", "0 0 1 13 *"),
        ["Invalid cron expression", "month"],
    ),
    (
        "weekday 8",
        "register_cron_workflow",
        ("nightly", "0 0 * * 8"),
        ["Invalid cron expression", "day-of-week"],
    ),
    (
        "second 61",
        "register_cron_workflow",
        ("nightly", "61 0 0 * * *"),
        ["Invalid cron expression", "second"],
    ),
    (
        "never fires",
        "register_cron_workflow",
        ("nightly", "0 0 30 2 *"),
        ["Invalid cron expression", "never fires"],
    ),
    (
        "never fires (instance)",
        "register_workflow_instance",
        ("nightly", "i", "0 0 31 4 *", "UTC", {}),
        ["never fires"],
    ),
    (
        "unknown timezone",
        "register_cron_workflow",
        ("nightly", "0 0 * * *", "Mars/Olympus"),
        ["Invalid timezone", "Mars/Olympus"],
    ),
    (
        "empty timezone",
        "register_cron_workflow",
        ("nightly", "0 0 * * *", ""),
        ["Invalid timezone"],
    ),
    ("unknown workflow", "register_cron_workflow", ("nope", "0 0 * * *"), ["'nope'", "not found"]),
    (
        "unknown workflow (instance)",
        "register_workflow_instance",
        ("nope", "i", "0 0 * * *", "UTC", {}),
        ["not found"],
    ),
    (
        "bad catchup policy",
        "register_cron_workflow",
        ("nightly", "0 0 * * *"),
        {"catchup_policy": "all"},
        ["catchup_policy", "'all'", "run_all"],
    ),
    (
        "empty instance name",
        "register_workflow_instance",
        ("nightly", "", "0 0 * * *", "UTC", {}),
        ["instance_name"],
    ),
    (
        "reserved param",
        "register_workflow_instance",
        ("nightly", "i", "0 0 * * *", "UTC", {"schedule_id": 1}),
        ["reserved", "schedule_id"],
    ),
    (
        "non-JSON param",
        "register_workflow_instance",
        ("nightly", "i", "0 0 * * *", "UTC", {"when": object()}),
        ["params['when']", "JSON"],
    ),
    ("get: non-UUID", "get_cron_schedule", ("abc",), ["Invalid schedule ID", "'abc'"]),
    (
        "get: unknown",
        "get_cron_schedule",
        (UNKNOWN_ID,),
        ["Failed to get cron schedule", UNKNOWN_ID],
    ),
    (
        "update: non-UUID",
        "update_cron_schedule",
        ("abc", "0 0 * * *", "UTC"),
        ["Invalid schedule ID"],
    ),
    (
        "update: unknown",
        "update_cron_schedule",
        (UNKNOWN_ID, "0 0 * * *", "UTC"),
        ["Failed to update cron schedule", UNKNOWN_ID],
    ),
    (
        "update: bad expression",
        "update_cron_schedule",
        (SID, "0 0 * *", "UTC"),
        ["Invalid cron expression"],
    ),
    (
        "update: bad timezone",
        "update_cron_schedule",
        (SID, "0 0 * * *", "Nowhere/City"),
        ["Invalid timezone"],
    ),
    ("update: never fires", "update_cron_schedule", (SID, "0 0 30 2 *", "UTC"), ["never fires"]),
    (
        "update: duplicate",
        "update_cron_schedule",
        (SID, "15 * * * *", "UTC"),
        ["Failed to update cron schedule", "already"],
    ),
    ("enable: non-UUID", "set_cron_schedule_enabled", (42, True), ["Invalid schedule ID", "42"]),
    (
        "enable: unknown",
        "set_cron_schedule_enabled",
        (UNKNOWN_ID, True),
        ["Failed to update cron schedule"],
    ),
    ("enable: not a bool", "set_cron_schedule_enabled", (SID, "yes"), ["enabled", "'yes'"]),
    ("delete: non-UUID", "delete_cron_schedule", ("12345",), ["Invalid schedule ID"]),
    ("delete: unknown", "delete_cron_schedule", (UNKNOWN_ID,), ["Failed to delete cron schedule"]),
    ("history: non-UUID", "get_cron_execution_history", ("x",), ["Invalid schedule ID"]),
    ("history: bad limit", "get_cron_execution_history", (SID, -1), ["limit", "-1"]),
    ("list: bad offset", "list_cron_schedules", (None, 10, "a"), ["offset", "'a'"]),
    ("list: bad enabled_only", "list_cron_schedules", ("yes",), ["enabled_only"]),
    (
        "stats: naive string",
        "get_cron_execution_stats",
        ("2026-01-01T00:00:00",),
        ["Invalid datetime format", "offset"],
    ),
    (
        "stats: naive datetime",
        "get_cron_execution_stats",
        (datetime(2026, 1, 1),),
        ["Invalid datetime format"],
    ),
    (
        "stats: garbage",
        "get_cron_execution_stats",
        ("yesterday",),
        ["Invalid datetime format", "'yesterday'"],
    ),
    ("stats: not a time", "get_cron_execution_stats", (12345,), ["Invalid datetime format"]),
]


@pytest.mark.parametrize("case", BAD, ids=[b[0] for b in BAD])
def test_bad_input(h: Harness, case: tuple[Any, ...]) -> None:
    _, method, args, *rest = case
    kwargs, fragments = (rest[0], rest[1]) if len(rest) == 2 else ({}, rest[0])
    existing = h.runner.register_cron_workflow("nightly", "0 * * * *")
    h.runner.register_cron_workflow("nightly", "15 * * * *")
    before = h.runner.list_cron_schedules()
    args = tuple(existing if a is SID else a for a in args)
    with pytest.raises(ValueError) as caught:
        getattr(h.runner, method)(*args, **kwargs)
    for fragment in fragments:
        assert fragment in str(caught.value)
    assert h.runner.list_cron_schedules() == before  # nothing half-written


def test_enabling_a_deleted_schedule_fails(h: Harness) -> None:
    sid = h.runner.register_cron_workflow("nightly", "0 * * * *")
    h.runner.delete_cron_schedule(sid)
    with pytest.raises(ValueError, match="Failed to update cron schedule"):
        h.runner.set_cron_schedule_enabled(sid, True)
    with pytest.raises(ValueError, match="Failed to update cron schedule"):
        h.runner.update_cron_schedule(sid, "0 0 * * *", "UTC")
    with pytest.raises(ValueError, match="Failed to delete cron schedule"):
        h.runner.delete_cron_schedule(sid)
