"""The testing harness itself: commits made by other connections are seen."""

from __future__ import annotations

import cloaca
from cloaca import Context
from cloaca.testing import Harness


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
