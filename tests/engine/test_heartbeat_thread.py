"""The heartbeat runs on its own thread: a busy engine loop keeps its claims, a wedged one
loses them to a peer. Real threads and short real-time thresholds (bounded waits)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import pytest

import cloaca
from cloaca import Context, DefaultRunner, DefaultRunnerConfig


def _config(threshold: float) -> DefaultRunnerConfig:
    return DefaultRunnerConfig(
        heartbeat_interval_seconds=0.05,
        stale_claim_threshold_seconds=threshold,
        stale_claim_sweep_interval_seconds=0.1,
        scheduler_poll_interval_ms=50,
    )


class _Blocking:
    """A part whose tick blocks until released (a wedged engine loop)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        self.entered.set()
        self.release.wait(60)
        return False, None


class _Slow:
    """A part that takes a while each round but always returns (a busy engine loop)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ticks = 0

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        time.sleep(self.seconds)
        self.ticks += 1
        return False, None


def _held_task(name: str) -> tuple[threading.Event, threading.Event, list[int]]:
    """One task whose FIRST run signals ``started`` and waits for ``release``."""
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    # Two attempts: a runner taken over has spent the first, the peer runs the second.
    @cloaca.task(id="held", retry_attempts=2)
    def held(context: Context) -> None:
        calls.append(1)
        if len(calls) == 1:
            started.set()
            assert release.wait(60)
        context.set("runs", len(calls))

    cloaca.workflow(name, [held])
    return started, release, calls


def test_a_wedged_loop_stops_the_heartbeat_and_a_peer_takes_the_work_over(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    started, release, calls = _held_task("wedged")
    wedge = _Blocking()
    first = DefaultRunner(db_url, _config(threshold=1.0))
    second: DefaultRunner | None = None
    try:
        execution_id = first.start("wedged")
        assert started.wait(30)
        with caplog.at_level(logging.ERROR):
            first.engine.loop.parts.append(wedge)
            first.engine.loop.wake()
            assert wedge.entered.wait(30)
            second = DefaultRunner(db_url, _config(threshold=1.0))
            result = second.wait(execution_id, timeout=60)
        assert result.status == "Completed"
        assert calls == [1, 1]  # the wedged runner's claim was taken over and run again
        assert result.task_results["held"].attempts == 2
        assert first.engine.heartbeat.wedged
        assert "engine loop wedged" in caplog.text
    finally:
        wedge.release.set()
        release.set()
        if second is not None:
            second.shutdown(timeout=5)
        first.shutdown(timeout=5)


def test_a_busy_loop_keeps_its_claims(db_url: str) -> None:
    """Two slow parts make every round longer than the stale threshold, but each part
    returns in time: the loop progresses, so the heartbeat thread keeps the claim alive
    (a heartbeat refreshed once per round would let the peer take it over)."""
    started, release, calls = _held_task("busy")
    threshold = 1.5
    slow = [_Slow(threshold * 0.6), _Slow(threshold * 0.6)]
    first = DefaultRunner(db_url, _config(threshold=threshold))
    peer: DefaultRunner | None = None
    try:
        execution_id = first.start("busy")
        assert started.wait(30)
        first.engine.loop.parts.extend(slow)
        peer = DefaultRunner(db_url, _config(threshold=threshold))
        deadline = time.monotonic() + 30
        while slow[1].ticks < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # two rounds of 1.8 s each, with the peer sweeping meanwhile
        assert slow[1].ticks >= 2
        assert calls == [1]
        assert peer.get_execution(execution_id).task_results["held"].attempts == 1
        assert not first.engine.heartbeat.wedged
        release.set()
        result = first.wait(execution_id, timeout=60)
        assert result.status == "Completed"
        assert calls == [1]
        assert result.task_results["held"].attempts == 1
    finally:
        release.set()
        if peer is not None:
            peer.shutdown(timeout=5)
        first.shutdown(timeout=15)


def test_each_runner_is_judged_by_its_own_stale_threshold(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A peer with a short threshold does not declare a live runner that beats less often
    dead: each runner's row carries when ITS claims may be taken over."""
    from cloaca.runner.management import ManagementClient
    from cloaca.testing import FakeClock, Harness

    clock = FakeClock()
    slow = DefaultRunnerConfig(heartbeat_interval_seconds=20, stale_claim_threshold_seconds=60)
    strict = DefaultRunnerConfig(
        heartbeat_interval_seconds=0.5,
        stale_claim_threshold_seconds=2,
        stale_claim_sweep_interval_seconds=0.25,
    )
    with (
        Harness(db_url, config=slow, clock=clock) as patient,
        Harness(db_url, config=strict, clock=clock) as eager,
        ManagementClient.open(db_url) as client,
        caplog.at_level(logging.WARNING),
    ):
        for _ in range(200):  # 50 s: the patient runner beats every 20 s, the eager one
            clock.advance(0.25)  # every 0.5 s and sweeps every 0.25 s with a 2 s threshold
            eager.run_until_idle()
            patient.run_until_idle()
        ids = {r["id"] for r in client.list_runners()}
        assert ids == {patient.runner.runner_id, eager.runner.runner_id}
        assert "declared dead" not in caplog.text
        # Silent past its own threshold, it is dead to the strict peer.
        clock.advance(61)
        eager.run_until_idle()
        assert {r["id"] for r in client.list_runners()} == {eager.runner.runner_id}
