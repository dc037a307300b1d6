"""Trigger scheduler: due triggers → claim → poll (concurrently) → record.

Each enabled schedule whose trigger is registered in this process is polled on its own
interval (never more often than ``trigger_base_poll_interval``); ``trigger_view.py`` keeps
the in-memory view of what is due when. ``tick`` never waits: it records the polls that
finished (or ran past ``trigger_poll_timeout``) and claims what is due (a conditional
UPDATE of each schedule's ``next_poll_at`` plus a lease) in ONE write transaction, then
hands the polls to the engine's drive (a small thread pool for sync polls and the runner's
event loop for async ones; see ``engine/drive.py``).

Due times are fixed-rate (``due + interval``; after a stall the next poll is
``now + interval``, never a burst of catch-up polls). When the earliest poll is due, every
poll due within the claim window (a tenth of the base interval) is claimed with it, and
the finished polls held over are recorded in the same transaction, so a thousand triggers
cost about ten transactions per second rather than thousands. Claimed polls start on time:
each with every poll due within a few milliseconds of it (``view.BATCH_WINDOW``).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from operator import itemgetter

from cloaca.clock import Clock
from cloaca.config import DefaultRunnerConfig
from cloaca.engine.drive import Drive
from cloaca.engine.triggers.fire import Recorded, TriggerRecorder
from cloaca.engine.triggers.polls import (
    PollOutcome,
    PollRun,
    run_async,
    run_sync,
    timeout_message,
)
from cloaca.engine.triggers.view import Picked, ScheduleView
from cloaca.store.core import Store
from cloaca.store.triggers import won_polls

log = logging.getLogger(__name__)

#: Finished polls wait this long at most to be recorded with the next claim (which comes
#: every claim window while many triggers are due), rather than in a transaction of their
#: own. Their trigger is not claimed again before they are.
RECORD_WITHIN = timedelta(milliseconds=300)


class TriggerScheduler:
    """The engine part that polls this process's triggers."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        config: DefaultRunnerConfig,
        runner_id: str,
        drive: Drive,
        recorder: TriggerRecorder,
        wake_loop: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._config = config
        self._runner_id = runner_id
        self._recorder = recorder
        self._wake_loop = wake_loop
        self._drive = drive
        # Claim a window ahead, and hold finished skips for the next claim, only on a drive
        # that runs polls between rounds (threads). An engine stepped by hand polls, then
        # records, round by round at the instants its clock is moved to.
        self._ahead = drive.runs_between_rounds
        self._inflight: dict[str, PollRun] = {}
        self._zombies: set[str] = set()  # timed out, but their poll has not returned yet
        self._done: deque[PollRun] = deque()  # appended by poll threads, drained by tick
        self._held_over: list[PollRun] = []  # finished, to record on the next tick
        self._held_due: datetime | None = None  # the earliest next_due among _held_over
        self._record_by: datetime | None = None  # when held-over polls must be recorded
        self._pending: list[tuple[datetime, PollRun]] = []  # claimed ahead, not started
        # No poll in flight reaches its timeout or lease extension before _scan_at, so the
        # rounds before it need not look at each of them; _drain_at holds when to wake for
        # each (a finished skip does not wake the loop).
        self._scan_at: datetime | None = None
        self._drain_at: list[tuple[datetime, int, PollRun]] = []
        self._seq = itertools.count()
        self._view = ScheduleView(store, config, runner_id, self._inflight, self._zombies)
        self._lock = threading.Lock()
        self._states = threading.Lock()  # every PollRun.state change, on any thread
        self._stopped = False

    # -- the loop's view --------------------------------------------------------------------

    def poke(self, trigger_name: str | None = None) -> None:
        """Something changed locally: re-read ``trigger_name``'s schedule (or all of them)."""
        self._view.poke(trigger_name)

    @property
    def _base(self) -> timedelta:
        return timedelta(seconds=self._config.trigger_base_poll_interval)

    def tick(self, now: datetime) -> tuple[bool, datetime | None]:
        """Record finished polls, claim and start due ones; returns (did_work, next_due)."""
        with self._lock:
            if self._stopped:
                return False, None
            scan = self._scan_at is not None and now >= self._scan_at
            finished = self._drain(now, scan)
            if scan:
                self._extend_leases(now)
                self._scan_at = self._earliest_check()
            fires: list[PollRun] = []
            plain, self._held_over = self._held_over, []  # held over: already sorted out
            plain_due, self._held_due = self._held_due, None
            for run in finished:
                if run.fires:
                    fires.append(run)
                else:
                    plain.append(run)
                    if plain_due is None or run.next_due < plain_due:  # _earlier, inline
                        plain_due = run.next_due
            fired: list[Recorded] = []
            if fires:
                fired, leftover = self._recorder.record_fires(fires, now)
                for run in leftover:
                    plain.append(run)
                    plain_due = _earlier(plain_due, run.next_due)
            if self._apply(fired):
                # Let the executor claim the new executions' first tasks before anything
                # else: the loop ticks again at once because this tick did work, and the
                # rest is recorded then.
                self._hold(plain, plain_due, now)
                self._start_pending(now)
                return True, now
            self._view.refresh_if_needed(now)
            picked = self._view.pick(now, self._view.claim_ahead() if self._ahead else None)
            wrote = False
            if picked or self._must_record(plain_due, now):
                self._record_by = None
                self._write(now, plain, picked)
                wrote = True
            else:
                self._hold(plain, plain_due, now)
            self._start_pending(now)
            return wrote or (not self._ahead and bool(finished)), self._next_due(now)

    def _hold(self, plain: list[PollRun], plain_due: datetime | None, now: datetime) -> None:
        """Record ``plain`` (the earliest next due at ``plain_due``) later, with the next
        claim (one transaction for both)."""
        if plain:
            self._held_over.extend(plain)
            self._held_due = _earlier(self._held_due, plain_due)
            if self._record_by is None:
                self._record_by = now + RECORD_WITHIN

    def _must_record(self, plain_due: datetime | None, now: datetime) -> bool:
        """Whether finished polls (the earliest next due at ``plain_due``, None if there
        are none) are recorded now rather than with the next claim: held long enough, or
        one's next poll is about to be claimed (a poll in flight is not)."""
        if plain_due is None:
            return False
        if not self._ahead or (self._record_by is not None and now >= self._record_by):
            return True
        return plain_due <= now + self._view.claim_ahead()

    def _start_pending(self, now: datetime) -> bool:
        """Start the polls claimed ahead once the earliest is due, with every one due within
        the start window of it."""
        pending = self._pending
        if not pending or pending[0][0] > now:
            return False
        horizon = now + self._view.start_window()
        count = 0
        while count < len(pending) and pending[count][0] <= horizon:
            count += 1
        starting, self._pending = pending[:count], pending[count:]
        deadline = now + timedelta(seconds=self._config.trigger_poll_timeout)
        start_poll = self._drive.start_poll
        sync_body, async_body = self._thread_body, self._async_body
        for _, run in starting:
            run.deadline = deadline
            start_poll(run, sync_body, async_body)
        return True

    def shutdown(self) -> None:
        """Stop polling: no new claims, late results dropped, this runner's leases released."""
        with self._lock:
            self._stopped = True
        try:
            self._store.triggers.release_leases(self._runner_id)
        except Exception:
            log.exception("releasing trigger poll leases failed")

    def _next_due(self, now: datetime) -> datetime | None:
        earliest = self._view.earliest()
        candidates = [earliest] if earliest is not None else []
        for at in (self._record_by, self._scan_at, self._pending[0][0] if self._pending else None):
            if at is not None:
                candidates.append(at)
        # A finished skip does not wake the loop: wake a claim window before its next due
        # instant, to record it and then claim it on time (or, that passed, at the instant).
        drain_at, inflight = self._drain_at, self._inflight
        while drain_at:
            at, _, run = drain_at[0]
            current = inflight.get(run.name) is run  # else recorded already: a stale entry
            if current and at > now:
                candidates.append(at)
                break
            heapq.heappop(drain_at)
            if current and at < run.next_due and run.next_due > now:
                heapq.heappush(drain_at, (run.next_due, next(self._seq), run))
        return min(candidates, default=None)

    def _earliest_check(self) -> datetime | None:
        """The earliest timeout or lease extension of the polls in flight."""
        soonest: datetime | None = None
        for run in self._inflight.values():
            if run.state != "running":
                continue
            due = run.deadline if run.extended else min(run.deadline, run.extend_at)
            if soonest is None or due < soonest:
                soonest = due
        return soonest

    # -- claiming and starting polls --------------------------------------------------------

    def _write(
        self,
        now: datetime,
        plain: Sequence[PollRun],
        picked: Sequence[Picked],
    ) -> None:
        """Record ``plain`` and claim ``picked`` in one transaction, then start the polls."""
        timeout = timedelta(seconds=self._config.trigger_poll_timeout)
        try:
            with self._store.write() as tx:
                recorded = self._recorder.record_plain(tx, plain, now) if plain else []
                claiming = self._store.triggers.claim_polls_later(tx, picked, self._runner_id, now)
            won = won_polls(claiming)
        except Exception:
            log.exception("trigger scheduler transaction failed; retrying in one base interval")
            for run in plain:
                self._inflight.pop(run.name, None)
                self._view.poke(run.name)
            for p in picked:
                self._view.retry(p.name, now + self._base)  # not at once: no spinning on a bad DB
            return
        self._apply(recorded)
        starts: list[tuple[datetime, PollRun]] = []
        ahead = self._view.claim_ahead()
        deadline = now + timeout
        inflight, drain_at, seq = self._inflight, self._drain_at, self._seq
        scan_at = self._scan_at
        for p in picked:
            claimed = won.get(p.schedule_id)
            if claimed is None:
                # Another runner took it, or it was disabled or changed: re-read the row
                # on the next tick instead of guessing.
                self._view.lost(p.name)
                continue
            self._view.claimed(p)
            run = PollRun(
                claimed,
                p.spec,
                p.name,
                p.due,
                p.interval,
                deadline,  # deadline, claimed_at, next_due, extend_at: positional is faster
                now,
                p.next,
                now + (p.next - now) / 2,
            )
            inflight[p.name] = run
            starts.append((p.start_at, run))
            check = min(deadline, run.extend_at)
            if scan_at is None or check < scan_at:
                scan_at = check
            heapq.heappush(drain_at, (p.next - ahead, next(seq), run))
        self._scan_at = scan_at
        # Started by tick, on time: the earliest is due, the rest may be up to the claim
        # window ahead.
        self._pending.extend(starts)
        self._pending.sort(key=itemgetter(0))

    def _thread_body(self, run: PollRun) -> None:
        self._complete(run, run_sync(run, self._clock))

    async def _async_body(self, run: PollRun) -> None:
        self._complete(run, await run_async(run, self._clock, self._config.trigger_poll_timeout))

    def _complete(self, run: PollRun, outcome: PollOutcome) -> None:
        """Called on the poll's thread: hand the finished run to the loop.

        A run the loop already timed out keeps its timeout record; this late outcome is
        dropped and only frees the trigger for its next poll. Waking the loop for each of a
        thousand finishing skips would cost more than the polls, so only a fire (latency
        matters), a late poll or a returning zombie wakes it; the rest is recorded by the
        next tick, which comes no later than the trigger's next due time."""
        with self._states:
            if run.state == "running":
                outcome.apply(run)
                run.state = "done"
            else:
                run.state = "zombie_done"
        self._done.append(run)
        if run.state == "zombie_done" or run.fires or self._clock.now() >= run.next_due:
            self._wake_loop()

    def _extend_leases(self, now: datetime) -> None:
        """Polls still running half-way to their next due instant keep their lease until
        their timeout, so another runner does not start an overlapping poll."""
        late = [
            run
            for run in self._inflight.values()
            if run.state == "running" and not run.extended and now >= run.extend_at
        ]
        if not late:
            return
        until = now + timedelta(seconds=self._config.trigger_poll_timeout) + 2 * self._base
        try:
            self._store.triggers.extend_leases(
                [run.claim.schedule_id for run in late], self._runner_id, until
            )
        except Exception:
            log.exception("extending trigger poll leases failed; retrying")
            for run in late:
                run.extend_at = now + self._base  # not at once: that would spin on a bad DB
            return
        for run in late:
            run.extended = True

    # -- collecting -------------------------------------------------------------------------

    def _drain(self, now: datetime, scan: bool = True) -> list[PollRun]:
        """Finished polls, plus (``scan``) the ones that just ran past their timeout."""
        finished: list[PollRun] = []
        while self._done:
            run = self._done.popleft()
            if run.state == "zombie_done":
                # An abandoned poll finally returned: drop its result, poll it again soon.
                self._zombies.discard(run.name)
                self._view.release(run.name)
                continue
            finished.append(run)
        if not scan:
            return finished
        for name, run in list(self._inflight.items()):
            if run.deadline > now:
                continue
            with self._states:
                if run.state != "running":
                    continue
                run.state = "timed_out"
            run.timed_out = True
            run.result, run.fires = None, False
            run.error = timeout_message(self._config.trigger_poll_timeout)
            run.duration_ms = (now - run.claimed_at).total_seconds() * 1000
            self._zombies.add(name)
            if not run.spec.is_async:
                self._drive.poll_stuck()  # its thread is still inside the user's poll
            finished.append(run)
        return finished

    def _apply(self, recorded: list[Recorded]) -> bool:
        """Update the in-memory view after recording; True if any of them fired."""
        fired = False
        pop, settled = self._inflight.pop, self._view.settled
        for run, enabled, next_poll_at, rec_fired in recorded:
            fired = fired or rec_fired
            pop(run.name, None)
            settled(run.name, enabled, next_poll_at)
        return fired


def _earlier(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two instants, either of which may be missing."""
    if a is None or (b is not None and b < a):
        return b
    return a
