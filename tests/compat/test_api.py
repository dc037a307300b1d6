"""The SPEC API surface (sections 3-5), exercised the way a user writes it: ``import cloaca``,
decorate, build, run, read results, error messages included."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import cloaca
from cloaca import Context

WAIT = 10.0
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def rfc3339(text: str | None) -> datetime:
    """Parse an RFC 3339 string (asserting it is one, with a timezone)."""
    assert isinstance(text, str)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None
    return parsed


def hello_workflow(name: str = "hello") -> None:
    """Register a two-task workflow: greet -> shout."""
    with cloaca.WorkflowBuilder(name) as builder:
        builder.description("says hello")

        @cloaca.task(id="greet")
        def greet(context: Context) -> Context:
            context.set("greeting", f"hello {context.get('who', 'world')}")
            return context

        @cloaca.task(dependencies=[greet])
        def shout(context: Context) -> None:
            context.set("shout", context["greeting"].upper())


# -- module surface -----------------------------------------------------------------------------


def test_all_is_pinned_and_every_name_exists() -> None:
    assert cloaca.__all__ == [
        "BackoffStrategy",
        "CloacaError",
        "Context",
        "DatabaseAdmin",
        "DefaultRunner",
        "DefaultRunnerConfig",
        "RetryCondition",
        "RetryPolicy",
        "RetryPolicyBuilder",
        "TaskHandle",
        "TaskResult",
        "TenantConfig",
        "TenantCredentials",
        "Trigger",
        "TriggerError",
        "TriggerResult",
        "Workflow",
        "WorkflowBuilder",
        "WorkflowResult",
        "__version__",
        "all_of",
        "always",
        "any_of",
        "boundary_schema",
        "context_value",
        "none_of",
        "register_trigger",
        "register_workflow_constructor",
        "task",
        "task_failed",
        "task_skipped",
        "task_success",
        "trigger",
        "var",
        "var_or",
        "workflow",
        "workflow_params",
        "workflow_secrets",
    ]
    for name in cloaca.__all__:
        assert getattr(cloaca, name) is not None
        if not name.startswith("_"):
            assert getattr(cloaca, name).__doc__, f"{name} has no docstring"
    assert re.match(r"^\d+\.\d+\.\d+", cloaca.__version__)


# -- Context ------------------------------------------------------------------------------------


def test_context_api() -> None:
    ctx = Context({"a": 1, "nested": {"list": [1, 2]}})
    assert ctx.get("a") == 1 and ctx.get("missing") is None and ctx.get("missing", 7) == 7
    ctx.set("a", 2)
    ctx.insert("b", "x")
    with pytest.raises(ValueError, match="Key already exists"):
        ctx.insert("b", "y")
    ctx.update("b", "z")
    with pytest.raises(KeyError):
        ctx.update("missing", 1)
    assert ctx.remove("b") == "z" and ctx.remove("b") is None
    ctx["c"] = [1]
    assert ctx["c"] == [1] and "c" in ctx and "zz" not in ctx and len(ctx) == 3
    with pytest.raises(KeyError):
        ctx["missing"]
    del ctx["c"]
    with pytest.raises(KeyError):
        del ctx["c"]
    ctx.update_from_dict({"d": True, "a": 3})
    assert ctx.to_dict() == {"a": 3, "nested": {"list": [1, 2]}, "d": True}
    text = ctx.to_json()
    assert json.loads(text) == ctx.to_dict()
    assert Context.from_json(text) == ctx
    assert repr(Context({"k": 1})) == 'Context({"k":1})'
    with pytest.raises(ValueError):
        Context.from_json("{not json")
    assert Context().to_dict() == {} and len(Context(None)) == 0


def test_context_copies_are_deep() -> None:
    source = {"nested": {"list": [1]}}
    ctx = Context(source)
    source["nested"]["list"].append(2)
    assert ctx["nested"] == {"list": [1]}
    got = ctx.get("nested")
    got["list"].append(3)
    assert ctx.to_dict() == {"nested": {"list": [1]}}
    exported = ctx.to_dict()
    exported["nested"]["list"].append(4)
    assert ctx["nested"]["list"] == [1]


@pytest.mark.parametrize("value", [object(), {1, 2}, float("nan"), b"bytes", {"k": object()}])
def test_context_rejects_non_json_values_naming_the_key(value: Any) -> None:
    with pytest.raises(TypeError, match="'bad'"):
        Context().set("bad", value)
    with pytest.raises(TypeError, match="'bad'"):
        Context({"bad": value})


# -- @task --------------------------------------------------------------------------------------


def test_task_returns_the_function_still_callable_and_takes_every_parameter() -> None:
    def on_success(task_id: str, context: Context) -> None:
        pass

    def on_failure(task_id: str, error: str, context: Context) -> None:
        pass

    @cloaca.task()
    def base(context: Context) -> Context:
        context.set("base", True)
        return context

    decorated = cloaca.task(
        id="custom_id",
        dependencies=[base, "other"],
        retry_attempts=5,
        retry_backoff="linear",
        retry_delay_ms=10,
        retry_max_delay_ms=100,
        retry_condition="transient",
        retry_jitter=False,
        on_success=on_success,
        on_failure=on_failure,
        trigger_rules=cloaca.all_of(cloaca.task_success("base")),
        timeout=timedelta(seconds=3),
    )

    def original(context: Context) -> None:
        context.set("direct", True)

    assert decorated(original) is original
    ctx = Context()
    original(ctx)  # still directly callable
    assert ctx["direct"] is True
    assert base(Context()).to_dict() == {"base": True}
    with_policy = cloaca.task(retry=cloaca.RetryPolicy.default(), timeout=1.5)
    assert callable(with_policy)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retry": cloaca.RetryPolicy.default(), "retry_attempts": 2}, "not both.*retry_attempts"),
        ({"retry_backoff": "quadratic"}, "quadratic"),
        ({"retry_condition": "sometimes"}, "sometimes"),
        ({"retry_attempts": -1}, "retry_attempts"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"trigger_rules": {"type": "Sometimes"}}, "Sometimes"),
        ({"dependencies": [42]}, "string task ID or a function object"),
        ({"on_success": "not callable"}, "on_success"),
    ],
)
def test_task_rejects_bad_options_clearly(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cloaca.task(**kwargs)


def test_task_functions_must_take_context() -> None:
    with pytest.raises(ValueError, match="context"):
        cloaca.task()(lambda: None)
    with pytest.raises(ValueError, match="'extra'"):

        @cloaca.task()
        def odd(context: Context, extra: int) -> None:
            pass


# -- workflows ----------------------------------------------------------------------------------


def test_workflow_builder_and_workflow_attributes() -> None:
    with cloaca.WorkflowBuilder("etl", tenant="t", package="p", workflow="w") as builder:
        builder.description("extract, transform, load").tag("team", "data")

        @cloaca.task()
        def extract(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[extract])
        def transform(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[extract])
        def audit(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[transform, audit])
        def load(context: Context) -> None:
            pass

    wf = builder.build()
    assert isinstance(wf, cloaca.Workflow)
    assert (wf.name, wf.description) == ("etl", "extract, transform, load")
    assert HEX16.match(wf.version)
    assert wf.topological_sort() == ["extract", "transform", "audit", "load"]
    assert wf.get_execution_levels() == [["extract"], ["transform", "audit"], ["load"]]
    assert wf.get_roots() == ["extract"] and wf.get_leaves() == ["load"]
    wf.validate()


def _versioned(name: str, second_dep: bool) -> str:
    with cloaca.WorkflowBuilder(name) as builder:

        @cloaca.task()
        def one(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[one] if second_dep else [])
        def two(context: Context) -> None:
            pass

    return builder.build().version


def test_workflow_version_is_a_content_hash() -> None:
    first = _versioned("v", second_dep=True)
    assert _versioned("v", second_dep=True) == first
    assert _versioned("v", second_dep=False) != first


def test_add_task_and_build_errors() -> None:
    @cloaca.task()
    def standalone(context: Context) -> None:
        pass

    builder = cloaca.WorkflowBuilder("manual")
    with pytest.raises(ValueError, match="cannot be empty"):
        builder.build()
    with pytest.raises(ValueError, match="'ghost' not found in registry"):
        builder.add_task("ghost")
    with pytest.raises(ValueError, match="string task ID or a function object"):
        builder.add_task(42)
    with pytest.raises(ValueError, match="not found in registry"):
        builder.add_task(lambda context: None)  # a function, but not a task
    assert builder.add_task("standalone") is builder
    builder.add_task(standalone)  # the same task again by function: harmless
    assert builder.build().topological_sort() == ["standalone"]


def test_cloaca_workflow_assembles_standalone_tasks(db_url: str) -> None:
    @cloaca.task()
    def fetch(context: Context) -> None:
        context.set("fetched", True)

    @cloaca.task(dependencies=["fetch"])
    def store(context: Context) -> None:
        context.set("stored", context["fetched"])

    wf = cloaca.workflow("pipeline", tasks=[fetch, "store"], description="fetch then store")
    assert (wf.name, wf.description) == ("pipeline", "fetch then store")
    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("pipeline")
    assert result.final_context.to_dict() == {"fetched": True, "stored": True}


def test_register_workflow_constructor(db_url: str) -> None:
    @cloaca.task()
    def step(context: Context) -> None:
        context.set("constructed", True)

    def build() -> cloaca.WorkflowBuilder:
        return cloaca.WorkflowBuilder("constructed").add_task(step)

    cloaca.register_workflow_constructor("constructed", build)
    with cloaca.DefaultRunner(db_url) as runner:
        assert runner.execute("constructed").final_context["constructed"] is True
    with pytest.raises(ValueError, match="callable"):
        cloaca.register_workflow_constructor("x", "not callable")  # type: ignore[arg-type]


# -- DefaultRunner and its URLs -----------------------------------------------------------------


def test_relative_sqlite_url_creates_the_file_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hello_workflow()
    monkeypatch.chdir(tmp_path)
    with cloaca.DefaultRunner("sqlite://relative.db") as runner:
        assert runner.execute("hello").status == "Completed"
    assert (tmp_path / "relative.db").is_file()


@pytest.mark.parametrize(
    "form",
    ["sqlite://{path}", "sqlite://{path}?mode=rwc", ":memory:", "sqlite://:memory:"],
)
def test_every_sqlite_url_form_runs_a_workflow(tmp_path: Path, form: str) -> None:
    hello_workflow()
    path = tmp_path / "abs.db"
    url = form.format(path=path)  # tmp_path is absolute: sqlite:///tmp/...
    with cloaca.DefaultRunner(url) as runner:
        result = runner.execute("hello", {"who": "url"})
    assert result.final_context["shout"] == "HELLO URL"
    assert path.is_file() == ("{path}" in form)


def test_with_config_and_with_schema(db_url: str) -> None:
    hello_workflow()
    config = cloaca.DefaultRunnerConfig(max_concurrent_tasks=1)
    with cloaca.DefaultRunner.with_config(db_url, config) as runner:
        assert runner.config.max_concurrent_tasks == 1
        assert runner.execute("hello").status == "Completed"
    with pytest.raises(ValueError, match="requires PostgreSQL"):
        cloaca.DefaultRunner.with_schema("sqlite://elsewhere.db", "tenant_a")
    with pytest.raises(ValueError, match="Schema name cannot be empty"):
        cloaca.DefaultRunner.with_schema("postgres://localhost/db", "")
    with pytest.raises(
        ValueError, match="Schema name must contain only alphanumeric characters and underscores"
    ):
        cloaca.DefaultRunner.with_schema("postgres://localhost/db", "bad-name;")


def test_context_manager_and_shutdown(db_url: str) -> None:
    hello_workflow()
    with cloaca.DefaultRunner(db_url) as runner:
        execution_id = runner.execute("hello").execution_id
    with pytest.raises(RuntimeError, match="shut down"):
        runner.execute("hello")
    runner.shutdown()  # idempotent
    other = cloaca.DefaultRunner(db_url)
    try:
        assert other.get_execution(execution_id).status == "Completed"
    finally:
        other.shutdown()


# -- DefaultRunnerConfig ------------------------------------------------------------------------

CONFIG_DEFAULTS: dict[str, Any] = {
    "max_concurrent_tasks": 4,
    "scheduler_poll_interval_ms": 100,
    "task_timeout_seconds": 300,
    "workflow_timeout_seconds": 3600,
    "db_pool_size": 10,
    "enable_recovery": True,
    "enable_cron_scheduling": True,
    "cron_poll_interval_seconds": 30,
    "cron_max_catchup_executions": 100,
    "cron_enable_recovery": True,
    "cron_recovery_interval_seconds": 300,
    "cron_lost_threshold_minutes": 10,
    "cron_max_recovery_age_seconds": 86400,
    "cron_max_recovery_attempts": 3,
    "enable_trigger_scheduling": True,
    "trigger_base_poll_interval": 1.0,
    "trigger_poll_timeout": 30.0,
    "heartbeat_interval_seconds": 10,
    "stale_claim_threshold_seconds": 60,
    "stale_claim_sweep_interval_seconds": 30,
}


def test_config_defaults_to_dict_and_attributes() -> None:
    config = cloaca.DefaultRunnerConfig()
    as_dict = config.to_dict()
    for name, default in CONFIG_DEFAULTS.items():
        assert as_dict[name] == default, name
        assert getattr(config, name) == default
    config.max_concurrent_tasks = 8
    config.trigger_base_poll_interval = timedelta(milliseconds=250)
    assert config.to_dict()["max_concurrent_tasks"] == 8
    assert config.trigger_base_poll_interval == 0.25
    built = cloaca.DefaultRunnerConfig(enable_recovery=False, trigger_poll_timeout=5)
    assert built.enable_recovery is False and built.trigger_poll_timeout == 5.0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrent_tasks", 0),
        ("max_concurrent_tasks", "4"),
        ("max_concurrent_tasks", 2.5),
        ("max_concurrent_tasks", True),
        ("scheduler_poll_interval_ms", -1),
        ("task_timeout_seconds", 0),
        ("enable_recovery", "yes"),
        ("trigger_base_poll_interval", 0),
        ("trigger_base_poll_interval", float("nan")),
        ("stale_claim_threshold_seconds", -5),
        ("no_such_field", 1),
    ],
)
def test_invalid_config_values_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        cloaca.DefaultRunnerConfig(**{field: value})
    config = cloaca.DefaultRunnerConfig()
    with pytest.raises(ValueError, match=field):
        setattr(config, field, value)


# -- executions ---------------------------------------------------------------------------------


def test_execute_returns_a_complete_workflow_result(db_url: str) -> None:
    hello_workflow()
    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("hello", Context({"who": "ada"}))
        from_dict = runner.execute("hello", {"who": "bob"})
    assert isinstance(result, cloaca.WorkflowResult)
    assert result.status == "Completed" and result.error_message is None
    assert result.workflow_name == "hello"
    assert isinstance(result.execution_id, str) and result.execution_id
    assert isinstance(result.final_context, Context)
    assert result.final_context.to_dict() == {
        "who": "ada",
        "greeting": "hello ada",
        "shout": "HELLO ADA",
    }
    assert rfc3339(result.start_time) <= rfc3339(result.end_time)
    assert set(result.task_results) == {"greet", "shout"}
    greet = result.task_results["greet"]
    assert (greet.status, greet.error, greet.attempts) == ("Completed", None, 1)
    assert greet["status"] == "Completed"  # subscript access too
    assert from_dict.final_context["shout"] == "HELLO BOB"


def test_failed_execution_result(db_url: str) -> None:
    with cloaca.WorkflowBuilder("fails"):

        @cloaca.task(retry_attempts=2, retry_delay_ms=0)
        def boom(context: Context) -> None:
            raise RuntimeError("kaput")

    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("fails")
    assert result.status == "Failed"
    assert result.error_message is not None and "kaput" in result.error_message
    assert result.task_results["boom"].attempts == 2
    assert result.task_results["boom"].error == "RuntimeError: kaput"


def test_start_wait_get_list_cancel(db_url: str) -> None:
    hello_workflow()
    with cloaca.WorkflowBuilder("blocked"):

        @cloaca.task(trigger_rules=cloaca.context_value("never", "exists"))
        def never(context: Context) -> None:
            pass

        @cloaca.task(retry_attempts=2, retry_delay_ms=3_600_000, retry_jitter=False)
        def parked(context: Context) -> None:
            raise RuntimeError("wait an hour")

    with cloaca.DefaultRunner(db_url) as runner:
        execution_id = runner.start("hello", {"who": "start"})
        assert isinstance(execution_id, str)
        done = runner.wait(execution_id, timeout=WAIT)
        assert done.status == "Completed"
        assert runner.get_execution(execution_id).final_context == done.final_context

        parked_id = runner.start("blocked")
        with pytest.raises(TimeoutError):
            runner.wait(parked_id, timeout=0.05)
        assert runner.get_execution(parked_id).status == "Running"
        assert runner.cancel_execution(parked_id) is True
        assert runner.wait(parked_id, timeout=WAIT).status == "Cancelled"
        assert runner.cancel_execution(execution_id) is False

        listed = runner.list_executions()
        assert [row["id"] for row in listed] == [parked_id, execution_id]
        assert listed[0]["status"] == "Cancelled"
        assert (
            runner.list_executions(workflow_name="hello", status="Completed", limit=1)[0]["id"]
            == execution_id
        )
        assert runner.list_executions(limit=1, offset=1)[0]["id"] == execution_id


def test_a_workflow_defined_after_the_runner_was_created_still_runs(db_url: str) -> None:
    with cloaca.DefaultRunner(db_url) as runner:
        hello_workflow("late")
        assert runner.execute("late").status == "Completed"


def test_a_second_runner_on_the_same_file_sees_the_history(db_url: str) -> None:
    hello_workflow()
    with cloaca.DefaultRunner(db_url) as first:
        first_id = first.execute("hello").execution_id
        with cloaca.DefaultRunner(db_url) as second:
            second_id = second.execute("hello", {"who": "two"}).execution_id
            assert [row["id"] for row in second.list_executions()] == [second_id, first_id]
            assert second.get_execution(first_id).status == "Completed"
    with cloaca.DefaultRunner(db_url) as reopened:
        assert {row["id"] for row in reopened.list_executions()} == {first_id, second_id}


_WORKER = textwrap.dedent(
    """
    import sys
    import cloaca

    with cloaca.WorkflowBuilder("remote"):
        @cloaca.task()
        def double(context):
            context.set("doubled", context.get("n") * 2)
            context.set("pid", __import__("os").getpid())

    config = cloaca.DefaultRunnerConfig(scheduler_poll_interval_ms=10)
    with cloaca.DefaultRunner(sys.argv[1], config):
        print("ready", flush=True)
        sys.stdin.readline()  # run until the test says stop
    """
)


def test_a_client_runner_starts_what_a_worker_runner_completes(db_url: str) -> None:
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, db_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "ready"
        config = cloaca.DefaultRunnerConfig(scheduler_poll_interval_ms=10)
        with cloaca.DefaultRunner(db_url, config) as client:  # nothing registered here
            with pytest.raises(ValueError, match="'elsewhere' not found"):
                client.start("elsewhere")
            result = client.wait(client.start("remote", {"n": 21}), timeout=WAIT)
    finally:
        _, err = worker.communicate("stop\n", timeout=WAIT)
    assert worker.returncode == 0, err
    assert result.status == "Completed"
    assert result.final_context["doubled"] == 42
    assert result.final_context["pid"] == worker.pid != os.getpid()


def test_bare_task_decorator_takes_the_defaults(harness) -> None:
    @cloaca.task
    def plain(context: Context) -> None:
        context.set("plain", True)

    cloaca.workflow("bare", [plain])
    assert harness.execute("bare").final_context.get("plain") is True
    with pytest.raises(ValueError, match="keyword arguments only"):
        cloaca.task("not-a-function")  # type: ignore[arg-type]


def test_version_depends_on_structure_only() -> None:
    @cloaca.task()
    def step(context: Context) -> None:
        pass

    a = cloaca.workflow("first_name", [step], description="one")
    b = cloaca.workflow("second_name", [step], description="two")
    assert a.version == b.version
