"""Transient database errors while a cron slot or a trigger fire is recorded: the whole
transaction is retried, so the slot fires at its instant and the poll's fire is kept."""

from __future__ import annotations

from typing import Any

import pytest

import cloaca
from cloaca import Context, TriggerResult
from cloaca.store.db import TransientStoreError
from cloaca.testing import Harness


def _fail_first(
    monkeypatch: pytest.MonkeyPatch, target: object, method: str, times: int
) -> list[str]:
    """Make ``target.method`` raise a TransientStoreError on its first ``times`` calls (as a
    dropped connection would, in the middle of the transaction); returns the failures."""
    real = getattr(target, method)
    failures: list[str] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if len(failures) < times:
            failures.append(method)
            raise TransientStoreError(f"injected: connection lost in {method}")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, method, flaky)
    return failures


def test_a_cron_slot_fires_at_its_instant_through_transient_errors(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[str] = []

    @cloaca.task(id="tick")
    def tick(context: Context) -> None:
        ran.append(context.get("scheduled_time"))

    cloaca.workflow("ticking", [tick])
    # Two failures: without retrying the whole transaction, the batch and then the
    # schedule's own transaction would fail, and the slot be claimed without an execution.
    failures = _fail_first(monkeypatch, harness.runner._store.cron, "claim_slots", times=2)
    schedule_id = harness.runner.register_cron_workflow("ticking", "* * * * *")
    harness.advance(60)
    assert len(failures) == 2
    assert ran == ["2026-01-01T00:01:00Z"]
    history = harness.runner.get_cron_execution_history(schedule_id)
    assert [r["scheduled_time"] for r in history] == ["2026-01-01T00:01:00Z"]
    assert [r["status"] for r in history] == ["Completed"]


def test_a_trigger_fire_is_kept_through_transient_errors(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[int] = []

    @cloaca.task(id="work")
    def work(context: Context) -> None:
        context.set("done", True)

    cloaca.workflow("triggered", [work])

    @cloaca.trigger(name="once", poll_interval="1s")
    def once() -> TriggerResult:
        polls.append(1)
        return TriggerResult.fire({"n": 1}) if len(polls) == 1 else TriggerResult.skip()

    failures = _fail_first(monkeypatch, harness.runner._store.triggers, "insert_execution", 2)
    harness.runner.register_trigger("once", "triggered")
    harness.advance(1)
    assert len(failures) == 2
    executions = harness.runner.list_executions(workflow_name="triggered")
    assert len(executions) == 1  # the first poll's fire was recorded, once
    assert executions[0]["status"] == "Completed"
    [evaluation] = [
        e for e in harness.runner.get_trigger_evaluations("once") if e["outcome"] == "fired"
    ]
    assert evaluation["execution_ids"] == [executions[0]["id"]]
