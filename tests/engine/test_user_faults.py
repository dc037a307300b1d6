"""User code raising a ``BaseException`` (KeyboardInterrupt, SystemExit, GeneratorExit, a
custom subclass) fails that one attempt or poll, named, at once, and strands nothing: the
event loop, the worker threads and the task slots keep serving later tasks and polls.

And a runner dying during an attempt spends that attempt: when it was the last, the task
ends Failed at takeover instead of running once more (real processes: test_poison.py).

Tasks and polls run under the Harness (fake clock; a regression shows as a hung test:
the attempt would never settle). Sync polls run on the poll threads only in a threaded
runner, so that case also runs there, with bounded waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunnerConfig
from cloaca.testing import Harness
from waiting import wait_for

WAIT = 10.0  # seconds: the bound of every real-time wait (never reached when green)


class Abort(BaseException):
    """A user-defined BaseException, outside the Exception hierarchy like SystemExit."""


KINDS = [
    pytest.param(KeyboardInterrupt, "KeyboardInterrupt", id="KeyboardInterrupt"),
    pytest.param(lambda: SystemExit(3), "SystemExit: 3", id="SystemExit"),
    pytest.param(GeneratorExit, "GeneratorExit", id="GeneratorExit"),
    pytest.param(lambda: Abort("stop right there"), "Abort: stop right there", id="custom"),
]

Raise = Callable[[], BaseException]


@pytest.fixture
def one_slot(backend: str, db_url: str) -> Iterator[Harness]:
    """A Harness whose runner has a single task slot: one leaked slot stops everything."""
    config = DefaultRunnerConfig(max_concurrent_tasks=1)
    h = Harness(":memory:" if backend == "sqlite" else db_url, config=config)
    yield h
    h.close()


def _normal_workflow(ran: list[str]) -> None:
    """``plain``: a sync and an async task, each noting the thread it ran on."""
    with cloaca.WorkflowBuilder("plain"):

        @cloaca.task()
        def sync_step(context: Context) -> None:
            ran.append(threading.current_thread().name)

        @cloaca.task(dependencies=[sync_step])
        async def async_step(context: Context) -> None:
            ran.append(threading.current_thread().name)


def _assert_more_than_the_slots_still_run(h: Harness, ran: list[str]) -> None:
    """Three executions of ``plain`` on a one-slot runner all complete."""
    ids = [h.runner.start("plain") for _ in range(3)]
    h.run_until_idle()
    assert [h.runner.get_execution(i).status for i in ids] == ["Completed"] * 3
    assert len(ran) == 6


# -- tasks --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("make", "expected"), KINDS)
def test_a_sync_task_raising_a_base_exception_fails_that_attempt_at_once(
    one_slot: Harness, make: Raise, expected: str
) -> None:
    ran: list[str] = []
    _normal_workflow(ran)

    @cloaca.task(id="quits", retry_attempts=1)
    def quits(context: Context) -> None:
        raise make()

    cloaca.workflow("quitting", [quits])
    started = one_slot.clock.now()
    result = one_slot.execute("quitting")
    assert result.status == "Failed"
    task = result.task_results["quits"]
    assert (task.status, task.error, task.attempts) == ("Failed", expected, 1)
    assert result.error_message == f"Task 'quits' failed: {expected}"
    assert one_slot.clock.now() == started  # not at a timeout: nothing had to wait
    _assert_more_than_the_slots_still_run(one_slot, ran)


@pytest.mark.parametrize(("make", "expected"), KINDS)
def test_an_async_task_raising_a_base_exception_fails_and_the_event_loop_lives_on(
    one_slot: Harness, make: Raise, expected: str
) -> None:
    ran: list[str] = []
    _normal_workflow(ran)
    loops: list[asyncio.AbstractEventLoop] = []

    @cloaca.task(id="quits", retry_attempts=1)
    async def quits(context: Context) -> None:
        loops.append(asyncio.get_running_loop())
        raise make()

    @cloaca.task(id="after")
    async def after(context: Context) -> None:
        loops.append(asyncio.get_running_loop())

    cloaca.workflow("quitting", [quits])
    cloaca.workflow("afterwards", [after])
    result = one_slot.execute("quitting")
    assert result.status == "Failed"
    task = result.task_results["quits"]
    assert (task.status, task.error, task.attempts) == ("Failed", expected, 1)
    assert one_slot.execute("afterwards").status == "Completed"
    assert len(loops) == 2 and loops[0] is loops[1] and loops[0].is_running()
    _assert_more_than_the_slots_still_run(one_slot, ran)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_base_exception_is_retried_like_an_ordinary_error(
    harness: Harness, is_async: bool
) -> None:
    calls: list[int] = []

    def body() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit(3)

    if is_async:

        @cloaca.task(id="once", retry_attempts=2, retry_delay_ms=1000, retry_jitter=False)
        async def once_async(context: Context) -> None:
            body()

        spec: Any = once_async
    else:

        @cloaca.task(id="once", retry_attempts=2, retry_delay_ms=1000, retry_jitter=False)
        def once_sync(context: Context) -> None:
            body()

        spec = once_sync

    cloaca.workflow("retried", [spec])
    execution_id = harness.runner.start("retried")
    harness.run_until_idle()
    [task] = harness.runner.get_execution(execution_id).task_results.values()
    assert (task.status, task.error, task.attempts) == ("Ready", "SystemExit: 3", 1)
    harness.advance(1)
    result = harness.runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert result.task_results["once"].attempts == 2 == len(calls)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_base_exception_is_not_a_timeout_so_transient_retries_skip_it(
    harness: Harness, is_async: bool
) -> None:
    options: dict[str, Any] = {"retry_attempts": 3, "retry_condition": "transient"}
    if is_async:

        @cloaca.task(id="stops", **options)
        async def stops_async(context: Context) -> None:
            raise SystemExit(3)

        spec: Any = stops_async
    else:

        @cloaca.task(id="stops", **options)
        def stops_sync(context: Context) -> None:
            raise SystemExit(3)

        spec = stops_sync

    cloaca.workflow("stopping", [spec])
    result = harness.execute("stopping")
    task = result.task_results["stops"]
    assert (task.status, task.attempts) == ("Failed", 1)  # a timeout would have been retried
    assert task.error == "SystemExit: 3"


def test_our_cancellation_of_an_async_task_still_means_cancelled(harness: Harness) -> None:
    ids: list[str] = []
    cancelled = threading.Event()

    @cloaca.task(id="waits", retry_attempts=3)
    async def waits(context: Context) -> None:
        # The harness thread waits for this attempt: cancel from another thread.
        threading.Thread(target=harness.runner.cancel_execution, args=(ids[0],)).start()
        try:
            await asyncio.sleep(WAIT)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    cloaca.workflow("cancellable", [waits])
    ids.append(harness.runner.start("cancellable"))
    harness.run_until_idle()
    result = harness.runner.get_execution(ids[0])
    assert result.status == "Cancelled"
    # The attempt ends as soon as its future is cancelled; the body hears of it on the loop.
    assert cancelled.wait(WAIT)
    task = result.task_results["waits"]
    assert task.attempts == 1 and task.status == "Failed"  # no retry
    assert "cancelled: the execution ended while it ran" in (task.error or "")


def test_a_cancelled_error_the_body_raises_itself_is_its_error(harness: Harness) -> None:
    @cloaca.task(id="own", retry_attempts=1)
    async def own(context: Context) -> None:
        raise asyncio.CancelledError("gave up")

    @cloaca.task(id="after")
    async def after(context: Context) -> None:
        context.set("ran", True)

    cloaca.workflow("own_cancel", [own])
    cloaca.workflow("afterwards", [after])
    result = harness.execute("own_cancel")
    assert result.task_results["own"].error == "CancelledError: gave up"
    assert harness.execute("afterwards").final_context["ran"] is True


def test_a_callback_raising_a_base_exception_changes_no_outcome(one_slot: Harness) -> None:
    ran: list[str] = []
    _normal_workflow(ran)

    def quit_now(*args: Any) -> None:
        raise SystemExit("from a callback")

    @cloaca.task(id="good", on_success=quit_now)
    def good(context: Context) -> None:
        context.set("good", True)

    @cloaca.task(id="bad", retry_attempts=1, on_failure=quit_now)
    def bad(context: Context) -> None:
        raise ValueError("bad")

    cloaca.workflow("callbacks", [good, bad])
    result = one_slot.execute("callbacks")
    assert {t: r.status for t, r in result.task_results.items()} == {
        "good": "Completed",
        "bad": "Failed",
    }
    assert result.task_results["bad"].error == "ValueError: bad"
    _assert_more_than_the_slots_still_run(one_slot, ran)


# -- polls --------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _target() -> None:
    @cloaca.task(id="noop")
    def noop(context: Context) -> None:
        return None

    cloaca.workflow("target", [noop])


def _evaluations(h: Harness, name: str) -> list[dict[str, Any]]:
    return list(reversed(h.runner.get_trigger_evaluations(name, limit=1000)))


def _first_poll_raises(make: Raise, is_async: bool) -> tuple[Any, list[int]]:
    """A trigger (to register) whose first poll raises ``make()``; the next ones skip."""
    calls: list[int] = []

    class AsyncPoll(cloaca.Trigger):
        name = "quitter"
        poll_interval = "1s"

        async def poll(self) -> bool:
            calls.append(1)
            if len(calls) == 1:
                raise make()
            await asyncio.sleep(0)
            return False

    class SyncPoll(cloaca.Trigger):
        name = "quitter"
        poll_interval = "1s"

        def poll(self) -> bool:
            calls.append(1)
            if len(calls) == 1:
                raise make()
            return False

    return (AsyncPoll() if is_async else SyncPoll()), calls


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("make", "expected"), KINDS)
def test_a_poll_raising_a_base_exception_is_an_error_and_polling_goes_on(
    harness: Harness, make: Raise, expected: str, is_async: bool
) -> None:
    trigger, calls = _first_poll_raises(make, is_async)
    harness.runner.register_trigger(trigger, "target")
    harness.advance(5)
    evaluations = _evaluations(harness, "quitter")
    assert evaluations[0]["outcome"] == "error"
    assert evaluations[0]["message"] == expected
    assert len(evaluations) >= 4 and len(calls) == len(evaluations)
    assert {e["outcome"] for e in evaluations[1:]} == {"skipped"}
    schedule = harness.runner.get_trigger_schedule("quitter")
    assert schedule is not None and schedule["enabled"] is True
    # The event loop and the task slots serve async tasks after it.
    ran: list[str] = []
    _normal_workflow(ran)
    ids = [harness.runner.start("plain") for _ in range(3)]
    harness.run_until_idle()
    assert [harness.runner.get_execution(i).status for i in ids] == ["Completed"] * 3


@pytest.mark.parametrize(("make", "expected"), KINDS)
def test_a_sync_poll_raising_on_a_poll_thread_is_an_error_and_the_thread_polls_on(
    db_url: str, make: Raise, expected: str
) -> None:
    calls: list[int] = []

    @cloaca.trigger(name="quitter", poll_interval=0.05)
    def quitter() -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise make()
        return False

    # A timeout far beyond the waits: a stranded poll would show as no further evaluation.
    config = DefaultRunnerConfig(trigger_base_poll_interval=0.05, trigger_poll_timeout=60)
    with cloaca.DefaultRunner(db_url, config) as runner:
        runner.register_trigger("quitter", "target")
        wait_for(lambda: len(runner.get_trigger_evaluations("quitter", 10)) >= 3, "3 polls")
        evaluations = list(reversed(runner.get_trigger_evaluations("quitter", 10)))
        schedule = runner.get_trigger_schedule("quitter")
    assert (evaluations[0]["outcome"], evaluations[0]["message"]) == ("error", expected)
    assert {e["outcome"] for e in evaluations[1:]} == {"skipped"}
    assert schedule is not None and schedule["enabled"] is True


# -- a runner dying during an attempt -----------------------------------------------------------


@pytest.mark.parametrize("attempts", [1, 2])
def test_a_dead_runners_claim_counts_as_an_attempt(harness: Harness, attempts: int) -> None:
    calls: list[int] = []
    with cloaca.WorkflowBuilder("taken_over"):

        @cloaca.task(retry_attempts=attempts)
        def work(context: Context) -> None:
            calls.append(1)

        @cloaca.task(dependencies=[work])
        def after(context: Context) -> None:
            context.set("after", True)

    runner, store = harness.runner, harness.runner._store
    execution_id = runner.start("taken_over")
    now = harness.clock.now()
    # Another runner claims the task, then goes silent (its process died).
    store.runners.register("ghost", "elsewhere", 1, now)
    [claim] = store.tasks.claim_ready("ghost", ["taken_over"], 10, now)
    assert (claim.task_id, claim.attempt, claim.max_attempts) == ("work", 1, attempts)
    harness.advance(120)  # past the stale threshold: this runner's sweep takes it over
    result = runner.get_execution(execution_id)
    work_result = result.task_results["work"]
    if attempts == 2:  # an attempt was left: this runner made it
        assert result.status == "Completed"
        assert (work_result.attempts, calls) == (2, [1])
        return
    assert calls == []  # the dead runner's attempt was the only one allowed
    assert (result.status, work_result.status, work_result.attempts) == ("Failed", "Failed", 1)
    assert work_result.error == "runner died during the attempt (attempt 1 of 1)"
    assert result.error_message == (
        "Task 'work' failed: runner died during the attempt (attempt 1 of 1)"
    )
    after_result = result.task_results["after"]
    assert (after_result.status, after_result.error) == ("Skipped", "upstream failed")
