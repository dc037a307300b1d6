"""Declared inputs (SPEC 4.5): ``@workflow_params`` enforced wherever an execution is
created — ``start``/``execute``, trigger fires (scheduled and manual), cron registration and
cron fires — with defaults filled in and every problem listed in one ``ValueError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import cloaca
from cloaca import Context, TriggerResult
from cloaca.engine.shape import Shape
from cloaca.errors import ParamsError
from cloaca.testing import Harness


def _ingest(decorators_first: bool = True) -> cloaca.Workflow:
    """``ingest``: requires ``source`` (str), ``limit`` (int) defaults to 10; one secret."""

    def body(context: Context) -> None:
        context.set("seen", {"source": context["source"], "limit": context["limit"]})

    if decorators_first:
        fn = cloaca.workflow_params(source=str, limit=(int, 10))(body)
        fn = cloaca.workflow_secrets("API_TOKEN")(fn)
        cloaca.task(id="load")(fn)
    else:  # @task innermost, @workflow_params above it
        fn = cloaca.task(id="load")(body)
        cloaca.workflow_secrets("API_TOKEN")(
            cloaca.workflow_params(source=str, limit=(int, 10))(fn)
        )

    @cloaca.task(id="after", dependencies=["load"])
    def after(context: Context) -> None:
        return None

    return cloaca.workflow("ingest", ["load", after])


# -- declaring ----------------------------------------------------------------------------------


@pytest.mark.parametrize("decorators_first", [True, False], ids=["below-task", "above-task"])
def test_declared_params_are_readable_whatever_the_decorator_order(
    decorators_first: bool,
) -> None:
    wf = _ingest(decorators_first)
    assert wf.declared_params == {
        "source": {"type": "str"},
        "limit": {"type": "int", "default": 10},
    }
    assert wf.declared_secrets == ("API_TOKEN",)
    # Recorded with the definition: a process that only has the record enforces them too.
    shape = Shape.from_definition(wf.definition())
    assert shape.params == wf.declared_params and shape.secrets == ("API_TOKEN",)


def test_declaring_params_changes_the_workflow_version() -> None:
    @cloaca.task(id="plain")
    def plain(context: Context) -> None:
        return None

    before = cloaca.workflow("versioned", [plain]).version
    cloaca.workflow_params(n=int)(plain)
    assert cloaca.workflow("versioned", [plain]).version != before


@pytest.mark.parametrize(
    ("declared", "match"),
    [
        ({"n": set}, "type .* is not accepted; accepted: str, int, float, bool, list, dict"),
        ({"n": (int, "ten")}, "default 'ten' is not a int"),
        ({"n": (int, 1, 2)}, "expected a type or \\(type, default\\)"),
    ],
)
def test_bad_declarations_are_refused_naming_the_param(
    declared: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        cloaca.workflow_params(**declared)


def test_two_tasks_declaring_one_param_differently_is_an_error() -> None:
    @cloaca.workflow_params(n=int)
    @cloaca.task(id="a")
    def a(context: Context) -> None:
        return None

    @cloaca.workflow_params(n=str)
    @cloaca.task(id="b")
    def b(context: Context) -> None:
        return None

    with pytest.raises(ValueError, match="param 'n' is declared as"):
        cloaca.workflow("conflict", [a, b])


# -- binding (pure) -----------------------------------------------------------------------------


def test_bind_params_fills_defaults_and_lists_every_problem() -> None:
    wf = _ingest()
    bound = wf.bind_params({"source": "s3://bucket", "extra": [1]})
    assert bound.to_dict() == {"source": "s3://bucket", "limit": 10, "extra": [1]}
    with pytest.raises(ParamsError) as raised:
        wf.bind_params(Context({"limit": "many", "API_TOKEN": "xyz"}))
    problems = raised.value.problems
    assert len(problems) == 3
    assert "missing required input 'source' (str)" in problems[0]
    assert "input 'limit' must be an int, got str" in problems[1]
    assert "secret 'API_TOKEN' must not be passed in the context" in problems[2]
    assert isinstance(raised.value, ValueError) and "ingest" in str(raised.value)


@pytest.mark.parametrize(
    ("type_", "good", "bad"),
    [
        (str, "x", 1),
        (int, 3, True),
        (int, 3, 3.5),
        (float, 3, "3"),
        (float, 2.5, False),
        (bool, False, 0),
        (list, [1], {"a": 1}),
        (dict, {"a": 1}, [1]),
    ],
)
def test_types_are_checked_as_json_values(type_: type, good: Any, bad: Any) -> None:
    @cloaca.workflow_params(v=type_)
    @cloaca.task(id="typed")
    def typed(context: Context) -> None:
        return None

    wf = cloaca.workflow("typed_wf", [typed])
    assert wf.bind_params({"v": good})["v"] == good
    with pytest.raises(ValueError, match="input 'v' must be a"):
        wf.bind_params({"v": bad})


# -- every entry --------------------------------------------------------------------------------


def test_execute_and_start_enforce_inputs_and_fill_defaults(db_url: str) -> None:
    _ingest()
    with cloaca.DefaultRunner(db_url) as runner:
        result = runner.execute("ingest", {"source": "db"})
        assert result.status == "Completed"
        assert result.final_context["seen"] == {"source": "db", "limit": 10}
        with pytest.raises(ValueError, match="missing required input 'source'"):
            runner.execute("ingest", Context({"limit": 5}))
        with pytest.raises(ValueError, match="input 'limit' must be an int"):
            runner.start("ingest", {"source": "db", "limit": "5"})
        assert len(runner.list_executions()) == 1  # nothing was created for the bad ones


def _fire_with(context: dict[str, Any]) -> Callable[[], TriggerResult]:
    @cloaca.trigger(name="feed", poll_interval="1s")
    def feed() -> TriggerResult:
        return TriggerResult.fire(context)

    return feed


def test_a_trigger_fire_with_bad_inputs_is_an_error_evaluation(harness: Harness) -> None:
    _ingest()
    harness.runner.register_trigger(_fire_with({"limit": 3}), "ingest")
    harness.advance(1)
    assert harness.runner.list_executions() == []
    newest = harness.runner.get_trigger_evaluations("feed")[0]
    assert newest["outcome"] == "error"
    assert "missing required input 'source'" in newest["message"]


def test_a_trigger_fire_with_good_inputs_gets_the_defaults(harness: Harness) -> None:
    _ingest()
    harness.runner.register_trigger(_fire_with({"source": "feed"}), "ingest")
    harness.advance(1)
    execution = harness.runner.list_executions()[0]
    result = harness.runner.get_execution(execution["id"])
    assert result.final_context["seen"] == {"source": "feed", "limit": 10}
    assert result.final_context["trigger_name"] == "feed"


def test_a_manual_fire_with_bad_inputs_raises_and_is_on_record(harness: Harness) -> None:
    _ingest()
    harness.runner.register_trigger(_fire_with({"source": "feed"}), "ingest")
    harness.runner.set_trigger_enabled("feed", False)
    with pytest.raises(ValueError, match="input 'limit' must be an int"):
        harness.runner.fire_trigger("feed", {"source": "x", "limit": "no"})
    newest = harness.runner.get_trigger_evaluations("feed")[0]
    assert newest["outcome"] == "error" and "manual fire" in newest["message"]
    assert harness.runner.list_executions() == []


def test_cron_registration_refuses_params_its_fires_could_not_start_with(
    harness: Harness,
) -> None:
    _ingest()
    with pytest.raises(ValueError, match="missing required input 'source'"):
        harness.runner.register_workflow_instance("ingest", "nightly", "0 * * * *", "UTC", {})
    with pytest.raises(ValueError, match="missing required input 'source'"):
        harness.runner.register_cron_workflow("ingest", "0 * * * *")
    assert harness.runner.list_cron_schedules() == []


def test_cron_fires_bind_declared_inputs(harness: Harness) -> None:
    _ingest()
    sid = harness.runner.register_workflow_instance(
        "ingest", "nightly", "0 * * * *", "UTC", {"source": "cron"}
    )
    harness.advance(3600)
    (row,) = harness.runner.get_cron_execution_history(sid)
    result = harness.runner.get_execution(row["workflow_execution_id"])
    assert result.final_context["seen"] == {"source": "cron", "limit": 10}


def test_a_cron_slot_whose_inputs_no_longer_fit_starts_nothing_and_is_recorded(
    harness: Harness,
) -> None:
    @cloaca.task(id="load")
    def load(context: Context) -> None:
        return None

    cloaca.workflow("ingest", [load])
    sid = harness.runner.register_cron_workflow("ingest", "0 * * * *")
    _ingest()  # the workflow now requires ``source``, which the schedule does not give
    harness.advance(3600)
    assert harness.runner.list_executions() == []
    (row,) = harness.runner.get_cron_execution_history(sid)
    assert row["workflow_execution_id"] is None  # claimed, not started: on the record
