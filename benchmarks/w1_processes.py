"""W1, several processes (PostgreSQL): 1, 2, 4 and 8 worker processes burn down one-task
executions that another process submitted.

For each worker count: a fresh schema, N executions submitted by this process (no worker
running yet), then the workers start together; the clock runs from the moment every worker
is up until every execution is Completed. Figures per worker count: tasks/s, the workers'
write transactions per task, and the peak number of server connections the workers held
together (sampled from pg_stat_activity by application_name): the connection budget that
docs/scaling.md works from. The scaling table is the list of those rows.

Lock contention is measured, not assumed: ``lock_waits`` counts the workers' backends seen
waiting on a lock (``wait_event_type = 'Lock'``) by the same 20 ms sampling while they burn
down the work, and
``deadlocks`` is how many deadlocks the server counted in the database meanwhile
(``pg_stat_database``). The workers run with ``log_lock_waits`` on, so a wait longer than
``deadlock_timeout`` would also be in the server's log.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid

import cloaca
from _common import POSTGRES_URL, emit, quick, spawn_workers
from cloaca.workflows.registry import clear_registry

WORKER = """
import sys, time
import cloaca

url, schema = sys.argv[1], sys.argv[2]

@cloaca.task(id="noop")
def noop(context):
    return None

cloaca.workflow("w1_mp", [noop])
config = cloaca.DefaultRunnerConfig(
    max_concurrent_tasks=8, enable_cron_scheduling=False, enable_trigger_scheduling=False
)
with cloaca.DefaultRunner(url, config, schema=schema) as runner:
    print("up", flush=True)
    sys.stdin.readline()  # the benchmark says when to stop
    print(runner._store.db.write_transactions, flush=True)
"""


class ConnectionSampler:
    """Samples the server connections that carry ``application_name`` until stopped: how
    many there are, and how many of them wait on a lock."""

    def __init__(self, application_name: str) -> None:
        self.application_name = application_name
        self.peak = 0
        self.lock_waits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE wait_event_type = 'Lock') "
                    "FROM pg_stat_activity WHERE application_name = %s",
                    (self.application_name,),
                ).fetchone()
                if row:
                    self.peak = max(self.peak, int(row[0]))
                    self.lock_waits += int(row[1])

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _deadlocks() -> int:
    """Deadlocks the server has detected in this database so far."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def run(workers: int, n: int) -> dict[str, float]:
    import psycopg

    schema = f"bench_w1mp_{uuid.uuid4().hex[:8]}"
    app_name = f"w1mp_{uuid.uuid4().hex[:8]}"
    # Waits longer than deadlock_timeout (1 s by default) reach the server log, whatever
    # the server's own setting (the benchmark connects as a superuser, as CI does).
    worker_url = f"{POSTGRES_URL}?application_name={app_name}&options=-c%20log_lock_waits%3Don"
    cloaca.workflow("w1_mp", [cloaca.task(id="noop")(lambda context: None)])
    config = cloaca.DefaultRunnerConfig(
        enable_cron_scheduling=False, enable_trigger_scheduling=False, max_concurrent_tasks=1
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        with cloaca.DefaultRunner(POSTGRES_URL, config, schema=schema) as client:
            # The client submits but must not run anything: it forgets the workflow's code.
            clear_registry()
            ids = [client.start("w1_mp") for _ in range(n)]
            # Sampled from the moment every worker is up: their startup waits on purpose
            # (concurrent migrations of one schema take turns).
            procs = spawn_workers(WORKER, [worker_url, schema], workers)
            deadlocks0 = _deadlocks()
            sampler = ConnectionSampler(app_name)
            t0 = time.perf_counter()
            for execution_id in ids:
                assert client.wait(execution_id, timeout=600).status == "Completed"
            elapsed = time.perf_counter() - t0
            peak = sampler.stop()
            deadlocks = _deadlocks() - deadlocks0
        tx = 0
        for proc in procs:
            out, _ = proc.communicate("stop\n", timeout=60)
            tx += int(out.strip().splitlines()[-1])
        return {
            "tasks_per_s": n / elapsed,
            "write_tx_per_task": tx / n,
            "peak_connections": peak,
            "peak_connections_per_worker": peak / workers,
            "lock_waits": sampler.lock_waits,
            "deadlocks": deadlocks,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    n = 1000 if quick() else 5000
    table = []
    for workers in (1, 2, 4, 8):
        row = {"workers": workers, **run(workers, n)}
        table.append(row)
        emit("W1-processes", "postgres", {"tasks": n, "workers": workers}, row)
    print("workers  tasks/s  write tx/task  peak connections  lock waits  deadlocks")
    for row in table:
        print(
            f"{row['workers']:>7}  {row['tasks_per_s']:>7.0f}  {row['write_tx_per_task']:>13.2f}"
            f"  {row['peak_connections']:>16}  {row['lock_waits']:>10}  {row['deadlocks']:>9}"
        )


if __name__ == "__main__":
    main()
