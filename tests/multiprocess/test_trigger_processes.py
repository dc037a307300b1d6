"""Event triggers across real processes on one database (each backend): two runners polling the same
trigger (each due poll once, each fire once), disabling from another process while a poll
runs, and a runner killed with SIGKILL in the middle of a fire (no lost and no duplicated
fire). Bounded waits with deadlines; nothing asserts timings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloaca
from cloaca import DefaultRunnerConfig
from pg_support import run_sql

WAIT = 30.0

WORKER = r"""
import json
import os
import signal
import sys
import time
from pathlib import Path

import cloaca

db, mode, seconds, arg = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
workdir = Path(sys.argv[5])


@cloaca.task(id="consume")
def consume(context):
    context.set("consumed_by", os.getpid())


cloaca.workflow("mp_items", [consume])


class Items(cloaca.Trigger):
    '''An endless feed: item n+1 after the cursor n, one per poll.'''

    name = "items"
    poll_interval = 0.05
    allow_concurrent = mode == "shared"  # let a duplicate fire show up as a duplicate

    def poll(self, cursor):
        n = int(cursor or 0) + 1
        limit = int(arg) if mode == "until" else None
        if limit is not None and n > limit:
            return cloaca.TriggerResult.skip()
        return cloaca.TriggerResult.fire({"item": n}, cursor=str(n))


class Blocking(cloaca.Trigger):
    '''Announces each poll, then waits for the test to release it, then fires.'''

    name = "blocking"
    poll_interval = 0.05

    def poll(self):
        with open(workdir / "polls.log", "a") as out:
            out.write("poll\n")
        deadline = time.monotonic() + 20
        while not (workdir / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return cloaca.TriggerResult.fire({"released": True})


if mode == "kill_in_fire":
    # Die inside the fire transaction of the arg-th fire: after the trigger execution row
    # and before the execution and the commit.
    from cloaca.runner.executions import Executions

    original = Executions.create
    fires = {"n": 0}

    def dying(self, tx, shape, context_text, now, *args, **kwargs):
        fires["n"] += 1
        if fires["n"] == int(arg):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, tx, shape, context_text, now, *args, **kwargs)

    Executions.create = dying

