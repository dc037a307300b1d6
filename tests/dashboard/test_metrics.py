"""``/metrics`` in Prometheus text format, from the dashboard and from a worker
(``cloaca run --metrics-port``), on both backends: the numbers match the database."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dashboard_support import TRIGGER, Filled, dashboard, get


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_dashboard_metrics_match_the_database(filled: tuple[str, Filled]) -> None:
    url, made = filled
    with dashboard(url) as (client, base):
        page = get(base, "/metrics")
        assert page.headers["content-type"].startswith("text/plain")
        samples = _samples(page.text)
        executions = client.list_executions(limit=1000)
        completed = sum(e["status"] == "Completed" for e in executions)
        assert samples[("cloaca_executions", (("status", "Completed"),))] == completed
        assert samples[("cloaca_executions", (("status", "Failed"),))] == len(made.failed)
        assert samples[("cloaca_ready_tasks", ())] == 0
        fired = len(client.get_trigger_execution_history(TRIGGER))
        assert (
            samples[("cloaca_trigger_evaluations", (("outcome", "fired"), ("trigger", TRIGGER)))]
            == fired
        )
        assert (
            "cloaca_trigger_evaluations",
            (("outcome", "error"), ("trigger", TRIGGER)),
        ) in samples
        tasks = sum(len(client.get_execution(e["id"]).task_results) for e in executions)
        assert samples[("cloaca_task_duration_seconds_count", ())] <= tasks
        # The filler's direct runs take 1.5 s + 3 s + 2 s + 0.5 s of (fake) time per run.
        assert (
            samples[("cloaca_task_duration_seconds_bucket", (("le", "5.0"),))]
            > samples[("cloaca_task_duration_seconds_bucket", (("le", "1.0"),))]
        )
        slots = len(client.get_cron_execution_history(made.cron_schedule_id))
        assert samples[("cloaca_cron_lateness_seconds_count", ())] == slots


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
