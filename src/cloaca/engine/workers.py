"""Daemon worker threads for task bodies and sync trigger polls.

Daemon threads because a body that ignores its timeout (a plain ``def`` cannot be
interrupted) or is still running at shutdown must not keep the process alive: its work
stays claimed in the database and is taken over elsewhere. Lighter than
``ThreadPoolExecutor`` (no future per job), which matters at thousands of jobs a second.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_Job = tuple[Callable[..., Any], tuple[Any, ...]]


class DaemonWorkers:
    """Runs submitted calls on reused daemon threads.

    ``size=None``: a thread starts whenever none is idle (the caller bounds concurrency,
    as the executor's slots do). ``size=n``: n threads share the queue; ``add_stand_in()``
    adds one more for a thread stuck in a job, and the pool shrinks back when a job ends.
    """

    def __init__(self, name: str, size: int | None = None) -> None:
        self._name = name
        self._grows = size is None
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._surplus = 0
        for _ in range(size or 0):
            self._start()
        self._idle = size or 0

    def _start(self) -> None:
        with self._lock:
            self._threads += 1
            name = f"{self._name}-{self._threads}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread."""
        if not self._grows:  # a fixed pool counts no idle threads: no lock per job
            self._queue.put((fn, args))
            return
        with self._lock:
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1  # an idle thread will take this job
        self._queue.put((fn, args))
        if spawn:
            self._start()

    def add_stand_in(self) -> None:
        """A job is stuck holding its thread: start another so the queue keeps moving."""
        with self._lock:
            self._surplus += 1
        self._start()

    def shutdown(self) -> None:
        """Let every thread exit once it is done with its current job; do not wait."""
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._queue.put(None)

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:
                # Callers record their own failures, so this is a bug. Even a SystemExit
                # must not end the thread: the pool would lose a worker for good, and
                # nothing asks a daemon thread to exit that way.
                log.exception("worker job failed", extra={"pool": self._name})
            if not self._grows and not self._surplus:
                # A fixed pool counts no idle threads: it takes the lock only to shrink
                # after a stand-in (read unlocked: one seen a job late, shrinks it a job
                # later).
                continue
            with self._lock:
                if self._surplus > 0:  # a stuck job came free: one thread too many now
                    self._surplus -= 1
                    self._threads -= 1
                    return
                self._idle += 1
