"""W2: 1,000 sequential execute() of a one-task workflow (after 100 warm-up runs).

Figures: execute() wall time p50/p99, and submit -> task body start p50/p99 (same process).
"""

from __future__ import annotations

import tempfile
import time

import cloaca
from _common import backend, emit, open_runner, percentile, quick


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
        for _ in range(runs):
            t0 = time.perf_counter()
            result = runner.execute("w2_one_task")
            t1 = time.perf_counter()
            assert result.status == "Completed", result
            execute_ms.append((t1 - t0) * 1000)
            start_ms.append((started[-1] - t0) * 1000)
    emit(
        "W2",
        backend(),
        {"runs": runs, "warmup": warmup},
        {
            "execute_p50_ms": percentile(execute_ms, 50),
            "execute_p99_ms": percentile(execute_ms, 99),
            "start_p50_ms": percentile(start_ms, 50),
            "start_p99_ms": percentile(start_ms, 99),
        },
    )


if __name__ == "__main__":
    main()
