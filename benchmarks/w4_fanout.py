"""W4: fan-out / fan-in 1 -> 100 -> 1.

(a) no-op bodies: makespan minus ideal (= engine overhead) and last branch finish -> join
start; (b) 100 ms sleeping bodies at concurrency 32: makespan vs the ideal
ceil(100/32) * 100 ms + the two ends.
"""

from __future__ import annotations

import math
import tempfile
import time

import cloaca
from _common import backend, emit, open_runner, percentile, quick

WIDTH = 100


def build(name: str, sleep_s: float, marks: dict[str, tuple[float, float]]) -> None:
    def body(task_id: str):
        def run(context: cloaca.Context) -> None:
            t0 = time.perf_counter()
            if sleep_s:
                time.sleep(sleep_s)
            marks[task_id] = (t0, time.perf_counter())

        return run

    with cloaca.WorkflowBuilder(name):
        cloaca.task(id="source")(body("source"))
        for i in range(WIDTH):
            cloaca.task(id=f"branch_{i}", dependencies=["source"])(body(f"branch_{i}"))
        cloaca.task(id="join", dependencies=[f"branch_{i}" for i in range(WIDTH)])(body("join"))


def run(runner: cloaca.DefaultRunner, name: str, marks: dict) -> tuple[float, float, float]:
    marks.clear()
    t0 = time.perf_counter()
    result = runner.execute(name)
    makespan = time.perf_counter() - t0
    assert result.status == "Completed", result
    last_branch = max(end for key, (_, end) in marks.items() if key.startswith("branch_"))
    join_gap = marks["join"][0] - last_branch
    busy = sum(end - start for _, (start, end) in marks.items())
    return makespan, join_gap, busy


def main() -> None:
    reps = 3 if quick() else 10
    marks: dict[str, tuple[float, float]] = {}
    build("w4_noop", 0.0, marks)
    build("w4_sleep", 0.1, marks)
    with tempfile.TemporaryDirectory() as tmp:
        overheads, joins = [], []
        with open_runner(tmp, "w4_noop") as runner:
            runner.execute("w4_noop")
            for _ in range(reps):
                makespan, join_gap, busy = run(runner, "w4_noop", marks)
                overheads.append((makespan - busy) * 1000)
                joins.append(join_gap * 1000)
        config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=32)
        ratios = []
        with open_runner(tmp, "w4_sleep", config) as runner:
            for _ in range(max(1, reps // 3)):
                makespan, join_gap, _ = run(runner, "w4_sleep", marks)
                ideal = (math.ceil(WIDTH / 32) + 2) * 0.1
                ratios.append(makespan / ideal)
                joins.append(join_gap * 1000)
    emit(
        "W4",
        backend(),
        {"width": WIDTH, "reps": reps},
        {
            "overhead_ms": percentile(overheads, 50),
            "join_p99_ms": percentile(joins, 99),
            "sleep_makespan_to_ideal": percentile(ratios, 50),
        },
    )


if __name__ == "__main__":
    main()
