"""Deduplication (SPEC 6.3): one active fire per (trigger, context hash) unless
``allow_concurrent``, enforced by the database, released when the execution ends, and the
same rules for manual fires."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cloaca
from cloaca import Context, TriggerResult
from cloaca.testing import Harness
from cloaca.triggers.definition import context_hash


@pytest.fixture
def held_wf() -> None:
    """A workflow whose executions stay active until the test lets the task run."""

    @cloaca.task(id="work")
    def work(context: Context) -> None:
        return None

    cloaca.workflow("held_wf", [work])


def _tick_triggers(h: Harness) -> None:
    """Run only the trigger part once: polls fire, executions stay Pending (not run)."""
    h.poll_triggers()


def _same_file(allow_concurrent: bool) -> Any:
    @cloaca.trigger(name="same_file", poll_interval="1s", allow_concurrent=allow_concurrent)
    def same_file() -> TriggerResult:
        return TriggerResult.fire({"filename": "data.csv"})

    return same_file


def test_an_identical_fire_is_skipped_while_the_first_execution_is_active(
    harness: Harness, held_wf: None
) -> None:
    harness.runner.register_trigger(_same_file(False), "held_wf")
    _tick_triggers(harness)
    harness.clock.advance(1)
    _tick_triggers(harness)
    [first] = harness.runner.list_executions()
    newest, oldest = harness.runner.get_trigger_evaluations("same_file")
    assert oldest["outcome"] == "fired" and oldest["execution_ids"] == [first["id"]]
    assert newest["outcome"] == "deduplicated"
    assert newest["execution_ids"] == []
    assert first["id"] in newest["message"]  # names the holder
    [fire] = harness.runner.get_trigger_execution_history("same_file")
    assert fire["context_hash"] == context_hash({"filename": "data.csv"})
    assert fire["completed_at"] is None


def test_the_hold_is_released_when_the_execution_ends_so_the_next_fire_runs(
    harness: Harness, held_wf: None
) -> None:
    harness.runner.register_trigger(_same_file(False), "held_wf")
    harness.advance(0)  # fire and run to completion
    harness.advance(1)  # the file is "still there": a new execution
    executions = harness.runner.list_executions()
    assert [e["status"] for e in executions] == ["Completed", "Completed"]
    history = harness.runner.get_trigger_execution_history("same_file")
    assert len(history) == 2
    assert all(h["completed_at"] is not None for h in history)
    first = history[1]
    execution = harness.runner.get_execution(first["workflow_execution_id"])
    # Released in the transaction that ended the execution: same instant.
    assert first["completed_at"] == execution.end_time


@pytest.mark.parametrize("end", ["fail", "cancel"])
def test_failed_and_cancelled_executions_release_the_hold_too(harness: Harness, end: str) -> None:
    @cloaca.task(id="maybe_fail", retry_attempts=1)
    def maybe_fail(context: Context) -> None:
        raise RuntimeError("bad file")

    cloaca.workflow("fragile_wf", [maybe_fail])
    # "refire": no failed-run backoff, so the next poll shows the hold itself is gone.
    harness.runner.register_trigger(_same_file(False), "fragile_wf", on_failed_run="refire")
    if end == "fail":
        harness.advance(0)
    else:
        _tick_triggers(harness)
        [execution] = harness.runner.list_executions()
        assert harness.runner.cancel_execution(execution["id"])
    harness.clock.advance(1)
    _tick_triggers(harness)
    assert [e["outcome"] for e in harness.runner.get_trigger_evaluations("same_file")] == [
        "fired",
        "fired",
    ]


def test_allow_concurrent_fires_identical_contexts_side_by_side(
    harness: Harness, held_wf: None
) -> None:
    harness.runner.register_trigger(_same_file(True), "held_wf")
    for _ in range(3):
        _tick_triggers(harness)
        harness.clock.advance(1)
    assert [e["status"] for e in harness.runner.list_executions()] == ["Pending"] * 3
    outcomes = [e["outcome"] for e in harness.runner.get_trigger_evaluations("same_file")]
    assert outcomes == ["fired"] * 3


def test_the_schedule_override_of_allow_concurrent_wins(harness: Harness, held_wf: None) -> None:
    harness.runner.register_trigger(_same_file(False), "held_wf", allow_concurrent=True)
    for _ in range(2):
        _tick_triggers(harness)
        harness.clock.advance(1)
    assert len(harness.runner.list_executions()) == 2


def test_fires_without_context_share_the_no_context_hash(harness: Harness, held_wf: None) -> None:
    @cloaca.trigger(name="bare", poll_interval="1s")
    def bare() -> bool:
        return True

    harness.runner.register_trigger(bare, "held_wf")
    _tick_triggers(harness)
    harness.clock.advance(1)
    _tick_triggers(harness)
    assert [e["outcome"] for e in harness.runner.get_trigger_evaluations("bare")] == [
        "deduplicated",
        "fired",
    ]
    [fire] = harness.runner.get_trigger_execution_history("bare")
    assert fire["context_hash"] == "fire_no_context"


def test_different_contexts_are_not_deduplicated(harness: Harness, held_wf: None) -> None:
    names = iter(["a.csv", "b.csv", "a.csv"])

    @cloaca.trigger(name="files", poll_interval="1s")
    def files() -> TriggerResult:
        return TriggerResult.fire({"filename": next(names)})

    harness.runner.register_trigger(files, "held_wf")
    for _ in range(3):
        _tick_triggers(harness)
        harness.clock.advance(1)
    assert [e["outcome"] for e in harness.runner.get_trigger_evaluations("files")] == [
        "deduplicated",
        "fired",
        "fired",
    ]


def test_a_manual_fire_goes_through_dedup_and_returns_none_when_deduplicated(
    harness: Harness, held_wf: None
) -> None:
    harness.runner.register_trigger(_same_file(False), "held_wf")
    first = harness.runner.fire_trigger("same_file", {"filename": "manual.csv"})
    again = harness.runner.fire_trigger("same_file", Context({"filename": "manual.csv"}))
    other = harness.runner.fire_trigger("same_file", {"filename": "other.csv"})
    assert isinstance(first, str) and isinstance(other, str)
    assert again is None
    newest = harness.runner.get_trigger_evaluations("same_file")[1]
    assert newest["outcome"] == "deduplicated"
    assert newest["message"].startswith("manual fire") and first in newest["message"]
    assert newest["scheduled_at"] is None
    assert harness.runner.get_execution(first).status == "Pending"
    harness.run_until_idle()
    assert harness.runner.get_execution(first).status == "Completed"
    ctx = harness.runner.get_execution(first).final_context
    assert ctx.get("trigger_name") == "same_file" and ctx.get("filename") == "manual.csv"


def test_a_manual_fire_and_a_poll_share_the_dedup_hold(harness: Harness, held_wf: None) -> None:
    harness.runner.register_trigger(_same_file(False), "held_wf")
    holder = harness.runner.fire_trigger("same_file", {"filename": "data.csv"})
    _tick_triggers(harness)
    [evaluation] = [
        e for e in harness.runner.get_trigger_evaluations("same_file") if e["scheduled_at"]
    ]
    assert evaluation["outcome"] == "deduplicated"
    assert holder is not None and holder in evaluation["message"]


_CONTEXTS = st.sampled_from([None, {}, {"f": "a"}, {"f": "b"}, {"f": "a", "n": 1}])
_OPS = st.lists(st.tuples(st.sampled_from(["fire", "end"]), _CONTEXTS), min_size=1, max_size=25)


@settings(
    max_examples=40,
    deadline=None,
    # new_harness gives every example a fresh database, so sharing the fixture is safe.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=_OPS)
def test_dedup_matches_a_model_of_active_holds(
    ops: list[tuple[str, Any]], new_harness: Callable[..., Harness]
) -> None:
    """Whatever the order of fires and execution ends, a fire is refused exactly when an
    execution with the same context hash is still active."""

    @cloaca.task(id="model_task")
    def model_task(context: Context) -> None:
        return None

    cloaca.workflow("model_wf", [model_task])

    @cloaca.trigger(name="model", poll_interval="1h")
    def model() -> bool:
        return False

    active: dict[str, str] = {}
    with new_harness() as h:
        h.runner.register_trigger(model, "model_wf")
        for op, ctx in ops:
            key = context_hash(ctx)
            if op == "fire":
                got = h.runner.fire_trigger("model", ctx)
                if key in active:
                    assert got is None
                else:
                    assert got is not None
                    active[key] = got
            elif key in active:
                assert h.runner.cancel_execution(active.pop(key))


def test_fires_and_dedups_are_logged_by_the_fire_logger(
    harness: Harness, held_wf: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Fires and deduplicated fires are logged at INFO by ``cloaca.engine.triggers.fire``,
    the logger an application enables to watch its triggers (the seed example does)."""
    harness.runner.register_trigger(_same_file(False), "held_wf")
    with caplog.at_level(logging.INFO, logger="cloaca.engine.triggers.fire"):
        _tick_triggers(harness)
        harness.clock.advance(1)
        _tick_triggers(harness)
    [first] = harness.runner.list_executions()
    lines = [r.getMessage() for r in caplog.records if r.name == "cloaca.engine.triggers.fire"]
    assert f"trigger 'same_file' fired {first['id']}" in lines
    assert f"trigger 'same_file' deduplicated: still active {first['id']}" in lines
