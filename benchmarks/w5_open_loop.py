"""W5: open-loop load of 3-task chains at 50 / 200 / 500 executions per second, and on SQLite
also at 1,000 per second (BENCHMARKS.md: SQLite holds 1,000/s).

Submissions follow the clock, not completions (open loop). Figures per rate: completed
executions per second, end-to-end (submit -> last task finished) p50/p99, backlog growth
(unfinished executions at the end of the run minus at its middle) and RSS growth.
"""

from __future__ import annotations

import tempfile
import threading
import time

import cloaca
from _common import backend, emit, open_runner, peak_rss_mb, percentile, quick

RATES = (50, 200, 500)
#: SQLite's target rate; one PostgreSQL process is far below it (docs/scaling.md).
SQLITE_RATES = (*RATES, 1000)


def main() -> None:
    duration = 10.0 if quick() else 60.0
    finished: dict[str, float] = {}
    lock = threading.Lock()

    @cloaca.task(id="a")
    def a(context: cloaca.Context) -> None:
        context.set("a", 1)

    @cloaca.task(id="b", dependencies=["a"])
    def b(context: cloaca.Context) -> None:
        context.set("b", 1)

    @cloaca.task(id="c", dependencies=["b"])
    def c(context: cloaca.Context) -> None:
        with lock:
            finished[context.get("n")] = time.perf_counter()

    cloaca.workflow("w5_chain", [a, b, c])
    with tempfile.TemporaryDirectory() as tmp:
        for rate in SQLITE_RATES if backend() == "sqlite" else RATES:
            finished.clear()
            with open_runner(tmp, f"w5_{rate}") as runner:
                runner.execute("w5_chain", {"n": "warmup"})
                submitted: dict[str, float] = {}
                rss_start = peak_rss_mb()
                backlog_mid = 0
                t0 = time.perf_counter()
                i = 0
                while True:
                    now = time.perf_counter()
                    elapsed = now - t0
                    if elapsed >= duration:
                        break
                    due = int(elapsed * rate)
                    while i < due:
                        key = f"e{i}"
                        submitted[key] = time.perf_counter()
                        runner.start("w5_chain", {"n": key})
                        i += 1
                    if not backlog_mid and elapsed >= duration / 2:
                        backlog_mid = len(submitted) - len(finished)
                    time.sleep(0.002)
                backlog_end = len(submitted) - len(finished)
                drain_deadline = time.perf_counter() + 60
                while len(finished) < len(submitted) + 1 and time.perf_counter() < drain_deadline:
                    time.sleep(0.01)
            done_in_window = sum(
                1 for k, t in finished.items() if k != "warmup" and t - t0 <= duration
            )
            e2e = [(finished[k] - s) * 1000 for k, s in submitted.items() if k in finished]
            emit(
                "W5",
                backend(),
                {"rate": rate, "duration_s": duration},
                {
                    "rate": rate,
                    "completed_per_s": done_in_window / duration,
                    "e2e_p50_ms": percentile(e2e, 50),
                    "e2e_p99_ms": percentile(e2e, 99),
                    "backlog_growth": backlog_end - backlog_mid,
                    "rss_growth_mb": peak_rss_mb() - rss_start,
                },
            )


if __name__ == "__main__":
    main()
