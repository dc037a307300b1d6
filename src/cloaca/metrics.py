"""Prometheus metrics read from the database (optional extra ``cloaca[dashboard]``).

Every scrape reads one consistent snapshot through a ManagementClient, so the dashboard's
``/metrics`` and a worker's (``cloaca run --metrics-port``) report the same numbers about
the whole database, whichever process serves them:

- ``cloaca_executions{status}``, ``cloaca_task_executions{status}``: rows by status;
- ``cloaca_ready_tasks``: task executions waiting for a slot (the queue depth);
- ``cloaca_task_duration_seconds``: histogram of finished attempts' run times;
- ``cloaca_trigger_evaluations{trigger,outcome}``: polls and manual fires in the
  evaluation log (``fired`` ones are the fires), kept per trigger up to the retention;
- ``cloaca_cron_lateness_seconds``: histogram of how late each cron slot was claimed;
- ``cloaca_runner_heartbeat_age_seconds{runner}``: seconds since each runner's heartbeat.

Counts come from the retained rows, so pruning old records (retention) lowers them: they
are gauges, not counters.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric

from cloaca.clock import Clock, SystemClock

if TYPE_CHECKING:
    from cloaca.runner.management import ManagementClient

#: Upper bounds (seconds) of the task-duration histogram's buckets.
TASK_DURATION_BOUNDS = (0.01, 0.05, 0.25, 1.0, 5.0, 30.0, 120.0, 600.0)
#: Upper bounds (seconds) of the cron-lateness histogram's buckets.
CRON_LATENESS_BOUNDS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseCollector:
    """A Prometheus collector that reads the database at each scrape."""

    def __init__(self, client: ManagementClient, clock: Clock | None = None) -> None:
        self.client = client
        self.clock = clock or SystemClock()

    def collect(self) -> Iterator[Metric]:
        """The metrics of one snapshot (see the module docstring)."""
        snap = self.client.metrics_snapshot(TASK_DURATION_BOUNDS, CRON_LATENESS_BOUNDS)
        yield _by_status("cloaca_executions", "Executions by status.", snap.executions)
        yield _by_status("cloaca_task_executions", "Task executions by status.", snap.tasks)
        yield GaugeMetricFamily(
            "cloaca_ready_tasks", "Task executions waiting for a slot.", value=snap.ready_tasks
        )
        yield _histogram(
            "cloaca_task_duration_seconds",
            "Run time of finished task attempts.",
            TASK_DURATION_BOUNDS,
            snap.task_durations.counts,
            snap.task_durations.total,
        )
        evaluations = GaugeMetricFamily(
            "cloaca_trigger_evaluations",
            "Trigger polls and manual fires in the evaluation log, by outcome.",
            labels=["trigger", "outcome"],
        )
        for (trigger, outcome), n in sorted(snap.evaluations.items()):
            evaluations.add_metric([trigger, outcome], n)
        yield evaluations
        yield _histogram(
            "cloaca_cron_lateness_seconds",
            "How long after its scheduled time each cron slot was claimed.",
            CRON_LATENESS_BOUNDS,
            snap.cron_lateness.counts,
            snap.cron_lateness.total,
        )
        yield _heartbeat_ages(self.client.list_runners(), self.clock.now())


def _by_status(name: str, doc: str, counts: dict[str, int]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["status"])
    for status, n in sorted(counts.items()):
        family.add_metric([status], n)
    return family


def _histogram(
    name: str, doc: str, bounds: Sequence[float], counts: Sequence[int], total: float
) -> HistogramMetricFamily:
    cumulative, running = [], 0
    for bound, n in zip([*map(str, bounds), "+Inf"], counts, strict=True):
        running += n
        cumulative.append((bound, float(running)))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=total)


def _heartbeat_ages(runners: list[dict[str, Any]], now: datetime) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "cloaca_runner_heartbeat_age_seconds",
        "Seconds since each live runner's last heartbeat.",
        labels=["runner"],
    )
    for runner in runners:
        beat = datetime.fromisoformat(runner["heartbeat_at"])
        family.add_metric([runner["id"]], max(0.0, (now - beat).total_seconds()))
    return family


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
