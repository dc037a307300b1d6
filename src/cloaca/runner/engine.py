"""The engine of one runner: the executor, recovery sweeps, the trigger and cron schedulers
and the heartbeat, ticked by one loop.

A runner starts it on threads (:meth:`Engine.start`). Tests drive it by hand instead, on a
clock they move themselves: :meth:`Engine.step` runs one round of everything due at an
instant, :meth:`Engine.run_until_idle` rounds until nothing more is (``cloaca.testing``'s
Harness is built on these two and nothing else). Which of the two it is decides only the
drive the parts hand user code to (``engine/drive.py``, ``engine/stepped.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from cloaca.clock import Clock
from cloaca.config import DefaultRunnerConfig
from cloaca.engine.aio import AsyncBridge
from cloaca.engine.cron import CronScheduler
from cloaca.engine.drive import Threads
from cloaca.engine.executor import Claim, Executor
from cloaca.engine.heartbeat import Heartbeat
from cloaca.engine.loop import Loop, Part
from cloaca.engine.planner import CreateExecution
from cloaca.engine.recovery import Recovery
from cloaca.engine.retention import Pruner
from cloaca.engine.shape import Shape
from cloaca.engine.stepped import Stepped
from cloaca.engine.triggers.fire import TriggerRecorder
from cloaca.engine.triggers.scheduler import TriggerScheduler
from cloaca.errors import OperationError
from cloaca.runner.waiters import Waiters
from cloaca.store.core import Store
from cloaca.store.db import HEARD_SAFETY_NET_SECONDS
from cloaca.store.records import ExecutionStatus

#: With notifications arriving (PostgreSQL LISTEN), how often the engine still checks the
#: database's version for commits it was not told of.
log = logging.getLogger(__name__)

EndExecution = Callable[[str, ExecutionStatus, str], bool]


class Engine:
    """Everything that executes and schedules in one runner process.

    Built in two steps, because the services and the engine call each other: the
    constructor makes the executor (the services start work on it), :meth:`assemble` the
    parts that call back into the services (recovery, schedulers)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: DefaultRunnerConfig,
        runner_id: str,
        *,
        stepped: bool,
    ) -> None:
        """``stepped``: driven by hand through :meth:`step` (no thread is ever started),
        instead of :meth:`start`."""
        self._store = store
        self.clock = clock
        self._config = config
        self._runner_id = runner_id
        self._stepped = stepped
        self.waiters = Waiters()
        self.stopping = threading.Event()
        self.aio = AsyncBridge()
        drive = Stepped(self.stopping, self.aio) if stepped else Threads(self.stopping, self.aio)
        self.executor = Executor(
            store,
            clock,
            runner_id,
            config,
            self.aio,
            on_finished=self._finished,
            wake=self._wake_loop,
            stopping=self.stopping,
            drive=drive,
        )
        self.trigger_scheduler: TriggerScheduler | None = None
        self.cron_scheduler: CronScheduler | None = None
        self._last_data_version = store.data_version()
        self._next_version_check = 0.0
        self.loop = Loop(
            clock,
            [],
            config.scheduler_poll_interval_ms / 1000,
            self._external_change,
            self.stopping,
        )
        self.loop.on_external_change = self.executor.external_change
        self._recovery: Recovery | None = None
        self.heartbeat: Heartbeat | None = None

    def assemble(
        self,
        end_execution: EndExecution,
        shapes: Callable[[str], Shape],
        create_execution: CreateExecution,
        trigger_recorder: TriggerRecorder,
    ) -> None:
        """Build the parts that call back into the services and register this runner."""
        config = self._config
        recovery = self._recovery = Recovery(
            self._store,
            self._runner_id,
            config,
            on_requeued=self.executor.poke,
            end_execution=end_execution,
            shape_for=self.executor.shapes.for_version,
            on_repaired=self._repaired,
        )
        parts: list[Part] = [recovery, self.executor]
        if config.enable_trigger_scheduling:
            self.trigger_scheduler = TriggerScheduler(
                store=self._store,
                clock=self.clock,
                config=config,
                runner_id=self._runner_id,
                drive=self.executor.drive,
                recorder=trigger_recorder,
                wake_loop=self._wake_loop,
            )
            parts.append(self.trigger_scheduler)
        if config.enable_cron_scheduling:
            self.cron_scheduler = CronScheduler(
                self._store,
                config,
                self._runner_id,
                shape_of=shapes,
                create_execution=create_execution,
                on_fired=self.wake,
            )
            parts.append(self.cron_scheduler)
        parts.append(Pruner(self._store, config))
        self.loop.parts = parts
        self.heartbeat = Heartbeat(
            self._store,
            self._runner_id,
            config,
            self.clock,
            register=recovery.register,
            stuck_for=self.loop.stuck_for,
        )
        recovery.register(self.clock.now())

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run on threads: the loop, the heartbeat and (PostgreSQL) the LISTEN connection."""
        assert self.heartbeat is not None, "assemble() first"
        # A no-op on a database without notifications (SQLite notices commits by polling).
        self._store.db.listen(self._notified, on_reconnect=self._listener_reconnected)
        self.heartbeat.start()
        self.loop.start()

    @property
    def waits_block(self) -> bool:
        """Driven by hand: nothing runs unless the caller steps the engine."""
        return self._stepped

    def step(self, now: datetime | None = None) -> tuple[bool, datetime | None]:
        """One round by hand at ``now`` (default: the clock's now): look for other
        processes' commits, beat, tick every part. Returns (did work, next due instant)."""
        assert self.heartbeat is not None, "assemble() first"
        now = self.clock.now() if now is None else now
        if self._external_change():
            self.executor.external_change()  # another connection committed
        self.heartbeat.tick(now)
        return self.loop.tick_all(now)

    def run_until_idle(self, max_rounds: int = 100_000) -> int:
        """Step at the clock's current instant until a round does nothing; returns rounds."""
        for rounds in range(1, max_rounds + 1):
            did, _ = self.step()
            if not did:
                return rounds
        raise OperationError(
            f"engine still busy after {max_rounds} rounds (a loop that never settles?)"
        )

    def poll_triggers(self, now: datetime | None = None) -> bool:
        """The trigger part alone, by hand, at ``now`` (default: the clock's now): every
        due trigger polls and what it returns is recorded, fires included; nothing runs the
        executions they start. True if a trigger was polled or recorded."""
        scheduler = self.trigger_scheduler
        if scheduler is None:
            return False
        now = self.clock.now() if now is None else now
        polled = False
        for _ in range(1000):  # poll, record the fires, record the rest: three at most
            did, _due = scheduler.tick(now)
            if not did:
                return polled
            polled = True
        raise OperationError("the trigger scheduler is still busy after 1000 rounds")

    # -- what the services tell the engine (executions.LocalEngine) ------------------------

    def wake(self) -> None:
        """Something in this process may have made work Ready: claim on the next round."""
        self.executor.poke()
        self.loop.wake()

    def roots_left_ready(self) -> None:
        """A start here left roots Ready (no slot was free for it): claim them. The loop is
        woken only if a slot is free now; otherwise the transaction of the next attempt
        that finishes claims them (a runner under a burst of starts would run a whole
        round per start, for nothing)."""
        self.executor.poke()
        if self.executor.has_free_slot():
            self.loop.wake()

    def execution_created(self, now: datetime) -> None:
        if self._recovery is not None:
            self._recovery.execution_created(now)

    def ended(self, execution_id: str, status: ExecutionStatus) -> None:
        self.executor.cancel_attempts(execution_id)
        self._finished(execution_id, status)

    def reserve(self, wanted: int) -> int:
        return self.executor.reserve(wanted)

    def adopt(self, claimed: list[Claim], reserved: int) -> None:
        self.executor.adopt(claimed, reserved)

    def triggers_changed(self, trigger_name: str | None = None) -> None:
        """A trigger schedule changed in this process: re-read it now."""
        if self.trigger_scheduler is not None:
            self.trigger_scheduler.poke(trigger_name)
        self.loop.wake()

    def cron_changed(self) -> None:
        """A cron schedule changed in this process: re-read the next slot now."""
        if self.cron_scheduler is not None:
            self.cron_scheduler.mark_dirty()
            self.wake()

    # -- plumbing ---------------------------------------------------------------------------

    def _wake_loop(self) -> None:
        """Tick again now (the executor decides itself whether to claim)."""
        self.loop.wake()

    def _external_change(self) -> bool:
        # While notifications arrive, they announce other processes' work: the version
        # check is a safety net, and with PostgreSQL's WAL position (which our own commits
        # move too) a frequent one would only cost round trips and empty claims.
        if self._store.db.hearing:
            now = time.monotonic()
            if now < self._next_version_check:
                return False
            self._next_version_check = now + HEARD_SAFETY_NET_SECONDS
        version = self._store.data_version()
        changed = version != self._last_data_version
        self._last_data_version = version
        return changed

    def _notified(self, payload: str) -> None:
        """Another process committed something we care about (PostgreSQL NOTIFY)."""
        if payload.startswith("finished:"):
            self._finished(payload.removeprefix("finished:"))
        elif payload.startswith("triggers:"):
            if payload != f"triggers:{self._runner_id}":  # this runner knows its own changes
                self.triggers_changed()
        elif payload != f"ready:{self._runner_id}":  # work this runner made Ready, it knows of
            self.executor.external_change()
            self.loop.wake()

    def _listener_reconnected(self) -> None:
        """The LISTEN connection was lost and is back: notifications sent meanwhile are
        gone, so look at the database once (new work) and let every waiter re-read."""
        self.executor.external_change()
        self.loop.wake()
        self.waiters.wake_all()

    def _repaired(self, execution_id: str, ended: ExecutionStatus | None) -> None:
        """The recovery sweep re-planned a stalled execution."""
        if ended is not None:
            self._finished(execution_id, ended)
        self.wake()

    def _finished(self, execution_id: str, status: ExecutionStatus | None = None) -> None:
        self.waiters.finished(execution_id)

    # -- lifecycle --------------------------------------------------------------------------

    def shutdown(self, timeout: float) -> None:
        """Stop schedulers and the loop, wait (bounded) for running tasks, stop beating."""
        if self.trigger_scheduler is not None:
            self.trigger_scheduler.shutdown()
        self.stopping.set()
        self.loop.stop()
        self.executor.shutdown(timeout)
        if len(self.executor.unrecorded):
            # A last try for outcomes the database refused so far: what is still unrecorded
            # stays claimed by this runner, which peers re-queue once its row is gone.
            self.executor.unrecorded.retry_due(self.clock.now(), all_of_them=True)
        # Beat until the in-flight attempts are settled: their claims stay ours till then.
        if self.heartbeat is not None:
            self.heartbeat.stop()

    def close(self) -> None:
        """Release the event loop thread (after :meth:`shutdown`)."""
        self.aio.close()
