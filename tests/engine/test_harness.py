"""The testing harness itself: fake time is cheap, and other connections' commits are seen."""

from __future__ import annotations

import time

import cloaca
from cloaca import Context
from cloaca.testing import FakeClock, Harness


def test_a_fake_day_takes_well_under_a_second() -> None:
    with Harness() as h:
        started = time.perf_counter()
        h.advance(86_400)
        assert time.perf_counter() - started < 2.0
        assert h.clock.now() == FakeClock().now().replace(day=2)


def test_work_committed_by_another_connection_is_picked_up(db_url: str) -> None:
    ran: list[str] = []

    @cloaca.task(id="work")
    def work(context: Context) -> None:
        ran.append(context.get("who"))

    cloaca.workflow("shared", [work])
    with Harness(db_url) as worker, Harness(db_url) as client:
        worker.run_until_idle()  # the worker has looked once and found nothing
        execution_id = client.runner.start("shared", {"who": "client"})
        worker.run_until_idle()
        assert ran == ["client"]
        assert worker.runner.get_execution(execution_id).status == "Completed"
