"""W2: 1,000 sequential execute() of a one-task workflow (after 100 warm-up runs).

Figures: execute() wall time p50/p99, submit -> task body start p50/p99 (same process),
write transactions per execution, CPU of this process per execution (every thread); on
PostgreSQL also round trips per execution, and start() here with the task run by a worker
in another process (submit -> body start, wall clock of this one machine).
"""

from __future__ import annotations

import tempfile
import time

import cloaca
from _common import backend, emit, open_runner, percentile, quick, spawn_workers


def main() -> None:
    runs = 200 if quick() else 1000
    warmup = 50 if quick() else 100
    started: list[float] = []

    @cloaca.task(id="noop")
    def noop(context: cloaca.Context) -> None:
        started.append(time.perf_counter())

    cloaca.workflow("w2_one_task", [noop])
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_runner(tmp, "w2") as runner,
    ):
        for _ in range(warmup):
            runner.execute("w2_one_task")
        execute_ms: list[float] = []
        start_ms: list[float] = []
        db = runner._store.db
        tx0 = db.write_transactions
        trips0 = getattr(db, "round_trips", 0)  # PostgreSQL only
        cpu0 = time.process_time()
        for _ in range(runs):
            t0 = time.perf_counter()
            result = runner.execute("w2_one_task")
            t1 = time.perf_counter()
            assert result.status == "Completed", result
            execute_ms.append((t1 - t0) * 1000)
            start_ms.append((started[-1] - t0) * 1000)
        write_tx = (db.write_transactions - tx0) / runs
        cpu_ms = (time.process_time() - cpu0) / runs * 1000
        trips = (getattr(db, "round_trips", 0) - trips0) / runs
    figures = {
        "execute_p50_ms": percentile(execute_ms, 50),
        "execute_p99_ms": percentile(execute_ms, 99),
        "start_p50_ms": percentile(start_ms, 50),
        "start_p99_ms": percentile(start_ms, 99),
        "write_tx_per_execution": write_tx,
        "cpu_ms_per_execution": cpu_ms,
    }
    if backend() == "postgres":
        figures["round_trips_per_execution"] = trips
    if backend() == "postgres":
        figures.update(cross_process(runs, warmup))
    emit("W2", backend(), {"runs": runs, "warmup": warmup}, figures)


WORKER = """
import sys, time
import cloaca

@cloaca.task(id="stamp")
def stamp(context):
    context.set("body_started", time.time())

cloaca.workflow("w2_cross", [stamp])
with cloaca.DefaultRunner.with_schema(sys.argv[1], sys.argv[2]) as runner:
    print("up", flush=True)
    sys.stdin.readline()
"""


def cross_process(runs: int, warmup: int) -> dict[str, float]:
    """start() here, the body runs in a worker process: submit -> body start p50/p99."""
    import uuid

    import psycopg

    from _common import POSTGRES_URL
    from cloaca.workflows.registry import clear_registry

    schema = f"bench_w2x_{uuid.uuid4().hex[:8]}"
    [worker] = spawn_workers(WORKER, [POSTGRES_URL, schema], 1)
    try:
        clear_registry()  # this process only submits
        latencies: list[float] = []
        with cloaca.DefaultRunner.with_schema(POSTGRES_URL, schema) as client:
            for i in range(warmup + runs):
                t0 = time.time()
                result = client.wait(client.start("w2_cross"), timeout=30)
                if i >= warmup:
                    latencies.append((result.final_context["body_started"] - t0) * 1000)
        return {
            "cross_start_p50_ms": percentile(latencies, 50),
            "cross_start_p99_ms": percentile(latencies, 99),
        }
    finally:
        worker.communicate("stop\n", timeout=30)
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