# The default 30 s poll timeout: a killed process's lease ends at the trigger's next due
# instant (its polls are quick), so the next process takes over at once anyway.
config = cloaca.DefaultRunnerConfig(
    trigger_base_poll_interval=0.05, trigger_poll_timeout=30, heartbeat_interval_seconds=0.5
)
runner = cloaca.DefaultRunner(db, config)
trigger = Blocking() if mode == "blocking" else Items()
runner.register_trigger(trigger, "mp_items")
print("ready", flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline and not (workdir / "stop").exists():
    time.sleep(0.02)
runner.shutdown()
print("stopped", flush=True)
"""


def _start(tmp_path: Path, db: str, mode: str, seconds: float, arg: str = "0") -> subprocess.Popen:
    """Start a worker and wait until its runner is up (schema created, trigger scheduled)."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    proc = subprocess.Popen(
        [sys.executable, str(script), db, mode, str(seconds), arg, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the worker prints "ready" or exits
    if line.strip() != "ready" and mode != "kill_in_fire":
        _, err = proc.communicate(timeout=WAIT)
        raise AssertionError(f"worker failed to start: {line!r} {err}")
    return proc


def _finish(proc: subprocess.Popen, timeout: float = WAIT) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"worker did not finish in time: {err}") from None
    return proc.returncode, err


def _wait_until(predicate: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _query(db: str, sql: str) -> list[tuple[Any, ...]]:
    try:
        return run_sql(db, sql)
    except Exception as exc:
        if "cloaca_" in str(exc):  # no such table: the schema is not created yet
            return []
        raise


def _fired_items(db: str) -> list[int]:
    rows = _query(db, "SELECT context FROM cloaca_executions WHERE workflow_name = 'mp_items'")
    return sorted(json.loads(context)["item"] for (context,) in rows)


def _assert_fires_consistent(db: str) -> list[int]:
    """Every fire is linked to exactly one execution and every execution to one fire; the
    cursor is the last item fired. Returns the fired items."""
    unlinked = _query(
        db,
        "SELECT COUNT(*) FROM cloaca_trigger_executions t LEFT JOIN cloaca_executions e "
        "ON e.id = t.workflow_execution_id WHERE e.id IS NULL",
    )
    assert unlinked == [(0,)]
    orphans = _query(
        db,
        "SELECT COUNT(*) FROM cloaca_executions e WHERE NOT EXISTS (SELECT 1 FROM "
        "cloaca_trigger_executions t WHERE t.workflow_execution_id = e.id)",
    )
    assert orphans == [(0,)]
    items = _fired_items(db)
    duplicates = [item for item, count in Counter(items).items() if count > 1]
    assert duplicates == []
    assert items == list(range(1, len(items) + 1))  # nothing lost in between
    [(cursor,)] = _query(
        db, "SELECT cursor FROM cloaca_trigger_schedules WHERE trigger_name = 'items'"
    )
    assert cursor == (str(items[-1]) if items else None)
    return items


def test_two_processes_poll_each_due_instant_once_and_fire_each_item_once(
    tmp_path: Path, db_url: str
) -> None:
    workers = [_start(tmp_path, db_url, "shared", 3.0) for _ in range(2)]
    results = [_finish(w) for w in workers]
    assert all(code == 0 for code, _ in results), results
    items = _assert_fires_consistent(db_url)
    assert len(items) >= 10
    scheduled = _query(
        db_url, "SELECT scheduled_at FROM cloaca_trigger_evaluations WHERE trigger_name = 'items'"
    )
    assert len(scheduled) == len(set(scheduled))  # no due instant was polled twice
    runners = _query(
        db_url,
        "SELECT DISTINCT runner_id FROM cloaca_trigger_evaluations WHERE trigger_name = 'items'",
    )
    assert len(runners) == 2  # both processes took part


def test_disabling_from_another_process_while_a_poll_runs(tmp_path: Path, db_url: str) -> None:
    polls = tmp_path / "polls.log"
    worker = _start(tmp_path, db_url, "blocking", 6.0)
    try:
        _wait_until(polls.exists, "the first poll to start")
        config = DefaultRunnerConfig(enable_trigger_scheduling=False)
        with cloaca.DefaultRunner(db_url, config) as manager:
            manager.set_trigger_enabled("blocking", False)
            (tmp_path / "release").touch()  # the running poll now returns a fire
            _wait_until(
                lambda: bool(manager.get_trigger_evaluations("blocking")), "the poll's record"
            )
            [evaluation] = manager.get_trigger_evaluations("blocking")
            assert evaluation["outcome"] == "skipped"
            assert "disabled while its poll ran" in evaluation["message"]
            assert manager.list_executions() == []
            # Released, so a new poll would return at once; none starts while disabled.
            time.sleep(1.0)
            assert polls.read_text().count("poll") == 1
            assert len(manager.get_trigger_evaluations("blocking")) == 1
            schedule = manager.get_trigger_schedule("blocking")
            assert schedule is not None and schedule["enabled"] is False
    finally:
        (tmp_path / "release").touch()
        (tmp_path / "stop").touch()
        code, err = _finish(worker)
    assert code == 0, err


def test_a_process_killed_inside_the_fire_transaction_loses_and_duplicates_nothing(
    tmp_path: Path, db_url: str
) -> None:
    dying = _start(tmp_path, db_url, "kill_in_fire", 30.0, "3")
    code, _ = _finish(dying)
    assert code == -signal.SIGKILL
    # The third fire's transaction never committed: two fires, cursor at 2.
    assert _assert_fires_consistent(db_url) == [1, 2]
    # A new process picks up exactly where the committed state says.
    survivor = _start(tmp_path, db_url, "until", 30.0, "6")
    _wait_until(lambda: len(_fired_items(db_url)) >= 6, "items up to 6")
    os.kill(survivor.pid, signal.SIGTERM)
    _finish(survivor)
    assert _assert_fires_consistent(db_url) == [1, 2, 3, 4, 5, 6]


def test_a_process_killed_at_a_random_moment_loses_and_duplicates_nothing(
    tmp_path: Path, db_url: str
) -> None:
    for round_ in range(3):
        before = len(_fired_items(db_url))
        worker = _start(tmp_path, db_url, "shared" if round_ == 1 else "until", 30.0, "1000000")
        _wait_until(lambda b=before: len(_fired_items(db_url)) >= b + 5, "five more fires")
        worker.send_signal(signal.SIGKILL)
        code, _ = _finish(worker)
        assert code == -signal.SIGKILL
        _assert_fires_consistent(db_url)
    assert len(_assert_fires_consistent(db_url)) >= 15
