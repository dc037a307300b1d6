"""The engine on PostgreSQL: executions, triggers and cron through the same API as SQLite,
each test in its own schema (``DefaultRunner.with_schema``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerResult
from cloaca.testing import FakeClock, Harness


def test_a_workflow_runs_to_completion_with_retries_and_merged_context(pg_schema) -> None:
    url, schema = pg_schema
    calls = Counter()

    @cloaca.task(id="extract")
    def extract(context: Context) -> None:
        context.set("rows", [1, 2, 3])

    @cloaca.task(id="flaky", dependencies=["extract"], retry_attempts=3, retry_delay_ms=10)
    def flaky(context: Context) -> None:
        calls["flaky"] += 1
        if calls["flaky"] < 2:
            raise RuntimeError("temporary glitch")
        context.set("total", sum(context.get("rows")))

    @cloaca.task(id="side", dependencies=["extract"])
    def side(context: Context) -> None:
        context.set("side", True)

    @cloaca.task(id="load", dependencies=["flaky", "side"])
    def load(context: Context) -> None:
        context.set("loaded", context.get("total"))

    cloaca.workflow("pg_etl", [extract, flaky, side, load])
    with cloaca.DefaultRunner.with_schema(url, schema) as runner:
        result = runner.execute("pg_etl", {"source": "pg"})
        assert result.status == "Completed", result.error_message
        assert result.final_context.to_dict() == {
            "source": "pg",
            "rows": [1, 2, 3],
            "total": 6,
            "side": True,
            "loaded": 6,
        }
        assert result.task_results["flaky"].attempts == 2
        listed = runner.list_executions(workflow_name="pg_etl")
        assert [r["status"] for r in listed] == ["Completed"]


def test_a_second_runner_sees_the_history_and_a_client_starts_work_for_a_worker(
    pg_schema,
) -> None:
    url, schema = pg_schema

    @cloaca.task(id="hello")
    def hello(context: Context) -> None:
        context.set("greeting", f"hello {context.get('name')}")

    cloaca.workflow("pg_hello", [hello])
    with cloaca.DefaultRunner.with_schema(url, schema) as worker:
        first = worker.execute("pg_hello", {"name": "a"})
        with cloaca.DefaultRunner.with_schema(url, schema) as other:
            assert other.get_execution(first.execution_id).status == "Completed"
            execution_id = other.start("pg_hello", {"name": "b"})
            result = other.wait(execution_id, timeout=20)
        assert result.final_context.get("greeting") == "hello b"


def test_trigger_fires_deduplicates_and_records_on_postgres(pg_schema) -> None:
    url, schema = pg_schema
    seen: list[Any] = []

    @cloaca.task(id="handle")
    def handle(context: Context) -> None:
        seen.append(context.get("file"))

    cloaca.workflow("pg_files", [handle])

    class Inbox(cloaca.Trigger):
        name = "pg_inbox"
        poll_interval = "1s"

        def poll(self) -> TriggerResult:
            return TriggerResult.fire({"file": "a.csv"})

    cloaca.register_trigger(Inbox())
    with Harness(url, schema=schema) as h:
        h.runner.register_trigger("pg_inbox", "pg_files")
        assert h.runner.fire_trigger("pg_inbox", {"file": "a.csv"}) is not None
        assert h.runner.fire_trigger("pg_inbox", {"file": "a.csv"}) is None  # still active
        h.run_until_idle()
        h.advance(3)
        history = h.runner.get_trigger_execution_history("pg_inbox")
        assert len(history) >= 2 and all(r["completed_at"] for r in history)
        outcomes = Counter(e["outcome"] for e in h.runner.get_trigger_evaluations("pg_inbox", 50))
        assert outcomes["fired"] >= 2 and outcomes["deduplicated"] >= 1
        assert seen and set(seen) == {"a.csv"}


def test_two_runners_fire_each_cron_slot_exactly_once_on_postgres(pg_schema) -> None:
    url, schema = pg_schema
    fired: list[str] = []

    @cloaca.task(id="tick")
    def tick(context: Context) -> None:
        fired.append(context.get("scheduled_time"))

    cloaca.workflow("pg_ticks", [tick])
    clock = FakeClock()
    config = DefaultRunnerConfig(cron_poll_interval_seconds=3600)
    with Harness(url, config, clock=clock, schema=schema) as a:
        a.runner.register_cron_workflow("pg_ticks", "*/10 * * * * *")
        with Harness(url, config, clock=clock, schema=schema) as b:  # sees the schedule
            for step in range(6):
                clock.advance(10)  # one slot per step; who looks first alternates
                first, second = (a, b) if step % 2 else (b, a)
                first.run_until_idle()
                second.run_until_idle()
            claimed_by = {
                r["claimed_by"]
                for s in a.runner.list_cron_schedules()
                for r in a.runner.get_cron_execution_history(s["id"])
            }
    assert claimed_by == {a.runner.runner_id, b.runner.runner_id}
    counts = Counter(fired)
    assert len(counts) == 6 and set(counts.values()) == {1}
