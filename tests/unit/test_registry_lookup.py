"""How ``add_task("id")`` finds a task, and URLs masked in messages."""

from __future__ import annotations

import pytest

import cloaca
from cloaca import Context
from cloaca.store.drivers.urls import masked_url
from cloaca.workflows.params import bind_params


def _define_in_builder(workflow_name: str, task_id: str, marker: str) -> None:
    with cloaca.WorkflowBuilder(workflow_name):

        @cloaca.task(id=task_id)
        def body(context: Context) -> None:
            context.set("by", marker)


def test_a_builder_prefers_the_task_defined_for_its_own_workflow() -> None:
    _define_in_builder("wf_a", "step", "a")
    _define_in_builder("wf_b", "step", "b")
    built = cloaca.WorkflowBuilder("wf_b").add_task("step").build()
    ctx = Context()
    built.tasks["step"].fn(ctx)
    assert ctx["by"] == "b"


def test_an_id_defined_in_several_other_builders_is_ambiguous() -> None:
    _define_in_builder("wf_a", "step", "a")
    _define_in_builder("wf_b", "step", "b")
    with pytest.raises(ValueError, match="not found in registry"):
        cloaca.WorkflowBuilder("wf_c").add_task("step")


def test_an_id_defined_in_one_builder_is_found_from_any_builder() -> None:
    _define_in_builder("wf_a", "only_step", "a")
    assert "only_step" in cloaca.WorkflowBuilder("wf_x").add_task("only_step").build().tasks


def test_nothing_declared_binds_the_input_as_it_is() -> None:
    data = {"a": 1}
    assert bind_params("wf", {}, (), data) is data
    assert bind_params("wf", {}, (), None) is None
    with pytest.raises(TypeError, match="context must be a Context, a dict or None"):
        bind_params("wf", {}, (), ["not", "a", "dict"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        ("postgres://u:p%40ss@h:5432/db?x=1", "postgres://u:***@h:5432/db?x=1"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        ("sqlite://app.db", "sqlite://app.db"),
    ],
)
def test_masked_url_hides_only_the_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown
