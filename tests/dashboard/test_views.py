"""The dashboard's pure helpers: times and durations for people, the task timeline, the
workflow graph layout, the evaluation strip, the next cron runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from cloaca.dashboard import views

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0.34, "340 ms"), (4.21, "4.2 s"), (185, "3 m 05 s"), (7380, "2 h 03 m")],
)
def test_duration(seconds: float | None, shown: str) -> None:
    assert views.duration(seconds) == shown


def test_ago_and_in() -> None:
    assert views.ago("2026-03-01T11:59:48Z", NOW) == "12.0 s ago"
    assert views.ago("2026-03-01T12:03:00Z", NOW) == "in 3 m 00 s"
    assert views.ago(None, NOW) == "-"


@dataclass
class T:
    status: str
    started_at: str | None
    completed_at: str | None
    attempts: int = 1


def test_timeline_places_tasks_on_one_axis() -> None:
    bars = views.timeline(
        {
            "a": T("Completed", "2026-03-01T11:00:00Z", "2026-03-01T11:00:10Z"),
            "b": T("Running", "2026-03-01T11:00:10Z", None, attempts=2),
            "c": T("NotStarted", None, None),
        },
        datetime(2026, 3, 1, 11, 0, 20, tzinfo=UTC),
    )
    assert [(b.task_id, round(b.left), round(b.width)) for b in bars] == [
        ("a", 0, 50),
        ("b", 50, 50),
        ("c", 0, 0),
    ]
    assert [b.label for b in bars] == ["10.0 s", "try 2: 10.0 s", "not started"]


def test_graph_lays_out_levels_left_to_right() -> None:
    drawn = views.graph(
        [
            {"id": "a", "dependencies": []},
            {"id": "b", "dependencies": ["a"]},
            {"id": "c", "dependencies": ["a"]},
            {"id": "d", "dependencies": ["b", "c"]},
        ]
    )
    where = {tid: (x, y) for tid, x, y in drawn.nodes}
    assert where["a"][0] < where["b"][0] == where["c"][0] < where["d"][0]
    assert where["b"][1] != where["c"][1]
    assert len(drawn.edges) == 4


def test_evaluation_strip_runs_from_the_oldest_to_now() -> None:
    marks = views.evaluation_strip(
        [
            {"evaluated_at": "2026-03-01T11:59:00Z", "outcome": "fired", "message": None},
            {"evaluated_at": "2026-03-01T11:58:00Z", "outcome": "error", "message": "boom"},
        ],
        NOW,
    )
    assert [(round(m.left), m.outcome) for m in marks] == [(50, "fired"), (0, "error")]
    assert marks[1].title.endswith("error: boom")


def test_next_runs_of_a_cron_expression() -> None:
    assert views.next_runs("*/15 * * * *", "UTC", NOW, 3) == [
        "2026-03-01T12:15:00Z",
        "2026-03-01T12:30:00Z",
        "2026-03-01T12:45:00Z",
    ]


def test_lateness_of_a_cron_slot() -> None:
    row = {"scheduled_time": "2026-03-01T12:00:00Z", "claimed_at": "2026-03-01T12:00:02.5Z"}
    assert views.lateness(row) == 2.5
    assert views.lateness({"scheduled_time": "2026-03-01T12:00:00Z", "claimed_at": None}) is None
