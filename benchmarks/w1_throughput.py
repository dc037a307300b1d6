"""W1: burn-down throughput.

(a) 5,000 one-task executions submitted at once; (b) one execution of 5,000 independent
no-op tasks. Figures: tasks/s, write transactions per task, CPU of this process per task
(every thread: the engine's and the submitting one's), peak RSS.
"""

from __future__ import annotations

import tempfile
import time

import cloaca
from _common import backend, emit, open_runner, peak_rss_mb, quick


def main() -> None:
    n = 1000 if quick() else 5000

    @cloaca.task(id="noop")
    def noop(context: cloaca.Context) -> None:
        return None

    cloaca.workflow("w1_one", [noop])
    with cloaca.WorkflowBuilder("w1_wide"):
        for i in range(n):
            cloaca.task(id=f"t{i}")(lambda context: None)

    config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=8)
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_runner(tmp, "w1", config) as runner,
    ):
        db = runner._store.db
        runner.execute("w1_one")

        tx0 = db.write_transactions
        t0 = time.perf_counter()
        ids = [runner.start("w1_one") for _ in range(n)]
        for execution_id in ids:
            assert runner.wait(execution_id).status == "Completed"
        many_s = time.perf_counter() - t0
        many_tx = (db.write_transactions - tx0) / n

        tx0 = db.write_transactions
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        result = runner.execute("w1_wide")
        wide_s = time.perf_counter() - t0
        wide_cpu = time.process_time() - cpu0
        assert result.status == "Completed", result
        wide_tx = (db.write_transactions - tx0) / n

    emit(
        "W1",
        backend(),
        {"tasks": n, "max_concurrent_tasks": 8},
        {
            "tasks_per_s": n / wide_s,
            "write_tx_per_task": wide_tx,
            "cpu_ms_per_task": wide_cpu / n * 1000,
            "executions_tasks_per_s": n / many_s,
            "executions_write_tx_per_task": many_tx,
            "peak_rss_mb": peak_rss_mb(),
        },
    )


if __name__ == "__main__":
    main()
