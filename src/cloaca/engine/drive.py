"""How an engine runs user code: task attempts and trigger polls.

The executor and the trigger scheduler hand bodies to a :class:`Drive` and know nothing
else about threads. Two drives exist:

* :class:`Threads`, an engine started on threads (``DefaultRunner``): every claimed attempt
  runs at once on a daemon worker thread, sync polls on a small pool, async bodies on the
  runner's event loop; a task waiting in ``defer_until`` looks at its condition on a timer.
* ``Stepped`` (``engine/stepped.py``), an engine driven by hand on a clock the caller moves
  (``cloaca.testing``): attempts run from the engine's rounds, one at a time, and a
  deferred task looks at its condition once per round.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from cloaca.engine.aio import AsyncBridge
from cloaca.engine.workers import DaemonWorkers

if TYPE_CHECKING:
    from cloaca.engine.attempts import Attempt
    from cloaca.engine.triggers.polls import PollRun

#: Sync polls share this many threads. A poll stuck past its timeout keeps its thread
#: until it returns (a stand-in thread serves the others meanwhile), and its trigger is not
#: polled again until then.
POLL_THREADS = 8

AttemptBody = Callable[["Attempt"], None]
PollBody = Callable[["PollRun"], None]
AsyncPollBody = Callable[["PollRun"], Coroutine[Any, Any, None]]


class Drive(Protocol):
    """Where and when the engine's parts run user code."""

    #: Does anything happen between the engine's rounds? Threads: bodies run and real time
    #: passes, so a ``start()`` with a free slot claims its own first tasks, and the trigger
    #: scheduler claims a little ahead and records finished skips with a later round.
    #: Stepped: nothing runs and the clock moves only when the caller moves it, so work is
    #: claimed in rounds only (an execution stays Pending until the engine is stepped) and
    #: each round finishes what it can at its instant.
    runs_between_rounds: bool

    def run_attempt(self, body: AttemptBody, attempt: Attempt) -> None:
        """Run ``body(attempt)``, a claimed attempt whose slot is reserved."""

    def pause(self, attempt: Attempt, seconds: float) -> bool:
        """Called by a task between two looks at its ``defer_until`` condition; returns
        True when the engine is stopping."""

    def end_round(self) -> bool:
        """The executor ends a round: run what waits for one; True if something ran."""

    def stop(self) -> list[Attempt]:
        """The engine stops: wake paused attempts (they see the stop); returns the attempts
        handed over that will never start (they stay claimed)."""

    def start_poll(self, run: PollRun, sync_body: PollBody, async_body: AsyncPollBody) -> None:
        """Run one claimed trigger poll: ``sync_body(run)`` or ``async_body(run)`` by the
        trigger's kind. Either hands the finished run back to the scheduler."""

    def poll_stuck(self) -> None:
        """A sync poll ran past its timeout and still holds its thread."""

    def shutdown(self) -> None:
        """Let the threads go once their current job is done; do not wait."""


class Threads:
    """The drive of a started engine: everything on threads, at once."""

    runs_between_rounds = True

    def __init__(self, stopping: threading.Event, aio: AsyncBridge) -> None:
        self._stopping = stopping
        self._aio = aio
        self._tasks = DaemonWorkers("cloaca-task")
        self._polls: DaemonWorkers | None = None

    def run_attempt(self, body: AttemptBody, attempt: Attempt) -> None:
        self._tasks.submit(body, attempt)

    def pause(self, attempt: Attempt, seconds: float) -> bool:
        return self._stopping.wait(seconds)

    def end_round(self) -> bool:
        return False  # nothing waits for a round: attempts run as soon as they are claimed

    def stop(self) -> list[Attempt]:
        return []  # paused attempts wake on the stopping event

    def start_poll(self, run: PollRun, sync_body: PollBody, async_body: AsyncPollBody) -> None:
        if run.spec.is_async:
            self._aio.submit(async_body(run))
            return
        if self._polls is None:
            self._polls = DaemonWorkers("cloaca-poll", POLL_THREADS)
        self._polls.submit(sync_body, run)

    def poll_stuck(self) -> None:
        if self._polls is not None:
            self._polls.add_stand_in()

    def shutdown(self) -> None:
        self._tasks.shutdown()
        if self._polls is not None:
            self._polls.shutdown()
