"""Running one poll: the in-flight record, the threads sync polls run on, and calling a
poll (sync or async) to capture its outcome.

Kept apart from the scheduler, which decides *when* polls run, and from the recorder
(``fire.py``), which decides what their outcomes mean for the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloaca.clock import Clock
from cloaca.engine.aio import describe, raised_by_user
from cloaca.store.trigger_records import ClaimedPoll
from cloaca.triggers.definition import TriggerSpec
from cloaca.triggers.results import TriggerError, TriggerResult, normalize_poll_result

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """The message recorded for a failed poll (a ``TriggerError`` speaks for itself)."""
    if isinstance(exc, TriggerError):
        return str(exc)
    return describe(exc)


@dataclass(eq=False, slots=True)
class PollRun:
    """One claimed poll: what was claimed, and (once it ran) how it went."""

    claim: ClaimedPoll
    spec: TriggerSpec
    #: The trigger's name (the claim's; read many times per poll, so kept at hand).
    name: str
    due: datetime
    interval: timedelta
    deadline: datetime
    claimed_at: datetime
    next_due: datetime
    #: When a poll still running gets its lease extended past ``next_due`` (half-way).
    extend_at: datetime
    extended: bool = False
    started_at: datetime | None = None
    duration_ms: float = 0.0
    result: TriggerResult | None = None
    error: str | None = None
    #: The exception behind ``error`` (logged with its traceback), if the poll raised.
    exc: BaseException | None = None
    timed_out: bool = False
    #: "running" → "done", or "running" → "timed_out" → "zombie_done" (late, discarded).
    #: Changed under the scheduler's lock (one for every run: a lock each cost more to make
    #: than it was ever waited for).
    state: str = "running"
    #: True when the poll ran and returned a fire (kept with ``result`` and ``error``, which
    #: set it: asked twice per poll, a thousand polls a second).
    fires: bool = False


@dataclass(slots=True)
class PollOutcome:
    """What one poll call produced; applied to its PollRun only if it was not timed out."""

    started_at: datetime
    duration_ms: float = 0.0
    result: TriggerResult | None = None
    error: str | None = None
    exc: BaseException | None = None
    timed_out: bool = False

    def apply(self, run: PollRun) -> None:
        """Copy the outcome onto ``run``."""
        run.started_at = self.started_at
        run.duration_ms = self.duration_ms
        result = run.result = self.result
        error = run.error = self.error
        run.exc = self.exc
        run.timed_out = self.timed_out
        run.fires = error is None and result is not None and result.is_fire_result()


def run_sync(run: PollRun, clock: Clock) -> PollOutcome:
    """Call a ``def`` poll (on the calling thread) and capture what it produced."""
    outcome = PollOutcome(clock.now())
    started = time.perf_counter()
    try:
        spec = run.spec
        value = spec.poll(run.claim.cursor) if spec.takes_cursor else spec.poll()
        outcome.result = normalize_poll_result(value, spec.name)
    except BaseException as exc:  # the user's error is the poll's outcome, even SystemExit
        outcome.error, outcome.exc = describe_error(exc), exc
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


async def run_async(run: PollRun, clock: Clock, timeout: float) -> PollOutcome:
    """Await an ``async def`` poll with ``timeout`` and capture what it produced."""
    outcome = PollOutcome(clock.now())
    started = time.perf_counter()
    spec = run.spec
    task = asyncio.current_task()
    try:
        async with asyncio.timeout(timeout) as scope:
            value = await (spec.poll(run.claim.cursor) if spec.takes_cursor else spec.poll())
        outcome.result = normalize_poll_result(value, spec.name)
    except TimeoutError as exc:
        if scope.expired():  # ours, not a TimeoutError raised by the user's code
            outcome.timed_out = True
            outcome.error = timeout_message(timeout)
        else:
            outcome.error, outcome.exc = describe_error(exc), exc
    except BaseException as exc:
        # SystemExit or KeyboardInterrupt leaving this task would stop the event loop that
        # every async task and poll of the runner shares: it is this poll's error instead.
        if not raised_by_user(exc, task):
            raise
        outcome.error, outcome.exc = describe_error(exc), exc
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


def timeout_message(timeout: float) -> str:
    """The message recorded for a poll that ran past ``trigger_poll_timeout``."""
    return (
        f"poll did not finish within trigger_poll_timeout={timeout:g}s; a late result is discarded"
    )
