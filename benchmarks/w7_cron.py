"""W7: 100 cron schedules firing every second for 60 s (``--quick``: 15 s): one runner on
SQLite, three runner processes on PostgreSQL (``--runners N``).

Each schedule is a workflow instance on ``* * * * * *`` whose one no-op task records the
wall time its body started. Figures:

- ``lateness_p50_ms`` / ``lateness_p99_ms``: scheduled instant -> task body start;
- ``fire_p50_ms`` / ``fire_p99_ms``: scheduled instant -> execution row created (the
  scheduler's own share of the lateness);
- ``missed``: slots in the measured window (every whole second from the first slot of
  all schedules to the end of the run, minus one second of margin) that never fired;
- ``duplicates``: executions beyond one per (schedule, scheduled time).

Options: ``--quick``, ``--schedules N``, ``--seconds S``, ``--concurrency C``
(``max_concurrent_tasks``, default 32), ``--runners N`` (PostgreSQL: this process and N-1
worker processes share the schedules; default 3).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import cloaca
from _common import backend, emit, open_runner, percentile, quick, spawn_workers


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", action="store_true", help="run on PostgreSQL")
    parser.add_argument("--schedules", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15.0 if quick() else 60.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--runners", type=int, default=3 if backend() == "postgres" else 1)
    args = parser.parse_args()
    if args.runners > 1 and backend() != "postgres":
        parser.error("--runners above 1 needs --postgres")
    return args


WORKER = """
import sys, time
import cloaca

@cloaca.task(id="tick")
def tick(context):
    context.set("body_started", time.time())

cloaca.workflow("w7_tick", [tick])
config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=int(sys.argv[3]))
with cloaca.DefaultRunner(sys.argv[1], config, schema=sys.argv[2]) as runner:
    print("up", flush=True)
    sys.stdin.readline()
"""


def _start_workers(runner: cloaca.DefaultRunner, count: int, concurrency: int) -> list[Any]:
    """``count`` worker processes on the runner's PostgreSQL schema, each up and running."""
    from _common import POSTGRES_URL

    if count == 0:
        return []
    schema = runner._store.db.schema
    return spawn_workers(WORKER, [POSTGRES_URL, schema, str(concurrency)], count)


def main() -> None:
    args = _args()

    @cloaca.task(id="tick")
    def tick(context: cloaca.Context) -> None:
        context.set("body_started", time.time())

    cloaca.workflow("w7_tick", [tick])
    config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=args.concurrency)
    with tempfile.TemporaryDirectory() as tmp, open_runner(tmp, "w7", config) as runner:
        workers = _start_workers(runner, args.runners - 1, args.concurrency)
        ids = [
            runner.register_workflow_instance(
                "w7_tick", f"every-second-{i}", "* * * * * *", "UTC", {"i": i}
            )
            for i in range(args.schedules)
        ]
        first = max(datetime.fromisoformat(runner.get_cron_schedule(i)["next_run_at"]) for i in ids)
        time.sleep(args.seconds)
        stopped = datetime.now(UTC)  # slots up to a second before this must have fired
        for schedule_id in ids:
            runner.set_cron_schedule_enabled(schedule_id, False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(
            r["status"] in ("Pending", "Running")
            for r in runner.list_executions("w7_tick", limit=args.schedules * 5)
        ):
            time.sleep(0.05)
        created = _claimed_times(runner, ids)
        starts = _body_starts(runner, args.schedules * int(args.seconds + 5))
        for worker in workers:
            worker.communicate("stop\n", timeout=60)

    last = (stopped - timedelta(seconds=1)).replace(microsecond=0)
    window = int((last - first).total_seconds()) + 1
    expected = {
        (sid, (first + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"))
        for sid in ids
        for s in range(window)
    }
    fired = Counter((sid, slot) for sid, slot, _ in starts)
    lateness = [
        (body - datetime.fromisoformat(slot).timestamp()) * 1000 for _, slot, body in starts
    ]
    fire_ms = [(made - datetime.fromisoformat(slot).timestamp()) * 1000 for slot, made in created]
    emit(
        "W7",
        backend(),
        {
            "schedules": args.schedules,
            "seconds": args.seconds,
            "runners": args.runners,
            "max_concurrent_tasks": args.concurrency,
        },
        {
            "lateness_p50_ms": percentile(lateness, 50),
            "lateness_p99_ms": percentile(lateness, 99),
            "fire_p50_ms": percentile(fire_ms, 50),
            "fire_p99_ms": percentile(fire_ms, 99),
            "fires": len(starts),
            "missed": len(expected - set(fired)),
            "duplicates": sum(n - 1 for n in fired.values() if n > 1),
        },
    )


def _body_starts(runner: cloaca.DefaultRunner, limit: int) -> list[tuple[str, str, float]]:
    """(schedule id, scheduled time, body start as epoch seconds) of every execution that
    ran, whichever process ran it."""
    starts = []
    for row in runner.list_executions("w7_tick", limit=limit):
        final = runner.get_execution(row["id"]).final_context
        if "body_started" in final:
            starts.append((final["schedule_id"], final["scheduled_time"], final["body_started"]))
    return starts


def _claimed_times(runner: cloaca.DefaultRunner, ids: list[str]) -> list[tuple[str, float]]:
    """(scheduled_time, claimed_at as epoch seconds) for every fired slot: the claim and the
    execution it started commit in one transaction."""
    return [
        (row["scheduled_time"], datetime.fromisoformat(row["claimed_at"]).timestamp())
        for schedule_id in ids
        for row in runner.get_cron_execution_history(schedule_id, limit=100_000)
    ]


if __name__ == "__main__":
    main()
