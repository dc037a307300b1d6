"""Engine behaviour through the runner: context flow, retries, callbacks, trigger rules,
timeouts, async tasks, deferral, parallelism, cancellation and listing.

Time-dependent behaviour runs under ``cloaca.testing.Harness`` (fake clock, inline tasks).
Only real concurrency (parallel slots, deferral, sync timeouts) uses a threaded runner, with
events and bounded waits rather than sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig
from cloaca.testing import Harness

WAIT = 10.0  # seconds: the upper bound of every real-time wait (never reached when green)


@pytest.fixture
def fast_runner(db_url: str) -> Iterator[DefaultRunner]:
    """A real threaded runner with two slots."""
    with DefaultRunner(db_url, DefaultRunnerConfig(max_concurrent_tasks=2)) as runner:
        yield runner


def statuses(result: cloaca.WorkflowResult) -> dict[str, str]:
    """task id -> status."""
    return {tid: r.status for tid, r in result.task_results.items()}


# -- context flow -----------------------------------------------------------------------------


def test_roots_receive_the_input_and_dependants_the_merge_in_topological_order(
    harness: Harness,
) -> None:
    seen: dict[str, dict[str, Any]] = {}
    with cloaca.WorkflowBuilder("diamond"):

        @cloaca.task()
        def a(context: Context) -> None:
            seen["a"] = context.to_dict()
            context.set("from_a", 1)
            context.set("cfg", {"x": 1, "y": {"p": 1}})

        @cloaca.task()
        def other_root(context: Context) -> None:
            seen["other_root"] = context.to_dict()

        @cloaca.task(dependencies=[a])
        def b(context: Context) -> None:
            context.set("winner", "b")
            context.set("cfg", {"y": {"q": 2}})

        @cloaca.task(dependencies=["a"])
        def c(context: Context) -> None:
            context.set("winner", "c")
            context.set("cfg", {"y": {"p": 3}, "z": True})

        @cloaca.task(dependencies=[c, b])  # declaration order, not list order, decides
        def d(context: Context) -> None:
            seen["d"] = context.to_dict()

    result = harness.execute("diamond", {"input": "x"})
    assert result.status == "Completed"
    assert seen["a"] == {"input": "x"} == seen["other_root"]
    assert seen["d"] == {
        "input": "x",
        "from_a": 1,
        "winner": "c",  # b and c are siblings: the later declared one wins per key
        # b and c each replaced "cfg" (dropping x); their outputs merge recursively
        "cfg": {"y": {"p": 3, "q": 2}, "z": True},
    }
    # final_context merges every completed output, so a's cfg.x survives there
    assert result.final_context.to_dict() == {
        **seen["d"],
        "cfg": {"x": 1, "y": {"p": 3, "q": 2}, "z": True},
    }


def test_tasks_cannot_alias_each_others_data(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    with cloaca.WorkflowBuilder("alias"):

        @cloaca.task()
        def make(context: Context) -> None:
            context.set("items", [1])

        @cloaca.task(dependencies=[make])
        def mutate(context: Context) -> None:
            context._raw()["items"].append(2)  # even an in-place change of its own input

        @cloaca.task(dependencies=[make, mutate])
        def sibling(context: Context) -> None:
            seen["sibling"] = context.get("items")

        @cloaca.task(dependencies=[make])
        def cousin(context: Context) -> None:
            seen["cousin"] = context.get("items")

    result = harness.execute("alias")
    assert result.status == "Completed"
    assert seen == {"sibling": [1, 2], "cousin": [1]}  # make's output itself is untouched


def test_a_returned_context_replaces_the_output_and_none_keeps_in_place_changes(
    harness: Harness,
) -> None:
    seen: dict[str, Any] = {}
    with cloaca.WorkflowBuilder("replace"):

        @cloaca.task()
        def fresh(context: Context) -> Context:
            return Context({"only": 1})

        @cloaca.task(dependencies=[fresh])
        def after(context: Context) -> None:
            seen["after"] = context.to_dict()

    result = harness.execute("replace", {"input": True})
    assert seen["after"] == {"only": 1}
    assert result.final_context.to_dict() == {"input": True, "only": 1}


def test_skipped_dependencies_are_looked_through(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    with cloaca.WorkflowBuilder("look_through"):

        @cloaca.task(trigger_rules=cloaca.context_value("go", "equals", True))
        def skipped_root(context: Context) -> None:
            context.set("root_ran", True)

        @cloaca.task()
        def producer(context: Context) -> None:
            context.set("produced", 1)

        @cloaca.task(
            dependencies=[producer], trigger_rules=cloaca.context_value("produced", ">", 5)
        )
        def skipped_middle(context: Context) -> None:
            context.set("middle_ran", True)

        @cloaca.task(dependencies=[skipped_root, skipped_middle])
        def consumer(context: Context) -> None:
            seen["consumer"] = context.to_dict()

    result = harness.execute("look_through", {"go": False})
    assert statuses(result) == {
        "skipped_root": "Skipped",
        "producer": "Completed",
        "skipped_middle": "Skipped",
        "consumer": "Completed",
    }
    assert result.task_results["skipped_root"].error == "trigger rule not satisfied"
    # Through the skipped root: the execution input; through the skipped middle: producer.
    assert seen["consumer"] == {"go": False, "produced": 1}
    assert result.status == "Completed"
    assert result.final_context.to_dict() == {"go": False, "produced": 1}


# -- retries ------------------------------------------------------------------------------------


def _flaky_workflow(
    harness: Harness, fail_times: int, error: str = "RuntimeError", **options: Any
) -> list[datetime]:
    """Register workflow "flaky" whose task fails ``fail_times`` then succeeds; returns the
    list that collects the fake-clock instant of each attempt."""
    starts: list[datetime] = []
    with cloaca.WorkflowBuilder("flaky"):

        @cloaca.task(**options)
        def flaky(context: Context) -> None:
            starts.append(harness.clock.now())
            if len(starts) <= fail_times:
                raise RuntimeError(f"{error} number {len(starts)}")
            context.set("attempts", len(starts))

    return starts


@pytest.mark.parametrize(
    ("backoff", "options", "gaps"),
    [
        ("fixed", {}, [1.0, 1.0, 1.0]),
        ("linear", {}, [1.0, 2.0, 3.0]),
        ("exponential", {}, [1.0, 2.0, 4.0]),
        ("exponential", {"retry_max_delay_ms": 2500}, [1.0, 2.0, 2.5]),
        ("exponential", {"retry_delay_ms": 0}, [0.0, 0.0, 0.0]),
    ],
)
def test_retry_delays_follow_the_backoff(
    harness: Harness, backoff: str, options: dict[str, Any], gaps: list[float]
) -> None:
    starts = _flaky_workflow(
        harness,
        fail_times=3,
        retry_attempts=4,
        retry_backoff=backoff,
        retry_jitter=False,
        **{"retry_delay_ms": 1000, **options},
    )
    execution_id = harness.runner.start("flaky")
    harness.run_until_idle()
    assert len(starts) == (1 if gaps[0] > 0 else 4)  # a zero delay retries at once
    t0 = starts[0]
    if gaps[0] > 0:
        assert harness.next_due() == t0 + timedelta(seconds=gaps[0])
        running = harness.runner.get_execution(execution_id)
        assert running.status == "Running"
        assert running.task_results["flaky"].status == "Ready"  # waiting for its retry
        assert running.task_results["flaky"].error == "RuntimeError: RuntimeError number 1"
    harness.advance(30)
    result = harness.runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert result.task_results["flaky"].attempts == 4
    assert result.task_results["flaky"].error is None
    observed = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert observed == pytest.approx(gaps)
    assert result.final_context["attempts"] == 4


def test_retry_jitter_stays_within_a_quarter(harness: Harness) -> None:
    starts = _flaky_workflow(
        harness, fail_times=5, retry_attempts=6, retry_backoff="fixed", retry_delay_ms=4000
    )
    harness.runner.start("flaky")
    harness.advance(60)
    gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 5
    assert all(3.0 <= g <= 5.0 for g in gaps), gaps


def test_retry_policy_object_and_exhaustion_fails_the_execution(harness: Harness) -> None:
    policy = (
        cloaca.RetryPolicy.builder()
        .max_attempts(2)
        .initial_delay(timedelta(seconds=3))
        .max_delay(10)
        .backoff_strategy(cloaca.BackoffStrategy.fixed())
        .retry_condition(cloaca.RetryCondition.all_errors())
        .with_jitter(False)
        .build()
    )
    starts = _flaky_workflow(harness, fail_times=5, retry=policy)
    execution_id = harness.runner.start("flaky")
    harness.advance(60)
    result = harness.runner.get_execution(execution_id)
    assert [(s - starts[0]).total_seconds() for s in starts] == [0.0, 3.0]
    assert result.status == "Failed"
    assert result.task_results["flaky"].attempts == 2
    assert result.error_message == "Task 'flaky' failed: RuntimeError: RuntimeError number 2"


@pytest.mark.parametrize(
    ("condition", "error", "attempts"),
    [
        ("never", "connection refused", 1),
        ("transient", "connection refused", 3),
        ("transient", "service temporarily unavailable", 3),
        ("transient", "bad input", 1),
        ("all", "bad input", 3),
        (cloaca.RetryCondition.error_pattern(["quota"]), "Quota exceeded", 3),
        (cloaca.RetryCondition.error_pattern(["quota"]), "bad input", 1),
    ],
)
def test_retry_condition_decides_which_errors_are_retried(
    harness: Harness, condition: Any, error: str, attempts: int
) -> None:
    starts = _flaky_workflow(
        harness, fail_times=9, error=error, retry_attempts=3, retry_condition=condition
    )
    execution_id = harness.runner.start("flaky")
    harness.advance(120)
    result = harness.runner.get_execution(execution_id)
    assert result.status == "Failed"
    assert len(starts) == attempts == result.task_results["flaky"].attempts


def test_a_timed_out_async_attempt_is_transient_and_retried(harness: Harness) -> None:
    calls: list[int] = []
    with cloaca.WorkflowBuilder("slow"):

        @cloaca.task(
            timeout=0.02, retry_attempts=2, retry_condition="transient", retry_delay_ms=500
        )
        async def slow(context: Context) -> None:
            calls.append(1)
            if len(calls) == 1:
                await asyncio.sleep(WAIT)
            context.set("done", True)

    execution_id = harness.runner.start("slow")
    harness.advance(5)
    result = harness.runner.get_execution(execution_id)
    assert result.status == "Completed"
    assert result.task_results["slow"].attempts == 2
    assert result.final_context["done"] is True


# -- callbacks ----------------------------------------------------------------------------------


def test_callbacks_run_after_success_and_after_every_failed_attempt(harness: Harness) -> None:
    events: list[tuple[Any, ...]] = []

    def on_success(task_id: str, context: Context) -> None:
        events.append(("success", task_id, context.get("attempts")))

    def on_failure(task_id: str, error: str, context: Context) -> None:
        events.append(("failure", task_id, error))

    starts = _flaky_workflow(
        harness,
        fail_times=2,
        retry_attempts=3,
        retry_delay_ms=0,
        on_success=on_success,
        on_failure=on_failure,
    )
    assert harness.execute("flaky").status == "Completed"
    assert len(starts) == 3
    assert events == [
        ("failure", "flaky", "RuntimeError: RuntimeError number 1"),
        ("failure", "flaky", "RuntimeError: RuntimeError number 2"),
        ("success", "flaky", 3),  # the context holds the task's output
    ]


def test_exceptions_in_callbacks_are_swallowed(harness: Harness) -> None:
    def explode(*args: Any) -> None:
        raise RuntimeError("callback bug")

    with cloaca.WorkflowBuilder("callbacks"):

        @cloaca.task(on_success=explode)
        def good(context: Context) -> None:
            context.set("ok", True)

        @cloaca.task(retry_attempts=1, on_failure=explode)
        def bad(context: Context) -> None:
            raise ValueError("task bug")

    result = harness.execute("callbacks")
    assert statuses(result) == {"good": "Completed", "bad": "Failed"}
    assert result.status == "Failed"
    assert result.error_message == "Task 'bad' failed: ValueError: task bug"
    assert result.final_context["ok"] is True


# -- trigger rules ------------------------------------------------------------------------------


def _rules_workflow(rule: Any) -> None:
    """ok (Completed), broken (Failed), off (Skipped), then "target" with ``rule``."""
    with cloaca.WorkflowBuilder("rules"):

        @cloaca.task()
        def ok(context: Context) -> None:
            context.set("count", 5)
            context.set("tags", ["a", "b"])

        @cloaca.task(retry_attempts=1)
        def broken(context: Context) -> None:
            raise RuntimeError("broken")

        @cloaca.task(trigger_rules=cloaca.context_value("never_set", "exists"))
        def off(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[ok, broken, off], trigger_rules=rule)
        def target(context: Context) -> None:
            context.set("target_ran", True)


RULE_CASES: list[tuple[str, Any, bool]] = [
    ("always", cloaca.always(), True),
    ("success", cloaca.task_success("ok"), True),
    ("success of failed", cloaca.task_success("broken"), False),
    ("failed", cloaca.task_failed("broken"), True),
    ("failed of ok", cloaca.task_failed("ok"), False),
    ("skipped", cloaca.task_skipped("off"), True),
    ("bare name", "ok", True),
    ("bare name of failed", "broken", False),
    ("list is all", ["ok", cloaca.task_failed("broken")], True),
    ("all_of", cloaca.all_of("ok", cloaca.task_skipped("off")), True),
    ("all_of false", cloaca.all_of("ok", "broken"), False),
    ("any_of", cloaca.any_of("broken", "ok"), True),
    ("any_of false", cloaca.any_of("broken", cloaca.task_success("off")), False),
    ("none_of", cloaca.none_of("broken", cloaca.task_failed("ok")), True),
    ("none_of false", cloaca.none_of("ok"), False),
    ("context equals", cloaca.context_value("count", "equals", 5), True),
    ("context ==", cloaca.context_value("count", "==", 6), False),
    ("context gt", cloaca.context_value("count", "gt", 4), True),
    ("context <", cloaca.context_value("count", "<", 5), False),
    ("context contains", cloaca.context_value("tags", "contains", "b"), True),
    ("context not_contains", cloaca.context_value("tags", "not_contains", "b"), False),
    ("context not_exists", cloaca.context_value("missing", "not_exists"), True),
    ("context ne", cloaca.context_value("count", "ne", 5), False),
    ("nested", cloaca.any_of(cloaca.all_of("broken"), cloaca.none_of("broken")), True),
]


@pytest.mark.parametrize(("label", "rule", "runs"), RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_trigger_rules_decide_whether_a_task_runs(
    harness: Harness, label: str, rule: Any, runs: bool
) -> None:
    _rules_workflow(rule)
    result = harness.execute("rules")
    assert result.task_results["target"].status == ("Completed" if runs else "Skipped")
    if not runs:
        assert result.task_results["target"].error == "trigger rule not satisfied"
    assert result.status == "Failed"  # "broken" failed
    assert result.error_message == "Task 'broken' failed: RuntimeError: broken"


def test_default_rule_skips_on_upstream_failure_all_the_way_down(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("chain"):

        @cloaca.task(retry_attempts=1)
        def extract(context: Context) -> None:
            raise RuntimeError("source down")

        @cloaca.task(dependencies=[extract])
        def transform(context: Context) -> None:
            context.set("transformed", True)

        @cloaca.task(dependencies=[transform])
        def load(context: Context) -> None:
            context.set("loaded", True)

        @cloaca.task(dependencies=[load], trigger_rules=cloaca.always())
        def cleanup(context: Context) -> None:
            context.set("cleaned", True)

    result = harness.execute("chain", {"run": 1})
    assert statuses(result) == {
        "extract": "Failed",
        "transform": "Skipped",
        "load": "Skipped",
        "cleanup": "Completed",
    }
    assert result.task_results["transform"].error == "upstream failed"
    assert result.task_results["load"].error == "upstream failed"
    assert result.status == "Failed"
    assert result.error_message == "Task 'extract' failed: RuntimeError: source down"
    assert result.final_context.to_dict() == {"run": 1, "cleaned": True}


def test_a_rule_skipped_dependency_counts_as_satisfied(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("optional"):

        @cloaca.task(trigger_rules=cloaca.context_value("enabled", "equals", True))
        def optional(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[optional])
        def after(context: Context) -> None:
            context.set("after", True)

        @cloaca.task(dependencies=[after])
        def last(context: Context) -> None:
            context.set("last", True)

    result = harness.execute("optional", {"enabled": False})
    assert statuses(result) == {"optional": "Skipped", "after": "Completed", "last": "Completed"}
    assert result.status == "Completed"


def test_a_rule_may_name_a_task_further_upstream(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("ancestor"):

        @cloaca.task()
        def origin(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[origin])
        def middle(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[middle], trigger_rules=cloaca.task_success("origin"))
        def tail(context: Context) -> None:
            context.set("tail", True)

    result = harness.execute("ancestor")
    assert statuses(result) == {"origin": "Completed", "middle": "Completed", "tail": "Completed"}


def test_every_task_skipped_completes_the_execution(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("nothing"):

        @cloaca.task(trigger_rules=cloaca.context_value("go", "exists"))
        def only(context: Context) -> None:
            pass

        @cloaca.task(dependencies=[only], trigger_rules=cloaca.task_success("only"))
        def then(context: Context) -> None:
            pass

    result = harness.execute("nothing", {"x": 1})
    assert statuses(result) == {"only": "Skipped", "then": "Skipped"}
    assert result.status == "Completed"
    assert result.final_context.to_dict() == {"x": 1}


# -- async tasks, timeouts ----------------------------------------------------------------------


def test_async_tasks_run_and_receive_a_handle(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("async_flow"):

        @cloaca.task()
        async def first(context: Context) -> Context:
            await asyncio.sleep(0)
            context.set("first", True)
            return context

        @cloaca.task(dependencies=[first])
        async def second(context: Context, task_handle: cloaca.TaskHandle) -> None:
            context.set("held", task_handle.is_slot_held())

    result = harness.execute("async_flow")
    assert result.status == "Completed"
    assert result.final_context.to_dict() == {"first": True, "held": True}


def test_async_task_timeout_under_the_harness(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("async_timeout"):

        @cloaca.task(timeout=timedelta(milliseconds=20), retry_attempts=1)
        async def stuck(context: Context) -> None:
            await asyncio.sleep(WAIT)

    result = harness.execute("async_timeout")
    assert result.status == "Failed"
    assert result.task_results["stuck"].error == "Task 'stuck' timed out after 0.02s"


def test_sync_task_timeout_on_the_threaded_runner(fast_runner: DefaultRunner) -> None:
    release = threading.Event()
    with cloaca.WorkflowBuilder("sync_timeout"):

        @cloaca.task(timeout=0.1, retry_attempts=1)
        def stuck(context: Context) -> None:
            release.wait(WAIT)

    try:
        result = fast_runner.wait(fast_runner.start("sync_timeout"), timeout=WAIT)
    finally:
        release.set()  # let the abandoned body end
    assert result.status == "Failed"
    assert result.task_results["stuck"].error == "Task 'stuck' timed out after 0.1s"


# -- TaskHandle.defer_until ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_defer_until_releases_the_slot_and_shows_deferred(db_url: str, kind: str) -> None:
    """With one slot, the "meanwhile" execution can only run while "waiter" is deferred; it
    sees the "Deferred" sub-status, and the waiter goes on once it has run."""
    deferring = threading.Event()
    other_done = threading.Event()
    seen: dict[str, Any] = {}
    holder: dict[str, Any] = {}

    def condition() -> bool:
        deferring.set()  # called only once the slot has been released
        return other_done.is_set()

    with cloaca.WorkflowBuilder("defer"):
        if kind == "sync":

            @cloaca.task(retry_attempts=1)
            def waiter(context: Context, handle: cloaca.TaskHandle) -> None:
                seen["before"] = handle.is_slot_held()
                handle.defer_until(condition, poll_interval_ms=5)
                seen["after"] = handle.is_slot_held()

        else:

            @cloaca.task(retry_attempts=1)
            async def waiter(context: Context, handle: cloaca.TaskHandle) -> None:
                seen["before"] = handle.is_slot_held()
                await handle.defer_until(condition, poll_interval_ms=5)
                seen["after"] = handle.is_slot_held()

    with cloaca.WorkflowBuilder("meanwhile"):

        @cloaca.task(retry_attempts=1)
        def other(context: Context) -> None:
            waiting = holder["runner"].get_execution(holder["id"])
            seen["sub_status"] = waiting.task_results["waiter"].sub_status
            seen["waiter_status"] = waiting.task_results["waiter"].status
            other_done.set()

    config = DefaultRunnerConfig(max_concurrent_tasks=1)
    with DefaultRunner(db_url, config) as runner:
        holder["runner"] = runner
        holder["id"] = runner.start("defer")
        assert deferring.wait(WAIT)
        assert runner.execute("meanwhile").status == "Completed"
        result = runner.wait(holder["id"], timeout=WAIT)
    assert result.status == "Completed", result.error_message
    assert seen == {
        "before": True,
        "sub_status": "Deferred",
        "waiter_status": "Running",
        "after": True,
    }
    assert result.task_results["waiter"].sub_status is None


def test_a_handle_used_after_its_task_ended_raises(harness: Harness) -> None:
    kept: list[cloaca.TaskHandle] = []
    with cloaca.WorkflowBuilder("keep_handle"):

        @cloaca.task()
        def keep(context: Context, handle: cloaca.TaskHandle) -> None:
            kept.append(handle)

    assert harness.execute("keep_handle").status == "Completed"
    (handle,) = kept
    with pytest.raises(ValueError, match="TaskHandle for task 'keep' used after its task ended"):
        handle.is_slot_held()
    with pytest.raises(ValueError, match="used after its task ended"):
        handle.defer_until(lambda: True)


# -- parallelism --------------------------------------------------------------------------------


@pytest.mark.parametrize("slots", [2, 3])
def test_independent_tasks_run_in_parallel_up_to_max_concurrent_tasks(
    db_url: str, slots: int
) -> None:
    """2 x slots independent tasks meet at a barrier of ``slots`` parties: the barrier only
    opens if ``slots`` bodies run at once; a counter shows no more than that ever do."""
    barrier = threading.Barrier(slots, timeout=WAIT)
    lock = threading.Lock()
    active = [0, 0]  # current, peak

    def body(context: Context) -> None:
        with lock:
            active[0] += 1
            active[1] = max(active[1], active[0])
        try:
            barrier.wait()
        finally:
            with lock:
                active[0] -= 1

    with cloaca.WorkflowBuilder("wide"):
        for i in range(2 * slots):
            cloaca.task(id=f"t{i}", retry_attempts=1)(_named(body, f"t{i}"))

    with DefaultRunner(db_url, DefaultRunnerConfig(max_concurrent_tasks=slots)) as runner:
        result = runner.wait(runner.start("wide"), timeout=WAIT)
    assert result.status == "Completed", result.error_message
    assert active[1] == slots


def _named(fn: Callable[[Context], None], name: str) -> Callable[[Context], None]:
    def wrapper(context: Context) -> None:
        fn(context)

    wrapper.__name__ = name
    return wrapper


# -- cancel, workflow timeout -------------------------------------------------------------------


def test_cancel_a_pending_execution(harness: Harness) -> None:
    ran: list[str] = []
    with cloaca.WorkflowBuilder("cancel_me"):

        @cloaca.task()
        def first(context: Context) -> None:
            ran.append("first")

        @cloaca.task(dependencies=[first])
        def second(context: Context) -> None:
            ran.append("second")

    execution_id = harness.runner.start("cancel_me")
    assert harness.runner.cancel_execution(execution_id) is True
    assert harness.runner.cancel_execution(execution_id) is False  # already terminal
    harness.advance(10)
    result = harness.runner.get_execution(execution_id)
    assert ran == []
    assert result.status == "Cancelled"
    assert statuses(result) == {"first": "Skipped", "second": "Skipped"}
    assert result.end_time is not None
    with pytest.raises(ValueError, match="'nope' not found"):
        harness.runner.cancel_execution("nope")


def test_cancel_while_a_task_runs_stops_retries_and_dependants(harness: Harness) -> None:
    attempts: list[int] = []
    ids: list[str] = []
    with cloaca.WorkflowBuilder("cancel_running"):

        @cloaca.task(retry_attempts=3, retry_delay_ms=0)
        def running(context: Context) -> None:
            attempts.append(1)
            harness.runner.cancel_execution(ids[0])
            raise RuntimeError("interrupted")

        @cloaca.task(dependencies=[running], trigger_rules=cloaca.always())
        def after(context: Context) -> None:
            attempts.append(2)

    ids.append(harness.runner.start("cancel_running"))
    harness.advance(60)
    result = harness.runner.get_execution(ids[0])
    assert attempts == [1]  # no retry of an attempt of a cancelled execution
    assert result.status == "Cancelled"
    assert result.task_results["after"].status == "Skipped"
    assert result.task_results["running"].status == "Failed"


def test_workflow_timeout_fails_the_execution(new_harness: Callable[..., Harness]) -> None:
    config = DefaultRunnerConfig(workflow_timeout_seconds=5, stale_claim_sweep_interval_seconds=1)
    with new_harness(config=config) as h:
        with cloaca.WorkflowBuilder("too_slow"):

            @cloaca.task(retry_attempts=5, retry_delay_ms=100_000, retry_jitter=False)
            def waits(context: Context) -> None:
                raise RuntimeError("again")

        execution_id = h.runner.start("too_slow")
        h.advance(4)
        assert h.runner.get_execution(execution_id).status == "Running"
        h.advance(2)
        result = h.runner.get_execution(execution_id)
        assert result.status == "Failed"
        assert result.error_message == "workflow timed out after 5s"
        assert result.task_results["waits"].status == "Skipped"
        assert result.task_results["waits"].attempts == 1


def test_workflow_timeout_applies_without_stale_claim_recovery(
    new_harness: Callable[..., Harness],
) -> None:
    config = DefaultRunnerConfig(
        workflow_timeout_seconds=2, stale_claim_sweep_interval_seconds=1, enable_recovery=False
    )
    with new_harness(config=config) as h:
        with cloaca.WorkflowBuilder("too_slow"):

            @cloaca.task(retry_delay_ms=100_000)
            def waits(context: Context) -> None:
                raise RuntimeError("again")

        execution_id = h.runner.start("too_slow")
        h.advance(3)
        assert h.runner.get_execution(execution_id).status == "Failed"


# -- reading executions -------------------------------------------------------------------------


def test_get_execution_while_pending_and_running(harness: Harness) -> None:
    seen: dict[str, Any] = {}
    ids: list[str] = []
    with cloaca.WorkflowBuilder("observe"):

        @cloaca.task()
        def looks(context: Context) -> None:
            current = harness.runner.get_execution(ids[0])
            seen["status"] = current.status
            seen["task"] = current.task_results["looks"]
            seen["end_time"] = current.end_time

        @cloaca.task(dependencies=[looks])
        def later(context: Context) -> None:
            pass

    ids.append(harness.runner.start("observe"))
    pending = harness.runner.get_execution(ids[0])
    assert pending.status == "Pending"
    assert statuses(pending) == {"looks": "Ready", "later": "NotStarted"}
    assert pending.end_time is None and pending.error_message is None
    harness.run_until_idle()
    assert seen["status"] == "Running"
    assert seen["task"].status == "Running" and seen["task"].attempts == 1
    assert seen["task"].started_at == "2026-01-01T00:00:00Z"
    assert seen["end_time"] is None
    done = harness.runner.get_execution(ids[0])
    assert done.status == "Completed" and done.end_time == "2026-01-01T00:00:00Z"
    with pytest.raises(ValueError, match="'missing' not found"):
        harness.runner.get_execution("missing")


def test_list_executions_filters_and_pages(harness: Harness) -> None:
    with cloaca.WorkflowBuilder("ok_flow"):

        @cloaca.task()
        def fine(context: Context) -> None:
            pass

    with cloaca.WorkflowBuilder("bad_flow"):

        @cloaca.task(retry_attempts=1)
        def broken(context: Context) -> None:
            raise RuntimeError("nope")

    ids = []
    for name in ["ok_flow", "bad_flow", "ok_flow", "bad_flow", "ok_flow"]:
        ids.append(harness.execute(name).execution_id)
        harness.clock.advance(1)
    listed = harness.runner.list_executions()
    assert [row["id"] for row in listed] == ids[::-1]
    assert set(listed[0]) >= {
        "id",
        "workflow_name",
        "status",
        "started_at",
        "completed_at",
        "error_message",
    }
    assert listed[1]["status"] == "Failed"
    assert listed[1]["error_message"] == "Task 'broken' failed: RuntimeError: nope"
    assert listed[0]["started_at"] == "2026-01-01T00:00:04Z"
    ok = harness.runner.list_executions(workflow_name="ok_flow")
    assert [row["id"] for row in ok] == [ids[4], ids[2], ids[0]]
    failed = harness.runner.list_executions(status="Failed")
    assert [row["id"] for row in failed] == [ids[3], ids[1]]
    assert harness.runner.list_executions("ok_flow", "Failed") == []
    page = harness.runner.list_executions(limit=2, offset=1)
    assert [row["id"] for row in page] == [ids[3], ids[2]]
    assert harness.runner.list_executions(limit=2, offset=5) == []
    assert harness.runner.list_executions(workflow_name="unknown") == []


# -- reads a chain does not need ----------------------------------------------------------------


def test_a_chain_hands_each_output_to_the_next_task_without_reading_it_back(
    fast_runner: DefaultRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task finishing makes its only dependant Ready and claims it in the same
    transaction: its status is known and its input is the output just recorded, so neither
    is read back from the database. The data still flows down the chain."""
    from cloaca.store.tasks import TaskQueries

    reads: list[str] = []
    for name in ("outputs", "statuses"):
        real = getattr(TaskQueries, name)

        def counting(self: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
            reads.append(_name)
            return _real(self, *args)

        monkeypatch.setattr(TaskQueries, name, counting)

    def step(n: int) -> Callable[[Context], None]:
        def body(context: Context) -> None:
            context.set("trail", [*context.get("trail", []), n])

        return body

    tasks = [cloaca.task(id="c1")(step(1))]
    for n in (2, 3, 4):
        tasks.append(cloaca.task(id=f"c{n}", dependencies=[f"c{n - 1}"])(step(n)))
    cloaca.workflow("chain_no_reads", tasks)
    result = fast_runner.execute("chain_no_reads")
    assert result.status == "Completed", result.error_message
    assert result.final_context["trail"] == [1, 2, 3, 4]
    assert reads == []


def test_a_chain_costs_one_write_transaction_per_task(fast_runner: DefaultRunner) -> None:
    """A start creates the execution and claims its root in one transaction; every task's
    outcome is then recorded with its next task claimed (or, for the last one, with the
    execution ended) in one more: on PostgreSQL each of them is one round trip. The
    fewest of a few runs is counted: a heartbeat may commit in between."""

    def step(n: int) -> Callable[[Context], None]:
        def body(context: Context) -> None:
            context.set(f"s{n}", n)

        return body

    tasks = [cloaca.task(id="c1")(step(1))]
    for n in (2, 3, 4):
        tasks.append(cloaca.task(id=f"c{n}", dependencies=[f"c{n - 1}"])(step(n)))
    cloaca.workflow("chain_commits", tasks)
    db = fast_runner._store.db
    fast_runner.execute("chain_commits")  # the first run prepares statements
    costs: list[tuple[int, int]] = []
    for _ in range(3):
        tx0, trips0 = db.write_transactions, getattr(db, "round_trips", None)
        result = fast_runner.execute("chain_commits")
        assert result.status == "Completed", result.error_message
        assert result.final_context.to_dict() == {"s1": 1, "s2": 2, "s3": 3, "s4": 4}
        trips = getattr(db, "round_trips", None)
        costs.append((db.write_transactions - tx0, -1 if trips is None else trips - trips0))
    writes, trips = min(costs)
    assert writes == 5
    if getattr(db, "round_trips", None) is not None:
        assert trips == 5
