"""W6: 1,000 triggers polled every 1 s (no-op poll, 1 % fire per poll) for 30 s on SQLite.

Figures (BENCHMARKS.md):
- ``cpu_pct``: engine CPU as % of one core. The process's CPU time (user + system, all
  threads, ``time.process_time``) over the measured window, minus the time spent inside
  poll bodies and task bodies (measured around them), divided by the window's wall time.
  The main thread only sleeps during the window, so what is left is the engine: claiming,
  dispatching, recording, firing, running the one-task executions.
- ``lateness_p99_ms``: a poll's start minus its due instant, from the evaluation log
  (``evaluated_at - scheduled_at``). Polls due within a few ms are started together and
  may start up to that much early: early starts count as 0.
- ``fire_to_start_p50_ms`` / ``fire_to_start_p99_ms``: from the moment the poll body
  decided to fire (it returns right after) to the first task body starting.

``--quick`` measures 10 s instead of 30 s.
"""

from __future__ import annotations

import random
import sys
import tempfile
import threading
import time
from datetime import datetime

import cloaca
from _common import backend, emit, open_runner, percentile, quick

TRIGGERS = 1000
FIRE_PROBABILITY = 0.01
WARMUP_S = 3.0


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.poll_body_s = 0.0
        self.task_body_s = 0.0
        self.decided: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.polls = 0


STATS = _Stats()
_counter = iter(range(10**9))


class NoopTrigger(cloaca.Trigger):
    """A poll that does nothing but fire with a 1 % chance (a unique context each time)."""

    poll_interval = 1.0

    def poll(self) -> cloaca.TriggerResult:
        t0 = time.perf_counter()
        fire = random.random() < FIRE_PROBABILITY
        if fire:
            key = f"{self.name}:{next(_counter)}"
            result = cloaca.TriggerResult.fire({"key": key})
        else:
            result = cloaca.TriggerResult.skip()
        t1 = time.perf_counter()
        with STATS.lock:
            STATS.polls += 1
            STATS.poll_body_s += t1 - t0
            if fire:
                STATS.decided[key] = t1
        return result


def _task(context: cloaca.Context) -> None:
    t0 = time.perf_counter()
    key = context.get("key")
    t1 = time.perf_counter()
    with STATS.lock:
        STATS.started.setdefault(key, t0)
        STATS.task_body_s += t1 - t0


def _lateness_ms(runner: cloaca.DefaultRunner, since: datetime, until: datetime) -> list[float]:
    """Poll start minus due instant for every poll in the window, from the evaluation log."""
    out = []
    for i in range(TRIGGERS):
        for row in runner.get_trigger_evaluations(f"w6_{i:04d}", 1000):
            if row["scheduled_at"] is None:
                continue
            evaluated = datetime.fromisoformat(row["evaluated_at"])
            if not since <= evaluated < until:
                continue
            delta = evaluated - datetime.fromisoformat(row["scheduled_at"])
            out.append(max(0.0, delta.total_seconds() * 1000))
    return out


def main() -> None:
    seconds = 10.0 if quick() else 30.0
    noop = cloaca.task(id="w6_noop")(_task)
    cloaca.workflow("w6_fired", [noop])
    with tempfile.TemporaryDirectory() as tmp, open_runner(tmp, "w6") as runner:
        for i in range(TRIGGERS):
            runner.register_trigger(NoopTrigger(name=f"w6_{i:04d}"), "w6_fired")
        time.sleep(WARMUP_S)
        from cloaca.clock import SystemClock

        clock = SystemClock()
        with STATS.lock:
            poll0, task0, polls0 = STATS.poll_body_s, STATS.task_body_s, STATS.polls
            decided_before = set(STATS.decided)
        since = clock.now()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        until = clock.now()
        with STATS.lock:
            bodies = (STATS.poll_body_s - poll0) + (STATS.task_body_s - task0)
            polls = STATS.polls - polls0
        time.sleep(0.5)  # let the last fires of the window reach their task
        lateness = _lateness_ms(runner, since, until)
    with STATS.lock:
        fire_to_start = [
            (STATS.started[k] - t) * 1000
            for k, t in STATS.decided.items()
            if k not in decided_before and k in STATS.started
        ]
        fired = len([k for k in STATS.decided if k not in decided_before])
    wall = wall1 - wall0
    emit(
        "W6",
        backend(),
        {
            "triggers": TRIGGERS,
            "poll_interval_s": 1.0,
            "fire_probability": FIRE_PROBABILITY,
            "seconds": seconds,
        },
        {
            "cpu_pct": (cpu1 - cpu0 - bodies) / wall * 100,
            "lateness_p99_ms": percentile(lateness, 99),
            "fire_to_start_p50_ms": percentile(fire_to_start, 50),
            "fire_to_start_p99_ms": percentile(fire_to_start, 99),
            "polls_per_s": polls / wall,
            "fires": fired,
            "fires_started": len(fire_to_start),
        },
    )


if __name__ == "__main__":
    sys.exit(main())
