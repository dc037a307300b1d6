"""Bad input and faults (issue #3): polls that raise, return junk, return non-JSON contexts
or hang; error backoff and auto-pause; invalid registrations and management calls."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig, TriggerError, TriggerResult
from cloaca.clock import from_db_time
from cloaca.engine.triggers.fire import backoff_delay
from cloaca.testing import Harness
from waiting import wait_for


@pytest.fixture(autouse=True)
def wf() -> None:
    @cloaca.task(id="noop")
    def noop(context: Context) -> None:
        return None

    cloaca.workflow("wf", [noop])


def _schedule(h: Harness, poll: Callable[[], Any], name: str = "faulty", **kw: Any) -> None:
    cloaca.trigger(name=name, poll_interval=kw.pop("poll_interval", "1s"))(poll)
    h.runner.register_trigger(name, "wf", **kw)


def _evaluations(h: Harness, name: str = "faulty") -> list[dict[str, Any]]:
    return list(reversed(h.runner.get_trigger_evaluations(name, limit=1000)))


# -- what a poll can do wrong -----------------------------------------------------------------


class _Junk:
    def __repr__(self) -> str:
        return "<junk>"


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (None, "returned None"),
        ({"file": "a.csv"}, "returned dict"),
        (42, "returned int"),
        ("fire", "returned str"),
        (_Junk(), "returned _Junk"),
    ],
)
def test_a_poll_returning_something_else_is_an_error_naming_it(
    harness: Harness, returned: Any, expected: str
) -> None:
    _schedule(harness, lambda: returned)
    harness.advance(0)
    [evaluation] = _evaluations(harness)
    assert evaluation["outcome"] == "error"
    assert expected in evaluation["message"]
    assert "TriggerResult" in evaluation["message"]  # says what is accepted
    assert harness.runner.list_executions() == []


def test_a_sync_poll_returning_a_coroutine_is_an_error_and_the_coroutine_is_closed(
    harness: Harness,
) -> None:
    async def later() -> bool:
        return True

    _schedule(harness, lambda: later())
    harness.advance(0)  # filterwarnings=error would fail on "never awaited"
    [evaluation] = _evaluations(harness)
    assert evaluation["outcome"] == "error" and "coroutine" in evaluation["message"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TriggerError("inbox unreachable"), "inbox unreachable"),
        (RuntimeError("boom"), "RuntimeError: boom"),
        (KeyError("k"), "KeyError: 'k'"),
    ],
)
def test_a_poll_that_raises_is_recorded_logged_and_polling_continues(
    harness: Harness, exc: Exception, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def poll() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise exc
        return False

    _schedule(harness, poll)
    with caplog.at_level(logging.WARNING):
        harness.advance(5)
    evaluations = _evaluations(harness)
    assert evaluations[0]["outcome"] == "error"
    assert evaluations[0]["message"] == expected
    assert {e["outcome"] for e in evaluations[1:]} == {"skipped"}
    assert len(evaluations) >= 4
    assert any("faulty" in r.getMessage() and expected in r.getMessage() for r in caplog.records)


def test_a_poll_building_a_context_that_is_not_json_is_an_error_naming_the_key(
    harness: Harness,
) -> None:
    _schedule(harness, lambda: TriggerResult.fire({"when": object()}))
    harness.advance(0)
    [evaluation] = _evaluations(harness)
    assert evaluation["outcome"] == "error"
    assert "TypeError" in evaluation["message"] and "'when'" in evaluation["message"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_numbers_are_not_json_either(harness: Harness, bad: float) -> None:
    _schedule(harness, lambda: TriggerResult.fire({"depth": bad}))
    harness.advance(0)
    [evaluation] = _evaluations(harness)
    assert evaluation["outcome"] == "error" and "'depth'" in evaluation["message"]


def test_an_async_poll_hanging_past_the_timeout_times_out(
    caplog: pytest.LogCaptureFixture,
    new_harness: Callable[..., Harness],
) -> None:
    class Hangs(cloaca.Trigger):
        name = "hangs"
        poll_interval = "1s"

        async def poll(self) -> bool:
            await asyncio.sleep(30)
            return True

    config = DefaultRunnerConfig(trigger_poll_timeout=0.05)
    with new_harness(config=config) as h:
        h.runner.register_trigger(Hangs(), "wf")
        with caplog.at_level(logging.WARNING):
            h.advance(0)
        [evaluation] = _evaluations(h, "hangs")
        assert evaluation["outcome"] == "timeout"
        assert "trigger_poll_timeout=0.05s" in evaluation["message"]
        assert h.runner.list_executions() == []
        schedule = h.runner.get_trigger_schedule("hangs")
        assert schedule is not None and schedule["consecutive_errors"] == 1
    assert any("timed out" in r.getMessage() for r in caplog.records)


def test_an_async_poll_raising_its_own_timeout_error_is_an_error_not_a_timeout(
    harness: Harness,
) -> None:
    class OwnTimeout(cloaca.Trigger):
        name = "own_timeout"
        poll_interval = "1s"

        async def poll(self) -> bool:
            raise TimeoutError("upstream API timed out")

    harness.runner.register_trigger(OwnTimeout(), "wf")
    harness.advance(0)
    [evaluation] = _evaluations(harness, "own_timeout")
    assert evaluation["outcome"] == "error"
    assert evaluation["message"] == "TimeoutError: upstream API timed out"


def test_a_sync_poll_hanging_past_the_timeout_times_out_and_its_late_fire_is_dropped(
    db_url: str,
) -> None:
    release = threading.Event()
    polls: list[float] = []

    class Stuck(cloaca.Trigger):
        name = "stuck"
        poll_interval = 0.05

        def poll(self) -> TriggerResult:
            polls.append(time.monotonic())
            if len(polls) == 1:
                release.wait(20)
            return TriggerResult.fire({"n": len(polls)}) if len(polls) == 1 else False

    config = DefaultRunnerConfig(trigger_poll_timeout=0.2, trigger_base_poll_interval=0.05)
    with cloaca.DefaultRunner(db_url, config) as runner:
        runner.register_trigger(Stuck(), "wf")
        wait_for(lambda: bool(runner.get_trigger_evaluations("stuck")))
        [evaluation] = runner.get_trigger_evaluations("stuck")
        assert evaluation["outcome"] == "timeout"
        time.sleep(0.3)
        assert len(polls) == 1  # not polled again while the stuck poll holds its thread
        release.set()
        wait_for(lambda: len(runner.get_trigger_evaluations("stuck")) >= 3)
        assert runner.list_executions() == []  # the late fire was discarded
        outcomes = [e["outcome"] for e in reversed(runner.get_trigger_evaluations("stuck"))]
        assert outcomes[0] == "timeout" and set(outcomes[1:]) == {"skipped"}


def test_a_slow_poll_delays_no_other_trigger(db_url: str) -> None:
    release = threading.Event()
    fast_polls: list[float] = []

    @cloaca.trigger(name="slow", poll_interval=0.05)
    def slow() -> bool:
        release.wait(20)
        return False

    @cloaca.trigger(name="fast", poll_interval=0.05)
    def fast() -> bool:
        fast_polls.append(time.monotonic())
        return False

    config = DefaultRunnerConfig(trigger_base_poll_interval=0.05, trigger_poll_timeout=30)
    with cloaca.DefaultRunner(db_url, config) as runner:
        runner.register_trigger("slow", "wf")
        runner.register_trigger("fast", "wf")
        try:
            wait_for(lambda: len(fast_polls) >= 6)
        finally:
            release.set()
        schedule = runner.get_trigger_schedule("slow")
        assert schedule is not None and schedule["consecutive_errors"] == 0


def test_more_hanging_polls_than_poll_threads_starve_no_other_trigger(db_url: str) -> None:
    from cloaca.engine.drive import POLL_THREADS

    release = threading.Event()
    fast_polls: list[float] = []
    hanging = POLL_THREADS + 2

    for i in range(hanging):

        @cloaca.trigger(name=f"hangs_{i}", poll_interval=0.05)
        def hangs() -> bool:
            release.wait(20)
            return False

    @cloaca.trigger(name="fast", poll_interval=0.05)
    def fast() -> bool:
        fast_polls.append(time.monotonic())
        return False

    config = DefaultRunnerConfig(trigger_base_poll_interval=0.05, trigger_poll_timeout=0.2)
    with cloaca.DefaultRunner(db_url, config) as runner:
        for i in range(hanging):
            runner.register_trigger(f"hangs_{i}", "wf")
        try:
            wait_for(lambda: len(runner.get_trigger_evaluations(f"hangs_{hanging - 1}", 10)) > 0)
            polls_before = len(fast_polls)
            runner.register_trigger("fast", "wf")  # every original poll thread is stuck now
            wait_for(lambda: len(fast_polls) >= polls_before + 6)
        finally:
            release.set()
        outcomes = {e["outcome"] for e in runner.get_trigger_evaluations("hangs_0", 10)}
        assert outcomes == {"timeout"}


# -- backoff and pause --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("errors", "factor"),
    [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (6, 10), (50, 10)],
)
def test_backoff_doubles_and_is_capped_at_ten_intervals(errors: int, factor: int) -> None:
    assert backoff_delay(timedelta(seconds=3), errors) == timedelta(seconds=3 * factor)


def test_backoff_needs_at_least_one_error() -> None:
    with pytest.raises(ValueError, match="consecutive_errors"):
        backoff_delay(timedelta(seconds=1), 0)


def test_consecutive_errors_back_off_exponentially(new_harness: Callable[..., Harness]) -> None:
    def always_fails() -> bool:
        raise TriggerError("down")

    config = DefaultRunnerConfig(trigger_max_consecutive_errors=100)
    with new_harness(config=config) as h:
        _schedule(h, always_fails, poll_interval="2s")
        h.advance(120)
        times = [from_db_time(e["evaluated_at"].replace("Z", "+00:00")) for e in _evaluations(h)]
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]
    assert gaps[:7] == [2, 4, 8, 16, 20, 20, 20]


def test_after_max_errors_the_schedule_is_paused_with_the_reason_and_can_be_resumed(
    caplog: pytest.LogCaptureFixture,
    new_harness: Callable[..., Harness],
) -> None:
    failing = [True]

    def flaky() -> bool:
        if failing[0]:
            raise TriggerError("credentials expired")
        return False

    config = DefaultRunnerConfig(trigger_max_consecutive_errors=3)
    with new_harness(config=config) as h:
        _schedule(h, flaky)
        with caplog.at_level(logging.ERROR):
            h.advance(600)
        assert [e["outcome"] for e in _evaluations(h)] == ["error"] * 3
        schedule = h.runner.get_trigger_schedule("faulty")
        assert schedule is not None
        assert schedule["enabled"] is False
        assert schedule["consecutive_errors"] == 3
        assert "3 consecutive poll errors" in schedule["paused_reason"]
        assert "credentials expired" in schedule["paused_reason"]
        assert h.runner.list_trigger_schedules(enabled_only=True) == []
        assert any("paused" in r.getMessage() for r in caplog.records)
        failing[0] = False
        h.runner.set_trigger_enabled("faulty", True)
        h.advance(0)
        schedule = h.runner.get_trigger_schedule("faulty")
        assert schedule is not None
        assert schedule["enabled"] is True and schedule["paused_reason"] is None
        assert schedule["consecutive_errors"] == 0
        assert _evaluations(h)[-1]["outcome"] == "skipped"


def test_a_success_resets_the_error_count(new_harness: Callable[..., Harness]) -> None:
    script = [RuntimeError("a"), RuntimeError("b"), False, RuntimeError("c"), RuntimeError("d")]

    def poll() -> bool:
        value = script.pop(0) if script else False
        if isinstance(value, Exception):
            raise value
        return value

    config = DefaultRunnerConfig(trigger_max_consecutive_errors=3)
    with new_harness(config=config) as h:
        _schedule(h, poll)
        h.advance(30)
        schedule = h.runner.get_trigger_schedule("faulty")
        assert schedule is not None and schedule["enabled"] is True
        assert schedule["consecutive_errors"] == 0


def test_timeouts_count_towards_the_pause(new_harness: Callable[..., Harness]) -> None:
    class Hangs(cloaca.Trigger):
        name = "hangs"
        poll_interval = "1s"

        async def poll(self) -> bool:
            await asyncio.sleep(30)
            return True

    config = DefaultRunnerConfig(trigger_poll_timeout=0.02, trigger_max_consecutive_errors=2)
    with new_harness(config=config) as h:
        h.runner.register_trigger(Hangs(), "wf")
        h.advance(60)
        schedule = h.runner.get_trigger_schedule("hangs")
        assert schedule is not None and schedule["enabled"] is False
        assert "timeout" in schedule["paused_reason"]


# -- invalid registrations and management calls ------------------------------------------------


class Named(cloaca.Trigger):
    def poll(self) -> bool:
        return False


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Named(), "no valid name"),
        (lambda: Named(name=""), "no valid name"),
        (lambda: Named(name="z", poll_interval=0), "greater than zero"),
        (lambda: Named(name="z", poll_interval=-5), "greater than zero"),
        (lambda: Named(name="z", poll_interval="0s"), "greater than zero"),
        (lambda: Named(name="z", poll_interval="soon"), "invalid poll_interval"),
        (lambda: Named(name="z", poll_interval=timedelta(0)), "greater than zero"),
    ],
)
def test_an_invalid_trigger_is_refused_at_registration(
    harness: Harness, make: Callable[[], Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        harness.runner.register_trigger(make(), "wf")
    with pytest.raises(ValueError, match=match):
        cloaca.register_trigger(make())
    assert harness.runner.list_trigger_schedules() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"poll_interval": 0}, "greater than zero"),
        ({"poll_interval": "-1s"}, "invalid poll_interval"),
        ({"poll_interval": True}, "bool"),
        ({"allow_concurrent": "yes"}, "allow_concurrent"),
    ],
)
def test_invalid_schedule_overrides_are_refused(
    harness: Harness, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        harness.runner.register_trigger(Named(name="ok"), "wf", **kwargs)
    assert harness.runner.get_trigger_schedule("ok") is None


def test_a_schedule_for_an_unknown_workflow_is_refused(harness: Harness) -> None:
    with pytest.raises(ValueError, match="'nope' not found"):
        harness.runner.register_trigger(Named(name="orphan"), "nope")
    assert harness.runner.get_trigger_schedule("orphan") is None


@pytest.mark.parametrize("ref", ["never_registered", ""])
def test_an_unknown_trigger_name_is_refused(harness: Harness, ref: str) -> None:
    with pytest.raises(ValueError, match="not registered"):
        harness.runner.register_trigger(ref, "wf")


@pytest.mark.parametrize("ref", [42, None, object()])
def test_something_that_is_not_a_trigger_is_refused(harness: Harness, ref: Any) -> None:
    with pytest.raises(ValueError, match="Trigger instance"):
        harness.runner.register_trigger(ref, "wf")


def test_a_plain_function_is_not_a_trigger(harness: Harness) -> None:
    def not_decorated() -> bool:
        return True

    with pytest.raises(ValueError, match="not a trigger"):
        harness.runner.register_trigger(not_decorated, "wf")


def test_management_calls_refuse_unknown_names_and_bad_values(harness: Harness) -> None:
    harness.runner.register_trigger(Named(name="known"), "wf")
    with pytest.raises(ValueError, match="'missing' not found"):
        harness.runner.set_trigger_enabled("missing", False)
    with pytest.raises(ValueError, match="True or False"):
        harness.runner.set_trigger_enabled("known", "no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'missing' not found"):
        harness.runner.fire_trigger("missing")
    with pytest.raises(ValueError, match="must be a Context, a dict or None"):
        harness.runner.fire_trigger("known", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'when'"):
        harness.runner.fire_trigger("known", {"when": object()})
    with pytest.raises(ValueError, match="non-empty string"):
        harness.runner.get_trigger_schedule(None)  # type: ignore[arg-type]
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="limit"):
            harness.runner.get_trigger_evaluations("known", limit=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit"):
            harness.runner.list_trigger_schedules(limit=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="offset"):
            harness.runner.get_trigger_execution_history("known", offset=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="enabled_only"):
        harness.runner.list_trigger_schedules(enabled_only="yes")  # type: ignore[arg-type]
    assert harness.runner.list_executions() == []


def test_management_calls_fail_clearly_after_shutdown(db_url: str) -> None:
    runner = cloaca.DefaultRunner(db_url)
    runner.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        runner.list_trigger_schedules()
    # Registering a trigger after the runner is gone does not reach it.
    cloaca.register_trigger(Named(name="after"))
