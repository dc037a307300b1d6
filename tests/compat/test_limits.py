"""Names, identifiers and context limits checked at the door, through the runner on both
backends: a bad name never reaches the database, an oversized or over-deep context fails
cleanly (a clear error, a terminal execution, an error evaluation), and a schema name at
PostgreSQL's identifier limit works end to end."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig, TriggerResult
from cloaca.context import MAX_CONTEXT_DEPTH
from cloaca.names import MAX_IDENTIFIER_BYTES, MAX_NAME_LENGTH
from cloaca.testing import Harness
from cloaca.workflows.registry import registered_workflows
from pg_support import drop_schema, require_postgres, run_sql

LIMIT = 2_000  # bytes: a small max_context_bytes so tests need no large data
SCHEMA_PREFIX = "limits_t_"
CREATED: list[str] = []  # schemas a test may have created (or must not have), to drop
CONTROL_NAMES = ["nul\x00name", "new\nline", "tab\tbed", "del\x7f", "   "]


@pytest.fixture
def small(backend: str, db_url: str) -> Iterator[Harness]:
    """A harness whose contexts are capped at ``LIMIT`` bytes, on each backend."""
    config = DefaultRunnerConfig(max_context_bytes=LIMIT)
    with Harness(":memory:" if backend == "sqlite" else db_url, config) as h:
        yield h


def hello_workflow(name: str = "hello") -> None:
    with cloaca.WorkflowBuilder(name):

        @cloaca.task(id="greet")
        def greet(context: Context) -> None:
            context.set("greeting", f"hello {context.get('who', 'world')}")


def nested_dicts(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    """``levels`` dicts inside each other under key "n"; ``leaf`` is the innermost one."""
    value = leaf
    for _ in range(levels - 1):
        value = {"n": value}
    return value


def innermost(value: dict[str, Any]) -> dict[str, Any]:
    while "n" in value:
        value = value["n"]
    return value


# -- names --------------------------------------------------------------------------------------


def test_nul_in_a_workflow_name_does_not_poison_other_workflows(harness: Harness) -> None:
    """On PostgreSQL a NUL once made every claim query fail; it is refused at registration,
    so the registry only holds valid names and a normal workflow runs."""

    @cloaca.task(id="standalone")
    def standalone(context: Context) -> None:
        return None

    for register in (
        lambda: cloaca.WorkflowBuilder("bad\x00name"),
        lambda: cloaca.workflow("bad\x00name", [standalone]),
        lambda: cloaca.register_workflow_constructor(
            "bad\x00name", lambda: cloaca.WorkflowBuilder("other")
        ),
    ):
        with pytest.raises(ValueError, match=r"'bad\\x00name'.*control character"):
            register()
    hello_workflow()
    result = harness.execute("hello", {"who": "nul"})
    assert result.status == "Completed"
    assert result.final_context["greeting"] == "hello nul"
    assert [w.name for w in registered_workflows()] == ["hello"]


@pytest.mark.parametrize("bad", CONTROL_NAMES)
def test_bad_workflow_names_are_refused_by_every_runner_entry_point(
    harness: Harness, bad: str
) -> None:
    hello_workflow()
    runner = harness.runner
    calls = [
        lambda: runner.start(bad),
        lambda: runner.execute(bad),
        lambda: runner.register_cron_workflow(bad, "0 * * * *"),
        lambda: runner.register_workflow_instance(bad, "inst", "0 * * * *"),
        lambda: runner.register_trigger(cloaca.trigger(name="t")(lambda: True), bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=f"workflow name {re.escape(repr(bad))}.*accepted"):
            call()
    assert runner.list_executions() == []
    assert runner.list_cron_schedules() == []
    assert runner.list_trigger_schedules() == []


@pytest.mark.parametrize("bad", CONTROL_NAMES)
def test_bad_trigger_and_instance_names_are_refused(harness: Harness, bad: str) -> None:
    hello_workflow()
    runner = harness.runner
    with pytest.raises(ValueError, match=r"instance_name .*is invalid"):
        runner.register_workflow_instance("hello", bad, "0 * * * *")
    with pytest.raises(ValueError, match="not registered and cannot be: trigger name"):
        runner.register_trigger(bad, "hello")

    class Named(cloaca.Trigger):
        def poll(self) -> bool:
            return True

    with pytest.raises(ValueError, match="no valid name"):
        runner.register_trigger(Named(name=bad), "hello")
    assert runner.list_cron_schedules() == []
    assert runner.list_trigger_schedules() == []


def test_names_at_the_length_limit_work_end_to_end(harness: Harness) -> None:
    name = "w" * MAX_NAME_LENGTH
    with cloaca.WorkflowBuilder(name):

        @cloaca.task(id="t" * MAX_NAME_LENGTH)
        def long_task(context: Context) -> None:
            context.set("ran", True)

    result = harness.execute(name)
    assert result.status == "Completed" and result.final_context["ran"] is True
    assert list(result.task_results) == ["t" * MAX_NAME_LENGTH]
    instance = harness.runner.register_workflow_instance(name, "i" * MAX_NAME_LENGTH, "@hourly")
    assert harness.runner.get_cron_schedule(instance)["instance_name"] == "i" * MAX_NAME_LENGTH
    with pytest.raises(ValueError, match="256 characters long, over the limit of 255"):
        harness.runner.start(name + "w")


# -- context size -------------------------------------------------------------------------------


def test_an_oversized_input_is_refused_at_start_naming_size_and_limit(small: Harness) -> None:
    hello_workflow()
    big = {"blob": "x" * LIMIT}
    size = len(f'{{"blob": "{"x" * LIMIT}"}}')
    with pytest.raises(ValueError, match=f"is {size} bytes of JSON, over the limit of {LIMIT}"):
        small.runner.start("hello", big)
    with pytest.raises(ValueError, match=f"over the limit of {LIMIT} bytes"):
        small.runner.start("hello", Context(big))
    assert small.runner.list_executions() == []
    assert small.execute("hello", {"blob": "x" * (LIMIT // 2)}).status == "Completed"


def test_a_task_returning_an_oversized_context_fails_without_retry(small: Harness) -> None:
    ran: list[int] = []
    with cloaca.WorkflowBuilder("grow"):

        @cloaca.task(id="grow", retry_attempts=3, retry_delay_ms=1)
        def grow(context: Context) -> None:
            ran.append(1)
            context.set("blob", "x" * LIMIT)

        @cloaca.task(id="after", dependencies=["grow"])
        def after(context: Context) -> None:
            return None

    result = small.execute("grow")
    small.advance(60)  # a retry, had one been scheduled, would run in this minute
    result = small.runner.get_execution(result.execution_id)
    assert result.status == "Failed"
    task = result.task_results["grow"]
    assert task.status == "Failed" and task.attempts == 1 and len(ran) == 1
    assert task.error is not None
    assert "context returned by task 'grow'" in task.error
    assert f"over the limit of {LIMIT} bytes" in task.error
    assert result.task_results["after"].status == "Skipped"


def test_an_oversized_trigger_fire_is_an_error_evaluation(small: Harness) -> None:
    hello_workflow()
    contexts = [{"n": 1}, {"blob": "x" * LIMIT}]

    @cloaca.trigger(name="many", poll_interval="1s")
    def many() -> TriggerResult:
        return TriggerResult.fire_many(contexts)

    small.runner.register_trigger("many", "hello")
    small.advance(0)
    [evaluation] = small.runner.get_trigger_evaluations("many")
    assert evaluation["outcome"] == "error"
    assert "context 1 of the 2 fired by trigger 'many'" in evaluation["message"]
    assert f"over the limit of {LIMIT} bytes" in evaluation["message"]
    assert small.runner.list_executions() == []  # none of the poll's fires started
    contexts.pop()
    small.advance(1)  # after the error backoff (one interval) it polls again, within the limit
    assert [e["outcome"] for e in small.runner.get_trigger_evaluations("many")][0] == "fired"
    assert len(small.runner.list_executions()) == 1


def test_an_oversized_manual_fire_raises_and_is_recorded(small: Harness) -> None:
    hello_workflow()
    cloaca.trigger(name="manual", poll_interval="1h")(lambda: False)
    small.runner.register_trigger("manual", "hello")
    with pytest.raises(ValueError, match=f"trigger 'manual' is .* over the limit of {LIMIT}"):
        small.runner.fire_trigger("manual", {"blob": "x" * LIMIT})
    [evaluation] = small.runner.get_trigger_evaluations("manual")
    assert evaluation["outcome"] == "error"
    assert evaluation["message"].startswith("manual fire: ")
    assert small.runner.list_executions() == []
    assert small.runner.fire_trigger("manual", {"small": True}) is not None


def test_cron_instance_params_obey_the_context_limits(small: Harness) -> None:
    hello_workflow()
    runner = small.runner
    with pytest.raises(ValueError, match=f"cron instance params is .* over the limit of {LIMIT}"):
        runner.register_workflow_instance("hello", "big", "@hourly", params={"b": "x" * LIMIT})
    too_deep = nested_dicts(MAX_CONTEXT_DEPTH + 1, {})
    with pytest.raises(ValueError, match=f"'deep' is nested more than {MAX_CONTEXT_DEPTH}"):
        runner.register_workflow_instance("hello", "deep", "@hourly", params={"deep": too_deep})
    assert runner.list_cron_schedules() == []
    at_limit = nested_dicts(MAX_CONTEXT_DEPTH, {"leaf": 1})
    runner.register_workflow_instance("hello", "ok", "@hourly", params={"deep": at_limit})
    small.advance(3600)
    [execution] = runner.list_executions()
    result = runner.get_execution(execution["id"])
    assert result.status == "Completed"
    assert innermost(result.final_context["deep"]) == {"leaf": 1}


# -- context nesting ----------------------------------------------------------------------------


def diamond(depth: int) -> None:
    """top -> (left, right) -> join; left and right each add a leaf at ``depth`` levels."""
    with cloaca.WorkflowBuilder("diamond"):

        @cloaca.task(id="top")
        def top(context: Context) -> None:
            context.set("tree", nested_dicts(depth, {"top": 1}))

        @cloaca.task(id="left", dependencies=["top"])
        def left(context: Context) -> None:
            context.set("tree", nested_dicts(depth, {"left": 1}))

        @cloaca.task(id="right", dependencies=["top"])
        def right(context: Context) -> None:
            context.set("tree", nested_dicts(depth, {"right": 1}))

        @cloaca.task(id="join", dependencies=["left", "right"])
        def join(context: Context) -> None:
            context.set("seen", innermost(context["tree"]))


def test_a_context_at_the_nesting_limit_passes_a_diamond_join(harness: Harness) -> None:
    diamond(MAX_CONTEXT_DEPTH)
    result = harness.execute("diamond")
    assert result.status == "Completed"
    # The join got both branches merged all the way down.
    assert result.final_context["seen"] == {"left": 1, "right": 1}
    assert innermost(result.final_context["tree"]) == {"top": 1, "left": 1, "right": 1}


def test_a_context_beyond_the_nesting_limit_fails_cleanly(harness: Harness) -> None:
    diamond(MAX_CONTEXT_DEPTH + 1)
    result = harness.execute("diamond")
    assert result.status == "Failed"  # terminal: nothing is left Running
    top = result.task_results["top"]
    assert top.status == "Failed" and top.attempts == 1
    assert top.error is not None
    assert f"'tree' is nested more than {MAX_CONTEXT_DEPTH} levels" in top.error
    assert {t.status for k, t in result.task_results.items() if k != "top"} == {"Skipped"}


def test_an_over_deep_input_is_refused_at_start(harness: Harness) -> None:
    hello_workflow()
    deep = nested_dicts(MAX_CONTEXT_DEPTH + 1, {})
    with pytest.raises(ValueError, match=f"'deep' is nested more than {MAX_CONTEXT_DEPTH}"):
        harness.runner.start("hello", {"deep": deep})
    assert harness.runner.list_executions() == []


# -- schema names (PostgreSQL only: schemas exist nowhere else) ---------------------------------


def schema_exists(url: str, schema: str) -> bool:
    rows = run_sql(
        url,
        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = :s",
        {"s": schema},
    )
    return bool(rows[0][0])


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The test PostgreSQL; the schemas in ``CREATED`` are dropped afterwards."""
    url = require_postgres()
    yield url
    while CREATED:
        drop_schema(url, CREATED.pop())


