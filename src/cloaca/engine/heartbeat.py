"""This runner's heartbeat, on its own thread: proof of life that does not depend on how
busy the engine loop is, yet stops when the loop is wedged.

Peers take over the claims of a runner whose heartbeat went stale, so the heartbeat must
say two things: the process is alive (a busy loop on a loaded machine must not look dead,
or task bodies run twice), and its engine loop still moves (a loop stuck in one step
longer than ``stale_claim_threshold_seconds`` never records what it claimed, so its work
should be taken over). The thread beats every ``heartbeat_interval_seconds`` in its own
transaction, unless the loop has been stuck longer than the threshold: then it stops
beating and logs an ERROR until the loop moves again.

Under the Harness (fake clock, manual driving) no thread is started; the harness ticks
:meth:`Heartbeat.tick` with the other parts, as the heartbeat always was.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from cloaca.clock import Clock
from cloaca.config import DefaultRunnerConfig
from cloaca.store.core import Store

log = logging.getLogger(__name__)


class Heartbeat:
    """Refreshes this runner's row in ``cloaca_runners``."""

    def __init__(
        self,
        store: Store,
        runner_id: str,
        config: DefaultRunnerConfig,
        clock: Clock,
        register: Callable[[datetime], None],
        stuck_for: Callable[[], float],
    ) -> None:
        self._store = store
        self._runner_id = runner_id
        self._config = config
        self._clock = clock
        self._register = register
        self._stuck_for = stuck_for
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next: datetime | None = None
        self.wedged = False
        self.beats = 0  # observability: heartbeats written

    def beat(self, now: datetime) -> None:
        """Refresh the heartbeat now; register again if a peer declared this runner dead."""
        stale_after = self._config.stale_claim_threshold_seconds
        if not self._store.runners.heartbeat(self._runner_id, now, stale_after):
            log.warning(
                "runner was declared dead by a peer; registering again",
                extra={"runner_id": self._runner_id},
            )
            self._register(now)
        self.beats += 1

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Manual driving (Harness): beat when the interval has passed on the fake clock.
        Nobody watches a fake clock in real time, so the heartbeat is no reason to wake."""
        if self._next is None or now >= self._next:
            self.beat(now)
            self._next = now + timedelta(seconds=self._config.heartbeat_interval_seconds)
        return False, None

    def start(self) -> None:
        """Beat on a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="cloaca-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (the runner's row is removed by the caller)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._config.heartbeat_interval_seconds):
            self.beat_unless_wedged()

    def beat_unless_wedged(self) -> bool:
        """One beat of the thread: refresh the heartbeat unless the engine loop has been
        stuck longer than the stale threshold. Returns True if it beat."""
        stuck = self._stuck_for()
        threshold = self._config.stale_claim_threshold_seconds
        if stuck > threshold:
            if not self.wedged:
                self.wedged = True
                log.error(
                    "engine loop wedged for %.1fs (stale threshold %gs): heartbeat stopped so "
                    "peers take this runner's work over",
                    stuck,
                    threshold,
                    extra={"runner_id": self._runner_id, "stuck_seconds": stuck},
                )
            return False
        if self.wedged:
            self.wedged = False
            log.warning(
                "engine loop moves again: heartbeat resumed", extra={"runner_id": self._runner_id}
            )
        try:
            self.beat(self._clock.now())
        except Exception:
            # The next beat tries again; a database that stays down makes this runner stale,
            # which is right: it cannot record anything either.
            log.exception("heartbeat failed", extra={"runner_id": self._runner_id})
            return False
        return True
