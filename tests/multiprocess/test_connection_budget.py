"""The connection budget: eight worker processes with the default pool run on a PostgreSQL
server with the default ``max_connections = 100``, and each holds at most its pool plus its
listener. (PostgreSQL only: SQLite has no server connections to budget.)"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import psycopg
from proc_support import WAIT, read_lines, reaped, spawn

import cloaca
from cloaca.workflows.registry import clear_registry

WORKERS = 8
EXECUTIONS = 400

WORKER = """
import os, sys, time
import cloaca

url, schema, stop_file = sys.argv[1], sys.argv[2], sys.argv[3]

@cloaca.task(id="noop")
def noop(context):
    context.set("done", True)

cloaca.workflow("budget", [noop])
config = cloaca.DefaultRunnerConfig(enable_cron_scheduling=False)
with cloaca.DefaultRunner(url, config, schema=schema) as runner:
    print("up", flush=True)
    while not os.path.exists(stop_file):
        time.sleep(0.05)
"""


def _connections(url: str, application_name: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_eight_workers_fit_the_default_server_and_each_stays_within_its_pool(
    pg_schema, tmp_path: Path
) -> None:
    url, schema = pg_schema
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    assert row is not None and int(row[0]) <= 100, "the test is about a default-sized server"
    pool = cloaca.DefaultRunnerConfig().db_pool_size
    app = f"budget_{uuid.uuid4().hex[:8]}"
    sep = "&" if "?" in url else "?"
    worker_url = f"{url}{sep}application_name={app}"

    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, _connections(url, app))

    sampler = threading.Thread(target=sample, daemon=True)
    config = cloaca.DefaultRunnerConfig(enable_cron_scheduling=False, max_concurrent_tasks=1)
    with reaped([]) as procs, cloaca.DefaultRunner(url, config, schema=schema) as client:
        clear_registry()  # the client submits; only the workers have the code
        for _ in range(WORKERS):
            procs.append(spawn(WORKER, worker_url, schema, str(tmp_path / "stop")))
        for proc in procs:
            read_lines(proc, {"up"}, time.monotonic() + 4 * WAIT)
        sampler.start()
        ids = [client.start("budget") for _ in range(EXECUTIONS)]
        results = [client.wait(i, timeout=4 * WAIT) for i in ids]
        done.set()
        sampler.join()
        assert [r.status for r in results] == ["Completed"] * EXECUTIONS
        assert 0 < peak <= WORKERS * (pool + 1)
        (tmp_path / "stop").touch()
        for proc in procs:
            assert proc.wait(timeout=4 * WAIT) == 0, proc.stderr.read() if proc.stderr else ""
    assert _connections(url, app) == 0  # every worker closed what it opened on the way out
