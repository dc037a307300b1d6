"""Pure helpers that turn the ManagementClient's dicts into what the templates draw: times
and durations for people, a task timeline, a workflow graph layout, an evaluation strip.
No I/O; every function takes ``now`` when it needs the time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloaca.cron.schedule import validate_cron
from cloaca.workflows.dag import execution_levels


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 string from the client as an aware datetime (None stays None)."""
    return None if value is None else datetime.fromisoformat(value).astimezone(UTC)


def short_time(value: str | None) -> str:
    """``2026-12-03 10:15:02`` (UTC, to the second), or ``-``."""
    moment = parse_time(value)
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``340 ms``, ``4.2 s``, ``3 m 05 s``, ``2 h 03 m``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def between(start: str | None, end: str | None, now: datetime) -> float | None:
    """Seconds from ``start`` to ``end`` (or to ``now`` while ``end`` is None)."""
    begun = parse_time(start)
    if begun is None:
        return None
    ended = parse_time(end) or now
    return max(0.0, (ended - begun).total_seconds())


def ago(value: str | None, now: datetime) -> str:
    """``12 s ago`` / ``in 3 m 00 s`` relative to ``now``; ``-`` for None."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    return f"{duration(seconds)} ago" if seconds >= 0 else f"in {duration(-seconds)}"


@dataclass(frozen=True)
class Bar:
    """One task on an execution's timeline: offsets in percent of the whole span."""

    task_id: str
    status: str
    left: float
    width: float
    label: str


def timeline(tasks: Mapping[str, Any], now: datetime) -> list[Bar]:
    """Bars for an execution's tasks (``TaskResult``-like objects by task id), placed on one
    time axis from the first start to the last end (or ``now`` for running tasks); a task
    tried more than once shows its last attempt. Tasks that never started get an empty bar
    at the left."""
    starts = [parse_time(t.started_at) for t in tasks.values()]
    ends = [parse_time(t.completed_at) or now for t in tasks.values() if t.started_at]
    known = [s for s in starts if s is not None]
    if not known:
        return [Bar(tid, t.status, 0.0, 0.0, "not started") for tid, t in tasks.items()]
    origin, last = min(known), max(ends)
    span = max((last - origin).total_seconds(), 1e-3)
    bars = []
    for tid, t in tasks.items():
        begun = parse_time(t.started_at)
        if begun is None:
            bars.append(Bar(tid, t.status, 0.0, 0.0, "not started"))
            continue
        took = between(t.started_at, t.completed_at, now) or 0.0
        left = (begun - origin).total_seconds() / span * 100
        label = duration(took) if t.attempts <= 1 else f"try {t.attempts}: {duration(took)}"
        bars.append(Bar(tid, t.status, left, max(took / span * 100, 0.5), label))
    return bars


@dataclass(frozen=True)
class Graph:
    """A workflow drawn left to right: one column per level, edges as SVG paths."""

    width: int
    height: int
    nodes: list[tuple[str, int, int]]
    edges: list[str]


NODE_W, NODE_H, GAP_X, GAP_Y = 170, 34, 60, 18


def graph(tasks: Sequence[Mapping[str, Any]]) -> Graph:
    """Lay out a recorded workflow definition's tasks (``id``, ``dependencies``) by level."""
    deps = {t["id"]: list(t.get("dependencies", [])) for t in tasks}
    levels = execution_levels(deps) if deps else []
    place: dict[str, tuple[int, int]] = {}
    for col, level in enumerate(levels):
        for row, tid in enumerate(level):
            place[tid] = (col * (NODE_W + GAP_X) + 10, row * (NODE_H + GAP_Y) + 10)
    edges = []
    for tid, parents in deps.items():
        x2, y2 = place[tid]
        for parent in parents:
            x1, y1 = place[parent]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            mid = (sx + ex) // 2
            edges.append(f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}")
    width = max((x for x, _ in place.values()), default=0) + NODE_W + 20
    height = max((y for _, y in place.values()), default=0) + NODE_H + 20
    return Graph(width, height, [(tid, x, y) for tid, (x, y) in place.items()], edges)


@dataclass(frozen=True)
class Mark:
    """One trigger evaluation on the strip: position in percent, outcome, a hover title."""

    left: float
    outcome: str
    title: str


def evaluation_strip(evaluations: Iterable[Mapping[str, Any]], now: datetime) -> list[Mark]:
    """Marks for evaluations (newest first, as the client returns them) on an axis from the
    oldest one to ``now``."""
    rows = [(parse_time(e["evaluated_at"]), e) for e in evaluations]
    times = [t for t, _ in rows if t is not None]
    if not times:
        return []
    origin = min(times)
    span = max((now - origin).total_seconds(), 1e-3)
    marks = []
    for moment, e in rows:
        assert moment is not None
        title = f"{short_time(e['evaluated_at'])} {e['outcome']}"
        if e.get("message"):
            title += f": {e['message']}"
        left = min((moment - origin).total_seconds() / span * 100, 100.0)
        marks.append(Mark(left, str(e["outcome"]), title))
    return marks


def next_runs(expression: str, timezone: str, after: datetime, count: int = 5) -> list[str]:
    """The next ``count`` fire times of a cron schedule after ``after``, as RFC 3339."""
    schedule = validate_cron(expression, timezone)
    found, moment = [], after
    for _ in range(count):
        moment = schedule.next_after(moment)
        found.append(moment.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    return found


def lateness(history_row: Mapping[str, Any]) -> float | None:
    """Seconds between a cron slot's scheduled time and its claim (None if unknown)."""
    scheduled = parse_time(history_row.get("scheduled_time"))
    claimed = parse_time(history_row.get("claimed_at"))
    if scheduled is None or claimed is None:
        return None
    return max(0.0, (claimed - scheduled).total_seconds())
