"""Prometheus metrics read from the database (optional extra ``cloaca[dashboard]``).

The dashboard's ``/metrics`` and a worker's (``cloaca run --metrics-port``) report the
whole database, whichever process serves them, through a ManagementClient:

- gauges of what is in motion now: ``cloaca_executions_active{status}`` (Pending,
  Running), ``cloaca_ready_tasks`` (the queue depth), ``cloaca_running_tasks``,
  ``cloaca_runner_heartbeat_age_seconds{runner}``;
- counters and histograms of what happened since this process started serving:
  ``cloaca_executions_finished_total{status}``, ``cloaca_tasks_finished_total{status}``,
  ``cloaca_task_duration_seconds`` (finished task executions, last attempt),
  ``cloaca_trigger_evaluations_total{trigger,outcome}`` (polls and manual fires;
  ``fired`` ones are the fires), ``cloaca_cron_lateness_seconds`` (slot claimed after its
  scheduled time).

A scrape never reads a whole table: the gauges go through partial indexes, and each
counter reads only the rows added since the previous scrape (a "tail" from a position),
re-reading the few still in motion (an execution or task not yet finished) until they are
final. Like any Prometheus counter they start at zero with the process.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from cloaca.clock import Clock, SystemClock

if TYPE_CHECKING:
    from cloaca.runner.management import ManagementClient

#: Upper bounds (seconds) of the task-duration histogram's buckets.
TASK_DURATION_BOUNDS = (0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0)
#: Upper bounds (seconds) of the cron-lateness histogram's buckets.
CRON_LATENESS_BOUNDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)
#: Rows one scrape reads per tail at most; a longer backlog is read over the next scrapes.
TAIL_LIMIT = 5000

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Tail:
    """Reads the rows of one kind added since it started, and hands out each final row
    once. ``low`` only moves past rows that are final, so a row still in motion is read
    again (with those after it) until it is final; ``counted`` remembers the final rows
    read beyond it."""

    def __init__(self, client: ManagementClient, what: str) -> None:
        self.client = client
        self.what = what
        self.low = client.metrics_tail_end(what)
        self.counted: set[int] = set()

    def new_final_rows(self) -> list[dict[str, Any]]:
        """The rows that became final since the previous call, oldest first."""
        fresh = []
        settled = True  # every row so far is final: ``low`` may move past them
        for row in self.client.metrics_tail(self.what, self.low, TAIL_LIMIT):
            if not row["final"]:
                settled = False
                continue
            if row["pos"] not in self.counted:
                fresh.append(row)
            if settled:
                self.low = row["pos"]
                self.counted.discard(row["pos"])
            else:
                self.counted.add(row["pos"])
        return fresh


class Histogram:
    """Cumulative bucket counts and a sum, fed one observation at a time."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is >= it."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        """The histogram as Prometheus exposes it (cumulative buckets, +Inf last)."""
        cumulative, running = [], 0
        for bound, n in zip([*map(str, self.bounds), "+Inf"], self.counts, strict=True):
            running += n
            cumulative.append((bound, float(running)))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.total)


class DatabaseCollector:
    """A Prometheus collector over a ManagementClient (thread-safe: scrapes may overlap)."""

    def __init__(self, client: ManagementClient, clock: Clock | None = None) -> None:
        self.client = client
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._tails = {
            what: Tail(client, what)
            for what in ("executions", "tasks", "evaluations", "cron_slots")
        }
        # Every final status is exposed from the start, at 0 (no series appears late).
        self.executions = Counter(dict.fromkeys(("Completed", "Failed", "Cancelled"), 0))
        self.tasks = Counter(dict.fromkeys(("Completed", "Failed", "Skipped"), 0))
        self.evaluations: Counter[tuple[str, str]] = Counter()
        self.durations = Histogram(TASK_DURATION_BOUNDS)
        self.lateness = Histogram(CRON_LATENESS_BOUNDS)

    def _catch_up(self) -> None:
        for row in self._tails["executions"].new_final_rows():
            self.executions[row["status"]] += 1
        for row in self._tails["tasks"].new_final_rows():
            self.tasks[row["status"]] += 1
            took = _seconds(row["started_at"], row["completed_at"])
            if took is not None:
                self.durations.observe(took)
        for row in self._tails["evaluations"].new_final_rows():
            self.evaluations[(row["trigger_name"], row["outcome"])] += 1
        for row in self._tails["cron_slots"].new_final_rows():
            late = _seconds(row["scheduled_time"], row["claimed_at"])
            if late is not None:
                self.lateness.observe(late)

    def collect(self) -> Iterator[Metric]:
        """The metrics as of now (see the module docstring)."""
        with self._lock:
            self._catch_up()
            queue = self.client.queue_counts()
            runners = self.client.list_runners()
            yield _labelled(
                GaugeMetricFamily,
                "cloaca_executions_active",
                "Executions not finished yet, by status.",
                ["status"],
                {
                    ("Pending",): queue["executions_pending"],
                    ("Running",): queue["executions_running"],
                },
            )
            yield GaugeMetricFamily(
                "cloaca_ready_tasks",
                "Task executions waiting for a slot.",
                value=queue["tasks_ready"],
            )
            yield GaugeMetricFamily(
                "cloaca_running_tasks", "Task executions running now.", value=queue["tasks_running"]
            )
            yield _labelled(
                CounterMetricFamily,
                "cloaca_executions_finished",
                "Executions that finished, by status.",
                ["status"],
                {(k,): v for k, v in self.executions.items()},
            )
            yield _labelled(
                CounterMetricFamily,
                "cloaca_tasks_finished",
                "Task executions that finished, by status.",
                ["status"],
                {(k,): v for k, v in self.tasks.items()},
            )
            yield self.durations.family(
                "cloaca_task_duration_seconds", "Run time of finished task executions."
            )
            yield _labelled(
                CounterMetricFamily,
                "cloaca_trigger_evaluations",
                "Trigger polls and manual fires, by outcome.",
                ["trigger", "outcome"],
                {key: float(n) for key, n in self.evaluations.items()},
            )
            yield self.lateness.family(
                "cloaca_cron_lateness_seconds",
                "How long after its scheduled time each cron slot was claimed.",
            )
            now = self.clock.now()
            yield _labelled(
                GaugeMetricFamily,
                "cloaca_runner_heartbeat_age_seconds",
                "Seconds since each live runner's last heartbeat.",
                ["runner"],
                {
                    (r["id"],): max(0.0, (now - _time(r["heartbeat_at"])).total_seconds())
                    for r in runners
                },
            )


def _labelled(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily],
    name: str,
    doc: str,
    labels: list[str],
    values: dict[tuple[str, ...], float],
) -> Metric:
    family = kind(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _seconds(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (never negative); None if either is missing."""
    if start is None or end is None:
        return None
    return max(0.0, (_time(end) - _time(start)).total_seconds())


def registry(client: ManagementClient, clock: Clock | None = None) -> CollectorRegistry:
    """A registry holding only the database collector over ``client``."""
    found = CollectorRegistry(auto_describe=False)
    found.register(DatabaseCollector(client, clock))
    return found


def render(metrics: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``metrics`` (served with :data:`CONTENT_TYPE`)."""
    return generate_latest(metrics)


def serve(client: ManagementClient, port: int, host: str = "127.0.0.1") -> Any:
    """Serve ``/metrics`` over ``client`` on ``host:port`` from a daemon thread (a
    worker's ``--metrics-port``); returns the server (``shutdown()`` stops it)."""
    server, _thread = start_http_server(port, addr=host, registry=registry(client))
    return server
