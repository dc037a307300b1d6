"""The engine loop: the ONLY place in cloaca that sleeps or waits for wake-ups.

Each part exposes ``tick(now) -> (did_work, next_due)``. The loop ticks every part, and
when none did work it waits until the earliest ``next_due``, a local wake-up (a task
finished, a schedule changed), or the fallback interval, after which it asks the database
whether another process committed (cheap) and, if so, pokes the executor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from cloaca.clock import Clock

log = logging.getLogger(__name__)


class Part(Protocol):
    """A moving part of the engine."""

    def tick(self, now: datetime) -> tuple[bool, datetime | None]: ...


class Loop:
    """Drives the parts on a background thread (or step by step for tests)."""

    def __init__(
        self,
        clock: Clock,
        parts: Sequence[Part],
        fallback_seconds: float,
        external_change: Callable[[], bool],
        stopping: threading.Event,
    ) -> None:
        self._clock = clock
        self.parts = list(parts)
        self._fallback = fallback_seconds
        self._external_change = external_change
        self._stopping = stopping
        self._cond = threading.Condition()
        self._woken = False
        self._thread: threading.Thread | None = None
        self.on_external_change: Callable[[], None] = lambda: None
        # Progress, read by the heartbeat thread: ``rounds`` counts finished rounds, and
        # ``_busy_since`` is the monotonic instant the part now ticking began (None while
        # the loop waits, which is not being stuck however long it lasts).
        self.rounds = 0
        self._busy_since: float | None = None

    def stuck_for(self) -> float:
        """Seconds the loop has spent in one step (one part's tick, or the check for
        other processes' commits) without finishing it; 0 while it waits or is stopped."""
        since = self._busy_since
        return 0.0 if since is None else max(0.0, time.monotonic() - since)

    def wake(self) -> None:
        """Ask the loop to tick again now."""
        with self._cond:
            self._woken = True
            self._cond.notify()

    def tick_all(self, now: datetime) -> tuple[bool, datetime | None]:
        """Tick every part once; a failing part is logged and retried on the next round."""
        did = False
        next_due: datetime | None = None
        for part in self.parts:
            self._busy_since = time.monotonic()  # each part that returns is progress
            try:
                part_did, part_due = part.tick(now)
            except Exception:
                log.exception("engine part failed", extra={"part": type(part).__name__})
                continue
            did = did or part_did
            if part_due is not None and (next_due is None or part_due < next_due):
                next_due = part_due
        self._busy_since = None
        return did, next_due

    def start(self) -> None:
        """Run the loop on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="cloaca-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop thread (the caller sets ``stopping`` first)."""
        self.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._rounds()
        finally:
            self._busy_since = None

    def _rounds(self) -> None:
        while not self._stopping.is_set():
            now = self._clock.now()
            did, next_due = self.tick_all(now)
            self.rounds += 1
            if did:
                continue
            wait = self._fallback
            if next_due is not None:
                wait = max(0.0, min(wait, (next_due - self._clock.now()).total_seconds()))
            with self._cond:
                if not self._woken and not self._stopping.is_set():
                    self._cond.wait(wait)
                woken, self._woken = self._woken, False
            if not woken:
                self._busy_since = time.monotonic()
                try:
                    if self._external_change():
                        self.on_external_change()
                except Exception:
                    log.exception("checking for external changes failed")
                self._busy_since = None
