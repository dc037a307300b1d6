"""Running one poll: the in-flight record, the threads sync polls run on, and calling a
poll (sync or async) to capture its outcome.

Kept apart from the scheduler, which decides *when* polls run, and from the recorder
(``trigger_fire.py``), which decides what their outcomes mean for the database.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cloaca.clock import Clock
from cloaca.store.trigger_records import ClaimedPoll
from cloaca.trigger_results import TriggerError, TriggerResult, normalize_poll_result
from cloaca.triggers import TriggerSpec

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """The message recorded for a failed poll (a ``TriggerError`` speaks for itself)."""
    if isinstance(exc, TriggerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@dataclass(eq=False)
class PollRun:
    """One claimed poll: what was claimed, and (once it ran) how it went."""

    claim: ClaimedPoll
    spec: TriggerSpec
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
    timed_out: bool = False
    #: "running" → "done", or "running" → "timed_out" → "zombie_done" (late, discarded).
    state: str = "running"
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        """The trigger's name."""
        return self.claim.trigger_name

    @property
    def fires(self) -> bool:
        """True when the poll ran and returned a fire."""
        return self.error is None and self.result is not None and self.result.is_fire_result()


@dataclass(slots=True)
class PollOutcome:
    """What one poll call produced; applied to its PollRun only if it was not timed out."""

    started_at: datetime
    duration_ms: float = 0.0
    result: TriggerResult | None = None
    error: str | None = None
    timed_out: bool = False

    def apply(self, run: PollRun) -> None:
        """Copy the outcome onto ``run``."""
        run.started_at = self.started_at
        run.duration_ms = self.duration_ms
        run.result = self.result
        run.error = self.error
        run.timed_out = self.timed_out


class PollThreads:
    """A fixed set of daemon threads running sync polls from a queue.

    Lighter than ``ThreadPoolExecutor`` (no future per poll), which matters at thousands
    of polls per second; the outcome travels back through the scheduler, not a future.
    """

    def __init__(self, size: int, body: Callable[[PollRun], None]) -> None:
        self._queue: queue.SimpleQueue[PollRun | None] = queue.SimpleQueue()
        self._body = body
        self._lock = threading.Lock()
        self._surplus = 0  # threads started to stand in for stuck ones
        self._count = 0
        for _ in range(size):
            self._start_thread()

    def _start_thread(self) -> None:
        with self._lock:
            self._count += 1
            name = f"cloaca-poll-{self._count}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def replace_stuck(self) -> None:
        """A poll ran past its timeout and still holds its thread: start a stand-in, so
        hanging polls never starve the others. The pool shrinks back as threads come free."""
        with self._lock:
            self._surplus += 1
        self._start_thread()

    def submit(self, run: PollRun) -> None:
        """Queue ``run`` for the next free thread."""
        self._queue.put(run)

    def shutdown(self) -> None:
        """Let each thread exit once its current poll (if any) returns; do not wait."""
        with self._lock:
            count = self._count
        for _ in range(count):
            self._queue.put(None)

    def _work(self) -> None:
        while (run := self._queue.get()) is not None:
            try:
                self._body(run)
            except Exception:  # the body records user errors itself: this is a bug
                log.exception("trigger poll thread failed", extra={"trigger_name": run.name})
            with self._lock:
                if self._surplus > 0:  # a stuck poll returned: one thread too many now
                    self._surplus -= 1
                    self._count -= 1
                    return


def run_sync(run: PollRun, clock: Clock) -> PollOutcome:
    """Call a ``def`` poll (on the calling thread) and capture what it produced."""
    outcome = PollOutcome(clock.now())
    started = time.perf_counter()
    try:
        spec = run.spec
        value = spec.poll(run.claim.cursor) if spec.takes_cursor else spec.poll()
        outcome.result = normalize_poll_result(value, spec.name)
    except Exception as exc:  # the user's error is the poll's outcome
        outcome.error = describe_error(exc)
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


async def run_async(run: PollRun, clock: Clock, timeout: float) -> PollOutcome:
    """Await an ``async def`` poll with ``timeout`` and capture what it produced."""
    outcome = PollOutcome(clock.now())
    started = time.perf_counter()
    spec = run.spec
    try:
        async with asyncio.timeout(timeout) as scope:
            value = await (spec.poll(run.claim.cursor) if spec.takes_cursor else spec.poll())
        outcome.result = normalize_poll_result(value, spec.name)
    except TimeoutError as exc:
        if scope.expired():  # ours, not a TimeoutError raised by the user's code
            outcome.timed_out = True
            outcome.error = timeout_message(timeout)
        else:
            outcome.error = describe_error(exc)
    except Exception as exc:
        outcome.error = describe_error(exc)
    outcome.duration_ms = (time.perf_counter() - started) * 1000
    return outcome


def timeout_message(timeout: float) -> str:
    """The message recorded for a poll that ran past ``trigger_poll_timeout``."""
    return (
        f"poll did not finish within trigger_poll_timeout={timeout:g}s; a late result is discarded"
    )
