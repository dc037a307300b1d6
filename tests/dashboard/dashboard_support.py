"""A database filled by a real runner (a DefaultRunner driven by hand on a fake clock that
ends near the wall clock): workflows that complete, retry and fail, a trigger whose
evaluation log has every outcome, a cron schedule with history. The dashboard tests and
the screenshots look at it."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

import cloaca
from cloaca import Context, TriggerResult
from cloaca.dashboard.app import create_app
from cloaca.dashboard.server import in_background
from cloaca.runner.management import ManagementClient
from cloaca.testing import FakeClock, Harness


@dataclass
class Filled:
    """What the filler made, for the tests to look for."""

    completed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    running: str = ""
    cron_schedule_id: str = ""


TRIGGER = "inbox_watcher"


@dataclass
class Site:
    """A dashboard served over a filled database: its client, its base URL, what is in it."""

    client: ManagementClient
    base: str
    made: Filled


def fill(url: str) -> Filled:
    """Fill the (empty) database at ``url`` with a real runner (shut down afterwards)."""
    clock = FakeClock(datetime.now(UTC) - timedelta(minutes=20))
    made = Filled()
    pace = [True]

    def busy(seconds: float) -> None:
        # The fake clock stands for the time a task's work takes, while the test runs
        # executions one by one (not inside Harness.advance, which owns the clock then).
        if pace[0]:
            clock.advance(seconds)

    @cloaca.task(id="extract")
    def extract(context: Context) -> None:
        busy(1.5)
        context.insert("rows", 120)

    @cloaca.task(id="transform", dependencies=["extract"])
    def transform(context: Context) -> None:
        busy(3.0)
        if context.get("fail"):
            raise ValueError(f"cannot parse row 17 of {context.get('file', 'input.csv')!r}")

    @cloaca.task(id="load", dependencies=["transform"])
    def load(context: Context) -> None:
        busy(2.0)

    @cloaca.task(id="report", dependencies=["transform"])
    def report(context: Context) -> None:
        busy(0.5)

    cloaca.workflow("nightly_etl", [extract, transform, load, report], "Extract, load, report")

    @cloaca.task(id="process_file")
    def process_file(context: Context) -> None:
        busy(0.8)

    cloaca.workflow("file_processing", [process_file], "Process one file from the inbox")

    outcomes = itertools.cycle(["skip", "fire", "error", "fire", "skip"])
    files = itertools.count(1)

    @cloaca.trigger(name=TRIGGER, on="file_processing", poll_interval="1m")
    def inbox_watcher() -> TriggerResult:
        outcome = next(outcomes)
        if outcome == "error":
            raise ConnectionError("inbox share not mounted")
        if outcome == "skip":
            return TriggerResult.skip()
        return TriggerResult.fire(Context({"file": f"data_{next(files)}.csv"}))

    h = Harness(url, clock=clock)
    try:
        for i in range(4):
            made.completed.append(h.execute("nightly_etl", {"file": f"in_{i}.csv"}).execution_id)
        made.failed.append(h.execute("nightly_etl", {"fail": True}).execution_id)
        made.cron_schedule_id = h.runner.register_cron_workflow("nightly_etl", "*/5 * * * *")
        pace[0] = False
        h.advance(timedelta(minutes=12))
        made.running = h.runner.start("nightly_etl", {"file": "late.csv"})
    finally:
        h.close()
    return made


def fill_small(url: str) -> str:
    """A workflow ``solo``, a trigger on it (``watcher``, never due in a test) and an hourly
    cron schedule, recorded by a runner that then shuts down; returns the cron schedule id.
    For the action tests, which change what they find."""

    @cloaca.task(id="only")
    def only(context: Context) -> None:
        context.insert("done", True)

    cloaca.workflow("solo", [only])
    cloaca.trigger(name="watcher", on="solo", poll_interval="1h")(lambda: TriggerResult.skip())
    with Harness(url) as h:
        return h.runner.register_cron_workflow("solo", "0 * * * *")


@contextmanager
def dashboard(url: str, **options: Any) -> Iterator[tuple[ManagementClient, str]]:
    """``(client, base URL)``: the dashboard over a ManagementClient on ``url``, served on
    a free local port while the block runs."""
    with ManagementClient.open(url) as client:
        options.setdefault("refresh_seconds", 0)
        app = create_app(client, **options)
        with in_background(app) as base:
            yield client, base


def get(base: str, path: str) -> httpx.Response:
    """GET a page (cookies kept per call: none)."""
    return httpx.get(base + path, timeout=10)


def post_action(base: str, page: str, action: str, **fields: str) -> httpx.Response:
    """Load ``page`` (for its CSRF cookie and token), then POST ``action`` with it; returns
    the page the redirect leads to."""
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as http:
        form = http.get(page).text
        token = re.search(r'name="csrf" value="([^"]+)"', form)
        assert token, f"no CSRF token in {page}"
        return http.post(action, data={"csrf": token.group(1), **fields})
