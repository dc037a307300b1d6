"""The drive of an engine stepped by hand (``cloaca.testing``'s Harness).

Nothing runs or is claimed between two rounds: an attempt claimed in a round (by the
executor's claim or by an outcome batch) waits for the round's end, which runs every
waiting attempt one at a time, chains included, until each has finished or waits in
``defer_until``. A deferred attempt looks at its condition once per round instead of on a
timer, so fake time decides when it goes on. Trigger polls run in the stepping thread and
are recorded by the scheduler's next round.

An attempt still runs on a worker thread (a deferred one must be able to wait without
holding the stepping thread); the stepping thread waits until it has *settled*.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cloaca.engine.aio import AsyncBridge
from cloaca.engine.drive import AsyncPollBody, AttemptBody, PollBody
from cloaca.engine.workers import DaemonWorkers

if TYPE_CHECKING:
    from cloaca.engine.attempts import Attempt
    from cloaca.engine.triggers.polls import PollRun


@dataclass
class _Turn:
    """One attempt in the stepped drive."""

    attempt: Attempt
    body: AttemptBody
    #: Set when the attempt finished or waits in defer_until: the stepping thread goes on.
    settled: threading.Event = field(default_factory=threading.Event)
    #: Set to let a waiting attempt look at its condition once more.
    recheck: threading.Event = field(default_factory=threading.Event)
    waiting: bool = False
    finished: bool = False


class Stepped:
    """Runs attempts and polls only when the engine is stepped."""

    runs_between_rounds = False

    def __init__(self, stopping: threading.Event, aio: AsyncBridge) -> None:
        self._stopping = stopping
        self._aio = aio
        self._workers = DaemonWorkers("cloaca-task")
        self._lock = threading.Lock()
        self._queued: deque[_Turn] = deque()
        self._started: dict[int, _Turn] = {}  # id(attempt) -> turn, until it finished

    def run_attempt(self, body: AttemptBody, attempt: Attempt) -> None:
        with self._lock:
            self._queued.append(_Turn(attempt, body))

    def end_round(self) -> bool:
        """Let each deferred attempt look once more, then run everything queued (what they
        claim on the way included); True if an attempt finished."""
        finished = False
        for turn in self._paused():
            self._go_on(turn, lambda t: t.recheck.set())
            finished = finished or turn.finished
        while True:
            with self._lock:
                if not self._queued:
                    return finished
                turn = self._queued.popleft()
                self._started[id(turn.attempt)] = turn
            self._go_on(turn, lambda t: self._workers.submit(self._body, t))
            finished = finished or turn.finished

    def _paused(self) -> list[_Turn]:
        with self._lock:
            return [turn for turn in self._started.values() if turn.waiting]

    @staticmethod
    def _go_on(turn: _Turn, resume: Callable[[_Turn], None]) -> None:
        """Let ``turn`` run until it settles again."""
        turn.settled.clear()
        turn.waiting = False
        resume(turn)
        turn.settled.wait()

    def _body(self, turn: _Turn) -> None:
        try:
            turn.body(turn.attempt)
        finally:
            with self._lock:
                self._started.pop(id(turn.attempt), None)
            turn.finished = True
            turn.settled.set()

    def pause(self, attempt: Attempt, seconds: float) -> bool:
        with self._lock:
            turn = self._started[id(attempt)]
        turn.recheck.clear()
        turn.waiting = True
        turn.settled.set()
        turn.recheck.wait()
        return self._stopping.is_set()

    def stop(self) -> list[Attempt]:
        with self._lock:
            never = [turn.attempt for turn in self._queued]
            self._queued.clear()
        for turn in self._paused():
            turn.recheck.set()  # it sees the stop and ends
        return never

    def start_poll(self, run: PollRun, sync_body: PollBody, async_body: AsyncPollBody) -> None:
        if run.spec.is_async:
            self._aio.run(async_body(run), None)
        else:
            sync_body(run)

    def poll_stuck(self) -> None:
        """Polls run in the stepping thread: none holds a pool thread."""

    def shutdown(self) -> None:
        self._workers.shutdown()
