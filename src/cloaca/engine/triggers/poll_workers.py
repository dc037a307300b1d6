"""The daemon threads sync trigger polls run on, woken as few at a time as will do.

A thousand no-op polls a second handed to a queue one by one cost more in waking threads
(a futex wake and two GIL hand-overs each) than the polls themselves. Here the polls of
one start batch join one queue, and threads relay: a thread about to enter a user's poll
wakes another only when no other thread is left to take the rest of the queue. Quick polls
are then drained by one or two threads, while a poll that blocks never holds up the ones
queued behind it: the thread it blocks made sure another one drains. Daemon threads, for
the reason ``engine/workers.py`` gives.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

_Job = tuple[Callable[[Any], None], Any]


class PollWorkers:
    """``size`` threads sharing one queue of ``body(run)`` calls; ``add_stand_in()`` adds a
    thread for one stuck in a poll, and the pool shrinks back when a poll returns."""

    def __init__(self, name: str, size: int) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._jobs: deque[_Job] = deque()
        self._free = 0  # threads outside a user's poll: they look at the queue before waiting
        self._waiting = 0  # threads waiting for work (a subset of _free)
        self._waking = 0  # threads notified that have not taken the lock yet
        self._threads = 0
        self._surplus = 0
        self._stopped = False
        for _ in range(size):
            self._start()

    def _start(self) -> None:
        with self._cond:
            self._threads += 1
            self._free += 1
            name = f"{self._name}-{self._threads}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def submit_all(self, body: Callable[[Any], None], runs: Iterable[Any]) -> None:
        """Queue ``body(run)`` for every run; wake a thread if none will look at the queue."""
        with self._cond:
            self._jobs.extend((body, run) for run in runs)
            self._ensure_taker()

    def add_stand_in(self) -> None:
        """A poll is stuck holding its thread: start another so the queue keeps moving."""
        with self._cond:
            self._surplus += 1
        self._start()

    def shutdown(self) -> None:
        """Let every thread exit once the queue is empty; do not wait."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _ensure_taker(self) -> None:
        """(Under the lock.) With work queued, make sure a thread outside a poll will take
        it: one already between polls, or one woken now."""
        if self._jobs and self._free == self._waiting and not self._waking and self._waiting:
            self._waking += 1
            self._cond.notify()

    def _work(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._jobs:
                    if self._stopped:
                        self._free -= 1
                        self._threads -= 1
                        return
                    self._waiting += 1
                    cond.wait()
                    self._waiting -= 1
                    if self._waking:
                        self._waking -= 1
                body, run = self._jobs.popleft()
                self._free -= 1  # entering a user's poll
                self._ensure_taker()
            try:
                body(run)
            except BaseException:
                # Callers record their own failures, so this is a bug; the thread goes on.
                log.exception("poll job failed", extra={"pool": self._name})
            with cond:
                if self._surplus > 0:  # a stuck poll came free: one thread too many now
                    self._surplus -= 1
                    self._threads -= 1
                    self._ensure_taker()
                    return
                self._free += 1
