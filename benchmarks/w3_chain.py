"""W3: a chain of 40 no-op tasks, with a small and with a 100 KB context.

Figures: per-hop latency finish(i) -> start(i+1) p50/p99 and the total engine overhead
(execute() wall time minus time spent inside task bodies), over repeated executions; and
``chain10_p50_ms`` / ``chain10_p99_ms``, the execute() wall time of a 10-task chain (the
"10-step chain" of the DBOS comparison in BENCHMARKS.md: 7.8 ms SQLite, 23.2 ms PostgreSQL).
"""

from __future__ import annotations

import tempfile
import time

import cloaca
from _common import backend, emit, open_runner, percentile, quick

LENGTH = 40


def build(
    name: str, marks: dict[str, list[tuple[int, float, float]]], length: int = LENGTH
) -> None:
    with cloaca.WorkflowBuilder(name):
        previous = None
        for i in range(length):

            def body(context: cloaca.Context, i: int = i) -> None:
                t0 = time.perf_counter()
                context.set(f"step_{i}", i)
                marks[name].append((i, t0, time.perf_counter()))

            deps = [previous] if previous else []
            cloaca.task(id=f"t{i:02d}", dependencies=deps)(body)
            previous = f"t{i:02d}"


def measure(runner: cloaca.DefaultRunner, name: str, marks: dict, payload: dict, reps: int) -> dict:
    hops: list[float] = []
    overheads: list[float] = []
    for _ in range(reps):
        marks[name].clear()
        t0 = time.perf_counter()
        result = runner.execute(name, payload)
        total = time.perf_counter() - t0
        assert result.status == "Completed", result
        ordered = sorted(marks[name])
        hops.extend((ordered[i + 1][1] - ordered[i][2]) * 1000 for i in range(len(ordered) - 1))
        overheads.append((total - sum(end - start for _, start, end in ordered)) * 1000)
    return {"hops": hops, "overheads": overheads}


def main() -> None:
    reps = 5 if quick() else 20
    marks: dict[str, list[tuple[int, float, float]]] = {
        "w3_small": [],
        "w3_large": [],
        "w3_ten": [],
    }
    build("w3_small", marks)
    build("w3_large", marks)
    build("w3_ten", marks, 10)
    big = {"blob": "x" * 100_000}
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_runner(tmp, "w3") as runner,
    ):
        runner.execute("w3_small")
        small = measure(runner, "w3_small", marks, {}, reps)
        large = measure(runner, "w3_large", marks, big, reps)
        for _ in range(10):  # warm-up
            runner.execute("w3_ten")
        ten: list[float] = []
        for _ in range(reps * 20):
            t0 = time.perf_counter()
            runner.execute("w3_ten")
            ten.append((time.perf_counter() - t0) * 1000)
    hop_small = percentile(small["hops"], 50)
    hop_large = percentile(large["hops"], 50)
    emit(
        "W3",
        backend(),
        {"length": LENGTH, "reps": reps},
        {
            "hop_p50_ms": hop_small,
            "hop_p99_ms": percentile(small["hops"], 99),
            "overhead_ms": percentile(small["overheads"], 50),
            "large_hop_p50_ms": hop_large,
            "large_hop_p99_ms": percentile(large["hops"], 99),
            "large_overhead_ms": percentile(large["overheads"], 50),
            "large_to_small_hop_ratio": hop_large / hop_small if hop_small else float("nan"),
            "chain10_p50_ms": percentile(ten, 50),
            "chain10_p99_ms": percentile(ten, 99),
        },
    )


if __name__ == "__main__":
    main()
