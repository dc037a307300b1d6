"""Issue #9: programs written for upstream ``cloaca`` run unchanged (on both backends)."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Iterator

import pytest

import cloaca
from cloaca import Context
from cloaca.testing import Harness
from pg_support import drop_schema, require_postgres, run_sql


def test_tasks_decorated_in_a_builder_block_are_found_by_id(db_url: str) -> None:
    with cloaca.WorkflowBuilder("block_wf") as builder:
        builder.description("tasks defined in the block, then added by id")

        @cloaca.task(id="first")
        def first(context: Context) -> None:
            context.set("trail", ["first"])

        @cloaca.task(id="second", dependencies=["first"])
        def second(context: Context) -> None:
            context.set("trail", [*context.get("trail"), "second"])

        builder.add_task("first")
        builder.add_task("second")
        builder.add_task(second)  # adding a task already in the builder is a no-op

    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("block_wf")
    assert result.status == "Completed"
    assert result.final_context["trail"] == ["first", "second"]


def test_a_constructor_adds_by_id_tasks_defined_in_a_builder_of_its_workflow(
    db_url: str,
) -> None:
    with cloaca.WorkflowBuilder("made_wf"):

        @cloaca.task(id="made_step")
        def made_step(context: Context) -> None:
            context.set("made", True)

    def construct() -> cloaca.Workflow:
        builder = cloaca.WorkflowBuilder("made_wf")
        builder.description("rebuilt by its constructor")
        builder.add_task("made_step")
        return builder.build()

    cloaca.register_workflow_constructor("made_wf", construct)
    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("made_wf")
    assert result.status == "Completed" and result.final_context["made"] is True


def test_add_task_by_an_unknown_id_still_says_not_found() -> None:
    with pytest.raises(ValueError, match="not found in registry"):
        cloaca.WorkflowBuilder("nothing_wf").add_task("never_defined")


def test_retry_policy_builder_reads_back_with_jitter() -> None:
    built = cloaca.RetryPolicy.builder().max_attempts(2).with_jitter(True).build()
    assert built.with_jitter is True
    assert cloaca.RetryPolicy.builder().with_jitter(False).build().with_jitter is False
    assert isinstance(cloaca.RetryPolicy.builder(), cloaca.RetryPolicyBuilder)


def test_retry_attempts_zero_means_one_attempt_without_retry(db_url: str) -> None:
    calls: list[int] = []

    @cloaca.task(id="fails_once", retry_attempts=0, retry_delay_ms=0)
    def fails_once(context: Context) -> None:
        calls.append(1)
        raise RuntimeError("boom")

    cloaca.workflow("zero_retry_wf", [fails_once])
    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("zero_retry_wf")
    assert result.status == "Failed"
    assert result.task_results["fails_once"].attempts == 1
    assert calls == [1]


def test_parallel_branches_appending_to_one_list_both_survive_at_the_join(db_url: str) -> None:
    with cloaca.WorkflowBuilder("fan_wf"):

        @cloaca.task(id="start")
        def start(context: Context) -> None:
            context.set("items", ["seed"])
            context.set("meta", {"by": {"start": 1}})

        @cloaca.task(id="left", dependencies=["start"])
        def left(context: Context) -> None:
            context.set("items", [*context.get("items"), "left", "shared"])
            context.set("meta", {"by": {"left": 1}})

        @cloaca.task(id="right", dependencies=["start"])
        def right(context: Context) -> None:
            context.set("items", [*context.get("items"), "right", "shared"])
            context.set("meta", {"by": {"right": 1}})

        @cloaca.task(id="join", dependencies=["left", "right"])
        def join(context: Context) -> None:
            context.set("seen_at_join", context.get("items"))

    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("fan_wf")
    assert result.status == "Completed"
    assert result.final_context["seen_at_join"] == ["seed", "left", "shared", "right"]
    assert result.final_context["items"] == ["seed", "left", "shared", "right"]
    assert result.final_context["meta"] == {"by": {"start": 1, "left": 1, "right": 1}}


def test_register_workflow_instance_takes_a_context_as_documented(harness: Harness) -> None:
    @cloaca.task(id="report")
    def report(context: Context) -> None:
        context.set("done", True)

    cloaca.workflow("report_wf", [report])
    sid = harness.runner.register_workflow_instance(
        "report_wf", "eu", "0 * * * *", "UTC", cloaca.Context({"region": "eu"})
    )
    assert harness.runner.get_cron_schedule(sid)["params"] == {"region": "eu"}
    harness.advance(3600)
    (row,) = harness.runner.get_cron_execution_history(sid)
    assert row["updated_at"] == row["claimed_at"]
    result = harness.runner.get_execution(row["workflow_execution_id"])
    assert result.final_context["region"] == "eu" and result.final_context["done"] is True


def test_with_schema_takes_exactly_the_two_upstream_parameters() -> None:
    parameters = list(inspect.signature(cloaca.DefaultRunner.with_schema).parameters)
    assert parameters == ["database_url", "schema"]


@pytest.fixture
def role_without_create() -> Iterator[str]:
    """A login role that may not create schemas (trust auth: its password is not checked)."""
    url = require_postgres()
    role = f"h3_nocreate_{uuid.uuid4().hex[:8]}"
    run_sql(url, f'CREATE ROLE "{role}" LOGIN')
    run_sql(url, f'REVOKE CREATE ON DATABASE test FROM "{role}"')
    yield role
    run_sql(url, f'DROP ROLE IF EXISTS "{role}"')


def test_a_schema_that_cannot_be_set_up_says_so_without_the_password(
    role_without_create: str,
) -> None:
    url = require_postgres().replace("postgres@", f"{role_without_create}:S3cretPw@", 1)
    schema = f"h3_denied_{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(ValueError, match="Failed to set up schema") as raised:
            cloaca.DefaultRunner.with_schema(url, schema)
    finally:
        drop_schema(require_postgres(), schema)
    assert "S3cretPw" not in str(raised.value)
    assert "***" in str(raised.value)


def test_every_upstream_name_is_there() -> None:
    for name in (
        "DatabaseAdmin",
        "TenantConfig",
        "TenantCredentials",
        "workflow_params",
        "workflow_secrets",
        "boundary_schema",
        "var",
        "var_or",
        "RetryPolicyBuilder",
    ):
        assert getattr(cloaca, name).__doc__, name


def test_boundary_schema_is_accepted_and_returns_its_argument() -> None:
    class Schema:
        pass

    assert cloaca.boundary_schema(Schema) is Schema
    assert cloaca.boundary_schema()(Schema) is Schema


def test_var_reads_cloacina_var_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOACINA_VAR_API_KEY", "abc123")
    monkeypatch.delenv("CLOACINA_VAR_MISSING_ONE", raising=False)
    assert cloaca.var("API_KEY") == "abc123"
    assert cloaca.var_or("API_KEY", "fallback") == "abc123"
    assert cloaca.var_or("MISSING_ONE", "fallback") == "fallback"
    with pytest.raises(KeyError, match="CLOACINA_VAR_MISSING_ONE"):
        cloaca.var("MISSING_ONE")
