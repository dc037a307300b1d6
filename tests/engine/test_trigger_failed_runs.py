"""The failed-run policy of a trigger (``on_failed_run``): a context whose run failed is not
fired again on every poll. ``backoff`` waits longer after each consecutive failure up to a
cap, ``hold`` waits for a manual fire, ``refire`` fires at every poll; a success resets.
Driven through the fake clock on both backends."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerResult
from cloaca.testing import DEFAULT_START, FakeClock, Harness
from cloaca.triggers.registry import get_trigger, unregister_trigger

#: base 30 s, cap 120 s: failures wait 30, 60, 120, 120, ... seconds.
POLICY_CONFIG = {
    "trigger_failed_run_backoff_seconds": 30,
    "trigger_failed_run_backoff_max_seconds": 120,
}


@pytest.fixture
def outcomes() -> list[str]:
    """The ``flaky_wf`` workflow: each run pops the next outcome ("fail" or "ok"); once the
    list is empty every run fails."""
    planned: list[str] = []

    @cloaca.task(id="process", retry_attempts=1)
    def process(context: Context) -> None:
        if not planned or planned.pop(0) == "fail":
            raise RuntimeError(f"cannot process {context.get('filename')}")

    cloaca.workflow("flaky_wf", [process])
    return planned


@pytest.fixture
def h(new_harness: Callable[..., Harness]) -> Harness:
    return new_harness(config=DefaultRunnerConfig(**POLICY_CONFIG))


def _watcher(
    on_failed_run: str | None = None, allow_concurrent: bool = False, interval: str = "5s"
) -> Any:
    """A file watcher that keeps seeing the same file."""
    kwargs: dict[str, Any] = {} if on_failed_run is None else {"on_failed_run": on_failed_run}

    @cloaca.trigger(
        name="watcher", poll_interval=interval, allow_concurrent=allow_concurrent, **kwargs
    )
    def watcher() -> TriggerResult:
        return TriggerResult.fire({"filename": "bad.csv"})

    return watcher


def _seconds(stamp: str) -> float:
    return (datetime.fromisoformat(stamp.replace("Z", "+00:00")) - DEFAULT_START).total_seconds()


def _fire_times(h: Harness) -> list[float]:
    """Seconds after the start at which the watcher started an execution, oldest first."""
    evaluations = h.runner.get_trigger_evaluations("watcher", limit=10_000)
    return sorted(_seconds(e["evaluated_at"]) for e in evaluations if e["execution_ids"])


def _policy(h: Harness) -> str:
    schedule = h.runner.get_trigger_schedule("watcher")
    assert schedule is not None
    return str(schedule["on_failed_run"])


def _outcomes(h: Harness) -> list[str]:
    return [e["outcome"] for e in reversed(h.runner.get_trigger_evaluations("watcher", 10_000))]


def test_backoff_is_the_default_and_refires_at_growing_intervals_up_to_the_cap(
    h: Harness, outcomes: list[str]
) -> None:
    h.runner.register_trigger(_watcher(), "flaky_wf")
    assert _policy(h) == "backoff"
    h.advance(460)
    # Failures at 0, 30, 90, 210: waits of 30, 60, 120, then 120 (the cap), 120 again.
    assert _fire_times(h) == [0, 30, 90, 210, 330, 450]
    statuses = {e["status"] for e in h.runner.list_executions(limit=100)}
    assert statuses == {"Failed"}
    # Every poll in between is on the record, with why and until when.
    suppressed = [
        e for e in h.runner.get_trigger_evaluations("watcher", 10_000) if not e["execution_ids"]
    ]
    assert {e["outcome"] for e in suppressed} == {"backing_off"}
    assert len(suppressed) == 460 // 5 + 1 - 6


def test_a_backing_off_evaluation_names_the_failed_run_and_the_next_refire(
    h: Harness, outcomes: list[str]
) -> None:
    h.runner.register_trigger(_watcher(), "flaky_wf")
    h.advance(5)
    [failed] = h.runner.list_executions()
    newest = h.runner.get_trigger_evaluations("watcher", 1)[0]
    assert newest["outcome"] == "backing_off" and newest["execution_ids"] == []
    message = newest["message"]
    assert failed["id"] in message and "Failed" in message
    assert "next refire after 2026-01-01T00:00:30Z" in message
    assert "1 failed run in a row" in message
    assert "(backoff 30s, at most 2m)" in message


def test_hold_never_refires_until_a_manual_fire_and_a_success_releases_it(
    h: Harness, outcomes: list[str]
) -> None:
    h.runner.register_trigger(_watcher("hold"), "flaky_wf")
    h.advance(1000)
    assert _fire_times(h) == [0]
    held = h.runner.get_trigger_evaluations("watcher", 1)[0]
    assert held["outcome"] == "held"
    assert "held until a manual fire" in held["message"]
    # A manual fire runs it whatever the policy; it fails again, so the hold stays.
    assert h.runner.fire_trigger("watcher", {"filename": "bad.csv"}) is not None
    h.advance(1000)
    assert len(h.runner.list_executions()) == 2
    assert _outcomes(h)[-1] == "held"
    assert "2 failed runs in a row" in h.runner.get_trigger_evaluations("watcher", 1)[0]["message"]
    # The operator fixed the cause: the manual run completes, and polls fire again.
    outcomes.append("ok")
    h.runner.fire_trigger("watcher", {"filename": "bad.csv"})
    h.run_until_idle()
    h.advance(5)
    assert [e["status"] for e in h.runner.list_executions()][:2] == ["Failed", "Completed"]
    assert _outcomes(h)[-1] == "fired"


def test_refire_fires_the_failed_context_at_every_poll(h: Harness, outcomes: list[str]) -> None:
    h.runner.register_trigger(_watcher("refire"), "flaky_wf")
    h.advance(25)
    assert _fire_times(h) == [0, 5, 10, 15, 20, 25]
    assert set(_outcomes(h)) == {"fired"}


def test_a_success_resets_the_backoff(h: Harness, outcomes: list[str]) -> None:
    outcomes.extend(["fail", "fail", "ok", "fail"])
    h.runner.register_trigger(_watcher(), "flaky_wf")
    h.advance(130)
    # Fail at 0 and 30 (wait 30 then 60); the run at 90 completes, so the next poll fires
    # at once (95) and its failure waits the base 30 s again, not 120.
    assert _fire_times(h) == [0, 30, 90, 95, 125]


def test_a_cancelled_run_counts_as_failed(h: Harness, outcomes: list[str]) -> None:
    h.runner.register_trigger(_watcher(), "flaky_wf")
    h.poll_triggers()  # fires; the execution stays Pending (nothing runs it)
    [pending] = h.runner.list_executions()
    assert h.runner.cancel_execution(pending["id"])
    h.advance(25)
    assert _fire_times(h) == [0]
    newest = h.runner.get_trigger_evaluations("watcher", 1)[0]
    assert newest["outcome"] == "backing_off" and "ended Cancelled" in newest["message"]
    h.advance(5)
    assert _fire_times(h) == [0, 30]


def test_the_schedule_setting_overrides_the_trigger_and_is_kept_on_reregistering_by_name(
    h: Harness, outcomes: list[str]
) -> None:
    h.runner.register_trigger(_watcher("hold"), "flaky_wf", on_failed_run="refire")
    assert _policy(h) == "refire"
    # A process without the trigger's code re-registers it by name: the policy stays.
    unregister_trigger("watcher")
    h.runner.register_trigger("watcher", "flaky_wf", poll_interval="10s")
    [listed] = h.runner.list_trigger_schedules()
    assert listed["on_failed_run"] == "refire" and listed["poll_interval_ms"] == 10_000
    h.runner.register_trigger("watcher", "flaky_wf", on_failed_run="backoff")
    assert _policy(h) == "backoff"


def test_allow_concurrent_starts_one_refire_per_backoff_step(
    h: Harness, outcomes: list[str]
) -> None:
    h.runner.register_trigger(_watcher(allow_concurrent=True), "flaky_wf")
    h.advance(0)  # the first run fails at once
    h.clock.advance(30)
    h.poll_triggers()  # the refire starts; nothing runs it yet
    for _ in range(3):
        h.clock.advance(5)
        h.poll_triggers()
    assert len(h.runner.list_executions()) == 2
    newest = h.runner.get_trigger_evaluations("watcher", 1)[0]
    assert newest["outcome"] == "backing_off" and "is still running" in newest["message"]


@pytest.fixture
def shared(db_url: str) -> Iterator[tuple[Harness, Harness]]:
    """Two runners on one database, on one fake clock."""
    clock = FakeClock()
    config = DefaultRunnerConfig(**POLICY_CONFIG)
    first = Harness(db_url, config=config, clock=clock)
    second = Harness(db_url, config=config, clock=clock)
    yield first, second
    second.close()
    first.close()


@pytest.mark.parametrize("allow_concurrent", [False, True])
def test_two_runners_do_not_refire_a_backing_off_context_twice(
    shared: tuple[Harness, Harness], outcomes: list[str], allow_concurrent: bool
) -> None:
    first, second = shared
    first.runner.register_trigger(_watcher(allow_concurrent=allow_concurrent), "flaky_wf")
    for _ in range(0, 215, 5):
        # Both runners run everything due at each instant, one after the other.
        first.run_until_idle()
        second.run_until_idle()
        first.clock.advance(5)
    assert _fire_times(first) == [0, 30, 90, 210]
    assert len(first.runner.list_executions()) == 4


class ClassForm(cloaca.Trigger):
    name = "class_form"
    on_failed_run = "hold"

    def poll(self) -> bool:
        return True


class PropertyForm(cloaca.Trigger):
    name = "property_form"

    @property
    def on_failed_run(self) -> str:  # type: ignore[override]
        return "refire"

    def poll(self) -> bool:
        return True


def test_every_way_of_setting_the_policy_reaches_the_schedule(
    h: Harness, outcomes: list[str]
) -> None:
    class Plain(cloaca.Trigger):
        def poll(self) -> bool:
            return True

    instance = Plain(name="instance_attr")
    instance.on_failed_run = "hold"
    made = {
        "class_form": ClassForm(),
        "property_form": PropertyForm(),
        "init_form": Plain(name="init_form", on_failed_run="refire"),
        "instance_attr": instance,
    }
    for trigger in made.values():
        h.runner.register_trigger(trigger, "flaky_wf")

    @cloaca.trigger(name="decorated", on="flaky_wf", on_failed_run="hold")
    def decorated() -> bool:
        return False

    h.run_until_idle()
    got = {s["trigger_name"]: s["on_failed_run"] for s in h.runner.list_trigger_schedules()}
    assert got == {
        "class_form": "hold",
        "property_form": "refire",
        "init_form": "refire",
        "instance_attr": "hold",
        "decorated": "hold",
    }


@pytest.mark.parametrize("bad", ["never", "", "Backoff", 1])
def test_an_unknown_policy_is_refused_naming_it_and_the_schedule_is_unchanged(
    h: Harness, outcomes: list[str], bad: Any
) -> None:
    h.runner.register_trigger(_watcher("hold"), "flaky_wf")
    accepted = "on_failed_run must be one of 'refire', 'backoff', 'hold', got "
    with pytest.raises(ValueError, match=re.escape(accepted + repr(bad))):
        h.runner.register_trigger("watcher", "flaky_wf", on_failed_run=bad)
    assert _policy(h) == "hold"


@pytest.mark.parametrize(
    "define",
    ["class", "init", "decorator"],
)
def test_an_unknown_policy_on_the_trigger_is_a_value_error_at_registration(
    define: str,
) -> None:
    with pytest.raises(ValueError, match=r"on_failed_run.*'refire', 'backoff', 'hold'.*'later'"):
        if define == "class":

            class Bad(cloaca.Trigger):
                name = "bad"
                on_failed_run = "later"

                def poll(self) -> bool:
                    return True

            cloaca.register_trigger(Bad())
        elif define == "init":

            class Fine(cloaca.Trigger):
                def poll(self) -> bool:
                    return True

            cloaca.register_trigger(Fine(name="bad", on_failed_run="later"))
        else:

            @cloaca.trigger(name="bad", on_failed_run="later")
            def bad() -> bool:
                return True

    assert get_trigger("bad") is None


def test_fire_many_holds_back_only_the_failed_context(h: Harness) -> None:
    @cloaca.task(id="process", retry_attempts=1)
    def process(context: Context) -> None:
        if context.get("filename") == "bad.csv":
            raise RuntimeError("cannot process bad.csv")

    cloaca.workflow("per_file", [process])

    @cloaca.trigger(name="watcher", poll_interval="5s")
    def watcher() -> TriggerResult:
        return TriggerResult.fire_many([{"filename": "bad.csv"}, {"filename": "good.csv"}])

    h.runner.register_trigger(watcher, "per_file")
    h.advance(5)
    newest, first = h.runner.get_trigger_evaluations("watcher", 2)
    assert len(first["execution_ids"]) == 2
    assert newest["outcome"] == "fired" and len(newest["execution_ids"]) == 1
    assert newest["message"].startswith("1 of 2 contexts not fired: previous run of this")
    [again] = newest["execution_ids"]
    assert h.runner.get_execution(again).status == "Completed"  # good.csv ran again
