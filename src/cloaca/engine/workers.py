"""Daemon worker threads for task bodies.

Daemon threads because a task body that ignores its timeout (a plain ``def`` cannot be
interrupted) or is still running at shutdown must not keep the process alive: its task
execution stays claimed in the database and another runner takes it over.
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
    """Runs submitted calls on daemon threads, starting a new one whenever none is idle.

    Concurrency is bounded by the caller (the executor's slots), so the pool needs no cap
    of its own; threads stay alive and are reused.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread."""
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._threads += 1
                number = self._threads
            else:
                self._idle -= 1  # that idle thread will take this job
        self._queue.put((fn, args))
        if spawn:
            name = f"{self._name}-{number}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

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
            except Exception:  # callers record their own failures: this is a bug
                log.exception("worker job failed", extra={"pool": self._name})
            with self._lock:
                self._idle += 1
