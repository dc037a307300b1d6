"""Two runners polling one trigger on one database (real threads, bounded waits): a poll
that runs longer than its interval is never overlapped by the other runner, and a runner
that shuts down hands its triggers over at once."""

from __future__ import annotations

import threading
import time

import cloaca
import cloaca.clock
from cloaca import Context, DefaultRunnerConfig
from waiting import wait_for


def _workflow() -> None:
    @cloaca.task(id="noop")
    def noop(context: Context) -> None:
        return None

    cloaca.workflow("wf", [noop])


CONFIG = DefaultRunnerConfig(trigger_base_poll_interval=0.05, trigger_poll_timeout=10)


def test_a_poll_longer_than_its_interval_is_not_overlapped_by_another_runner(
    db_url: str,
) -> None:
    _workflow()
    lock = threading.Lock()
    running = [0]
    most = [0]
    polls = [0]

    @cloaca.trigger(name="slow", poll_interval=0.05)
    def slow() -> bool:
        with lock:
            running[0] += 1
            polls[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)  # six intervals
        with lock:
            running[0] -= 1
        return False

    # Both runners live in this process, so both have the trigger registered.
    with cloaca.DefaultRunner(db_url, CONFIG) as first, cloaca.DefaultRunner(db_url, CONFIG):
        first.register_trigger("slow", "wf")
        wait_for(lambda: polls[0] >= 4)
    assert most[0] == 1


def test_a_runner_shutting_down_hands_its_triggers_over(db_url: str) -> None:
    _workflow()

    @cloaca.trigger(name="handover", poll_interval=0.05)
    def handover() -> bool:
        return False

    first = cloaca.DefaultRunner(db_url, CONFIG)
    second = cloaca.DefaultRunner(db_url, CONFIG)
    try:
        first.register_trigger("handover", "wf")
        wait_for(lambda: len(first.get_trigger_evaluations("handover")) >= 2)
        first.shutdown()
        stopped_at = cloaca.clock.rfc3339(cloaca.clock.SystemClock().now())
        assert stopped_at is not None
        wait_for(
            lambda: any(
                e["runner_id"] == second.runner_id and e["evaluated_at"] > stopped_at
                for e in second.get_trigger_evaluations("handover")
            )
        )
    finally:
        first.shutdown()
        second.shutdown()
