"""``/metrics`` in Prometheus text format, from the dashboard and from a worker
(``cloaca run --metrics-port``), on both backends: the numbers match the database."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from cloaca.metrics import Tail
from cloaca.testing import Harness
from dashboard_support import dashboard, fill_small, get


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_dashboard_metrics_count_what_happens_while_it_serves(db_url: str) -> None:
    schedule_id = fill_small(db_url)
    with dashboard(db_url) as (client, base):
        before = _samples(get(base, "/metrics").text)
        assert before[("cloaca_executions_finished_total", (("status", "Completed"),))] == 0
        pending = client.start("solo")  # no worker yet: queued
        queued = _samples(get(base, "/metrics").text)
        assert queued[("cloaca_executions_active", (("status", "Pending"),))] == 1
        assert queued[("cloaca_ready_tasks", ())] == 1
        client.cancel_execution(pending)
        with Harness(db_url) as h:
            for _ in range(3):
                h.execute("solo")
            h.runner.fire_trigger("watcher")
            h.run_until_idle()
            h.advance(timedelta(hours=1))  # one hourly cron slot
        samples = _samples(get(base, "/metrics").text)
        ran = 3 + 1 + len(client.get_cron_execution_history(schedule_id))
        assert samples[("cloaca_executions_finished_total", (("status", "Completed"),))] == ran
        assert samples[("cloaca_executions_finished_total", (("status", "Cancelled"),))] == 1
        assert samples[("cloaca_tasks_finished_total", (("status", "Completed"),))] == ran
        assert samples[("cloaca_task_duration_seconds_count", ())] == ran
        assert samples[("cloaca_executions_active", (("status", "Pending"),))] == 0
        fired = (("outcome", "fired"), ("trigger", "watcher"))
        assert samples[("cloaca_trigger_evaluations_total", fired)] == 1
        assert samples[("cloaca_cron_lateness_seconds_count", ())] == 1
        # A scrape counts each finished row once.
        again = _samples(get(base, "/metrics").text)
        assert again[("cloaca_executions_finished_total", (("status", "Completed"),))] == ran


def test_a_long_running_execution_does_not_hide_the_ones_after_it() -> None:
    class FakeClient:
        """The tail of a client where row 1 is still running while rows 2-3 finish."""

        def __init__(self) -> None:
            self.rows = [
                {"pos": 1, "final": False, "status": "Running"},
                {"pos": 2, "final": True, "status": "Completed"},
                {"pos": 3, "final": True, "status": "Failed"},
            ]

        def metrics_tail_end(self, what: str) -> int:
            return 0

        def metrics_tail(self, what: str, after: int, limit: int) -> list[dict[str, object]]:
            return [r for r in self.rows if int(r["pos"]) > after][:limit]

    client = FakeClient()
    tail = Tail(client, "executions")  # type: ignore[arg-type]
    assert [r["pos"] for r in tail.new_final_rows()] == [2, 3]
    assert tail.new_final_rows() == []  # counted once, though read again
    client.rows[0] = {"pos": 1, "final": True, "status": "Completed"}
    assert [r["pos"] for r in tail.new_final_rows()] == [1]
    assert tail.low == 3 and tail.counted == set()


def test_a_worker_serves_metrics_with_its_heartbeat(db_url: str, tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        "import cloaca\n"
        "@cloaca.task(id='t')\n"
        "def t(context):\n    pass\n"
        "cloaca.workflow('w', [t])\n"
    )
    port = _free_port()
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "cloaca"),
            "--db",
            db_url,
            "run",
            str(app),
            "--metrics-port",
            str(port),
            "--for",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = _scrape(f"http://127.0.0.1:{port}/metrics", worker)
        ages = [
            value
            for (name, _labels), value in _samples(text).items()
            if name == "cloaca_runner_heartbeat_age_seconds"
        ]
        assert len(ages) == 1 and 0 <= ages[0] < 30
        assert "cloaca_task_duration_seconds_bucket" in text
    finally:
        worker.terminate()
        worker.communicate(timeout=30)


def _scrape(url: str, worker: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert worker.poll() is None, worker.communicate()
        try:
            response = httpx.get(url, timeout=2)
            if "cloaca_runner_heartbeat_age_seconds{" in response.text:
                return response.text
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no metrics with a runner at {url}")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