def test_a_schema_name_at_the_identifier_limit_works_end_to_end(pg_url: str) -> None:
    import psycopg

    schema = (SCHEMA_PREFIX + uuid.uuid4().hex * 2)[:MAX_IDENTIFIER_BYTES]
    assert len(schema) == MAX_IDENTIFIER_BYTES
    CREATED.append(schema)
    hello_workflow()
    with DefaultRunner.with_schema(pg_url, schema) as runner:
        channel = runner._store.db.channel
        assert len(channel.encode()) <= MAX_IDENTIFIER_BYTES
        with psycopg.connect(pg_url, autocommit=True) as listener:
            listener.execute(f'LISTEN "{channel}"')
            result = runner.wait(runner.start("hello", {"who": "schema"}), timeout=60)
            # The runner's notifications arrive on the channel its listener uses.
            payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert result.status == "Completed" and result.final_context["greeting"] == "hello schema"
    assert payloads
    assert schema_exists(pg_url, schema)


@pytest.mark.parametrize(
    "schema",
    [(SCHEMA_PREFIX + "s" * MAX_IDENTIFIER_BYTES)[: MAX_IDENTIFIER_BYTES + 1], "limits_t_a\n"],
    ids=["64-bytes", "trailing-newline"],
)
def test_an_invalid_schema_name_is_rejected_before_anything_is_created(
    pg_url: str, schema: str
) -> None:
    CREATED.extend({schema, schema[:MAX_IDENTIFIER_BYTES], schema.strip()})
    with pytest.raises(ValueError, match="Schema name"):
        DefaultRunner.with_schema(pg_url, schema)
    with pytest.raises(ValueError, match="Schema name"):
        Harness(pg_url, schema=schema)
    assert not schema_exists(pg_url, schema)
    assert not schema_exists(pg_url, schema[:MAX_IDENTIFIER_BYTES])  # no truncated twin
    assert not schema_exists(pg_url, schema.strip())
