"""Retention (SPEC 10): ``prune(older_than)`` deletes old terminal executions with their
tasks, fire and cron records and evaluations, in batches, and never anything active; a
runner with ``execution_retention_days`` prunes on its own. Both backends, fake clock."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerResult
from cloaca.clock import to_db_time
from cloaca.engine.retention import cutoff_for, prune
from cloaca.testing import DEFAULT_START, Harness
from pg_support import run_sql

DAY = 86_400


@dataclass
class Made:
    """What :func:`_history` made: ids of executions by what should become of them."""

    old: list[str] = field(default_factory=list)  # terminal, ended 10 days ago
    active: list[str] = field(default_factory=list)  # Pending/Running, 10 days old
    recent: list[str] = field(default_factory=list)  # terminal, ended just now
    held_fire: str = ""  # the execution holding the dedup hold of "inbox"
    cron_schedule: str = ""


def _history(h: Harness) -> Made:
    """Ten days of history: old finished executions (run directly, by a cron slot and by a
    trigger), old still-active ones (one holds a trigger's dedup hold), then recent ones."""
    made = Made()

    @cloaca.task(id="ok")
    def ok(context: Context) -> None:
        return None

    @cloaca.task(id="bad", retry_attempts=1)
    def bad(context: Context) -> None:
        raise RuntimeError("bad row")

    month = 30 * DAY * 1000

    # Fails, then waits a month for its retry: its execution stays Running meanwhile.
    @cloaca.task(
        id="wait",
        retry_attempts=2,
        retry_backoff="fixed",
        retry_delay_ms=month,
        retry_max_delay_ms=month,
        retry_jitter=False,
    )
    def wait(context: Context) -> None:
        raise RuntimeError("not yet")

    cloaca.workflow("ok_wf", [ok])
    cloaca.workflow("bad_wf", [bad])
    cloaca.workflow("wait_wf", [wait])

    @cloaca.trigger(name="done_files", poll_interval="1h")
    def done_files() -> TriggerResult:
        return TriggerResult.fire({"file": "a.csv"})

    @cloaca.trigger(name="inbox", poll_interval="1h")
    def inbox() -> TriggerResult:
        return TriggerResult.fire({"file": "stuck.csv"})

    runner = h.runner
    made.old += [h.execute("ok_wf").execution_id, h.execute("ok_wf").execution_id]
    made.old.append(h.execute("bad_wf").execution_id)
    made.cron_schedule = runner.register_cron_workflow("ok_wf", "* * * * *")
    runner.register_trigger(done_files, "ok_wf")
    h.advance(60)  # one cron slot runs, done_files fires once and completes
    runner.set_cron_schedule_enabled(made.cron_schedule, False)
    runner.set_trigger_enabled("done_files", False)
    made.old += [e["id"] for e in runner.list_executions(limit=100) if e["id"] not in made.old]
    assert len(made.old) == 5
    # Active ones: started but never run, and a trigger fire left Pending.
    made.active.append(runner.start("wait_wf"))
    runner.register_trigger(inbox, "wait_wf")
    h.poll_triggers()  # inbox fires; nothing runs its execution
    [fire] = runner.get_trigger_execution_history("inbox")
    made.held_fire = fire["workflow_execution_id"]
    made.active.append(made.held_fire)
    runner.set_trigger_enabled("inbox", False)
    h.clock.advance(10 * DAY)
    made.recent.append(h.execute("ok_wf").execution_id)
    made.recent.append(h.execute("bad_wf").execution_id)
    return made


@pytest.fixture
def h(new_harness: Callable[..., Harness]) -> Harness:
    """A harness whose active executions outlive ten days (no workflow timeout)."""
    return new_harness(config=DefaultRunnerConfig(workflow_timeout_seconds=100 * DAY))


def _exists(h: Harness, execution_id: str) -> bool:
    try:
        h.runner.get_execution(execution_id)
    except ValueError:
        return False
    return True


def test_prune_removes_old_terminal_executions_with_their_records_and_keeps_the_rest(
    h: Harness,
) -> None:
    made = _history(h)
    counts = h.runner.prune(timedelta(days=5))
    assert counts == {
        "executions": 5,
        "task_executions": 5,
        "task_attempts": 1,  # the old failed run's one failed attempt
        "trigger_executions": 1,  # done_files' fire
        "trigger_evaluations": 2,  # done_files' poll and inbox's
        "cron_executions": 1,
    }
    assert not any(_exists(h, e) for e in made.old)
    for kept in made.active + made.recent:
        result = h.runner.get_execution(kept)
        assert result.task_results  # its task executions are still there
    assert {h.runner.get_execution(e).status for e in made.active} <= {"Pending", "Running"}
    # The dedup hold survives: the fire record stays, and a new fire is still refused.
    [fire] = h.runner.get_trigger_execution_history("inbox")
    assert fire["workflow_execution_id"] == made.held_fire and fire["completed_at"] is None
    assert h.runner.fire_trigger("inbox", {"file": "stuck.csv"}) is None
    assert h.runner.get_trigger_execution_history("done_files") == []
    assert h.runner.get_cron_execution_history(made.cron_schedule) == []
    # Only the manual fire's evaluation (recorded now) is left.
    assert [e["outcome"] for e in h.runner.get_trigger_evaluations("inbox")] == ["deduplicated"]
    assert h.runner.get_trigger_evaluations("done_files") == []
    # Pruning again finds nothing.
    assert set(h.runner.prune(timedelta(days=5)).values()) == {0}


def test_a_dry_run_deletes_nothing_and_counts_what_a_prune_deletes(h: Harness) -> None:
    made = _history(h)
    before = h.runner.list_executions(limit=100)
    would = h.runner.prune(timedelta(days=5), dry_run=True)
    assert h.runner.list_executions(limit=100) == before
    assert all(_exists(h, e) for e in made.old)
    assert len(h.runner.get_trigger_evaluations("done_files")) == 1
    assert h.runner.prune(timedelta(days=5)) == would


def test_a_cutoff_older_than_everything_prunes_nothing(h: Harness) -> None:
    made = _history(h)
    assert set(h.runner.prune(timedelta(days=30)).values()) == {0}
    assert all(_exists(h, e) for e in made.old)


def test_prune_works_in_batches_of_short_transactions(h: Harness) -> None:
    made = _history(h)
    store = h.runner._store
    writes = store.db.write_transactions
    counts = prune(store, cutoff_for(h.runner.config, h.clock.now(), timedelta(days=5)), batch=2)
    assert counts["executions"] == 5 and counts["task_executions"] == 5
    assert not any(_exists(h, e) for e in made.old)
    # 5 executions two at a time: three rounds, each one transaction per kind.
    assert store.db.write_transactions - writes >= 3 * 4


@pytest.mark.parametrize("bad", [timedelta(0), timedelta(days=-1), 30, "30d", None])
def test_a_bad_age_is_a_value_error_naming_it(harness: Harness, bad: Any) -> None:
    message = f"older_than must be a positive timedelta, got {bad!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        harness.runner.prune(bad)


def test_a_runner_with_a_retention_prunes_on_its_own(
    new_harness: Callable[..., Harness],
) -> None:
    config = DefaultRunnerConfig(execution_retention_days=2, prune_interval_seconds=3600)
    h = new_harness(config=config)

    @cloaca.task(id="ok")
    def ok(context: Context) -> None:
        return None

    cloaca.workflow("ok_wf", [ok])
    first = h.execute("ok_wf").execution_id
    h.clock.advance(DAY)
    h.run_until_idle()
    assert _exists(h, first)
    second = h.execute("ok_wf").execution_id
    h.clock.advance(DAY + 3600)  # the first is now older than two days, the second is not
    h.run_until_idle()
    assert not _exists(h, first)
    assert _exists(h, second)
    assert h.clock.now() - DEFAULT_START == timedelta(days=2, hours=1)


def test_no_retention_means_a_runner_keeps_everything(harness: Harness) -> None:
    @cloaca.task(id="ok")
    def ok(context: Context) -> None:
        return None

    cloaca.workflow("ok_wf", [ok])
    first = harness.execute("ok_wf").execution_id
    harness.clock.advance(400 * DAY)
    harness.run_until_idle()
    assert _exists(harness, first)


def test_config_rejects_a_negative_retention() -> None:
    with pytest.raises(ValueError, match="execution_retention_days=-1 is invalid"):
        DefaultRunnerConfig(execution_retention_days=-1)
    with pytest.raises(ValueError, match="prune_interval_seconds=0 is invalid"):
        DefaultRunnerConfig(prune_interval_seconds=0)


@pytest.fixture
def on_url(db_url: str) -> Iterator[tuple[Harness, str]]:
    """A harness on ``db_url`` (which the test also reads and writes with plain SQL)."""
    harness = Harness(db_url, DefaultRunnerConfig(workflow_timeout_seconds=100 * DAY))
    yield harness, db_url
    harness.close()


def test_task_attempts_go_with_their_executions(
    on_url: tuple[Harness, str],
) -> None:
    h, url = on_url
    made = _history(h)
    for execution_id in made.old + made.active:
        run_sql(
            url,
            "INSERT INTO cloaca_task_attempts (execution_id, task_id, attempt, outcome) "
            "VALUES (:e, 't', 1, 'failed')",
            {"e": execution_id},
        )
    rows = run_sql(url, "SELECT execution_id FROM cloaca_task_attempts")
    old = sum(1 for row in rows if row[0] in made.old)  # ours, and failed runs' own
    assert old >= len(made.old)
    assert h.runner.prune(timedelta(days=5), dry_run=True)["task_attempts"] == old
    assert h.runner.prune(timedelta(days=5))["task_attempts"] == old
    left = run_sql(url, "SELECT execution_id FROM cloaca_task_attempts")
    kept = {row[0] for row in left}
    assert set(made.active) <= kept and not kept & set(made.old)


def test_unlinked_cron_records_stay_while_recovery_may_still_hand_them_off(
    on_url: tuple[Harness, str],
) -> None:
    h, url = on_url
    made = _history(h)
    now = h.clock.now()
    for key, age in (("recent", timedelta(hours=3)), ("old", timedelta(days=3))):
        run_sql(
            url,
            "INSERT INTO cloaca_cron_executions (id, schedule_id, scheduled_time, claimed_at) "
            "VALUES (:id, :schedule, :at, :at)",
            {"id": key, "schedule": made.cron_schedule, "at": to_db_time(now - age)},
        )
    # Recovery looks back cron_max_recovery_age_seconds (a day): the 3-hour-old slot may
    # still be handed off, so an hour's cutoff keeps it; the 3-day-old one goes.
    counts = h.runner.prune(timedelta(hours=1))
    assert counts["cron_executions"] == 2  # the old one and the 10-day-old linked one
    left = run_sql(url, "SELECT id FROM cloaca_cron_executions")
    assert [row[0] for row in left] == ["recent"]


def test_a_failing_prune_is_logged_and_tried_again_at_the_next_interval(
    new_harness: Callable[..., Harness],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = DefaultRunnerConfig(execution_retention_days=1, prune_interval_seconds=600)
    h = new_harness(config=config)
    calls: list[object] = []

    def broken(*args: object) -> dict[str, int]:
        calls.append(args)
        raise RuntimeError("disk full")

    monkeypatch.setattr(h.runner._store.retention, "delete_executions", broken)
    h.run_until_idle()
    h.run_until_idle()
    assert "pruning old history failed" in caplog.text
    tries = len(calls)
    assert tries >= 1
    h.clock.advance(599)
    h.run_until_idle()
    assert len(calls) == tries  # not at every round
    h.clock.advance(1)
    h.run_until_idle()
    assert len(calls) > tries
