"""The trigger scheduler's in-memory view of what is due when.

One slot per enabled schedule whose trigger is registered in this process, and a heap of
their due instants. A row is re-read when this process changed it (``poke``), and every
row when another process added, changed or enabled a schedule: once per base interval the
view reads the schedules' version (their count and latest ``updated_at``), one cheap
statement that claims, polls and records do not move.
The database stays the authority: a claim re-checks everything, and a lost claim only
makes the view re-read that row.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from cloaca.config import DefaultRunnerConfig
from cloaca.store.core import Store
from cloaca.store.trigger_records import ActiveSchedule
from cloaca.triggers.definition import TriggerSpec, get_trigger, registered_triggers

#: Polls due this close together are started together (at most a twentieth of the base
#: interval), so a poll may start up to this much before its due instant, never later.
BATCH_WINDOW = timedelta(milliseconds=20)
#: Polls due this close together are claimed in one transaction (at most a tenth of the
#: base interval); those not due yet wait in the scheduler and start on time.
CLAIM_AHEAD = timedelta(milliseconds=100)


@dataclass(slots=True)
class _Slot:
    """What the view knows of one schedule between polls."""

    schedule_id: str
    interval: timedelta
    db_due: datetime  # next_poll_at as stored: the claim's expected value
    wake_at: datetime  # when to try (later than db_due while another runner holds a lease)


class Picked(NamedTuple):
    """A due poll taken off the heap, ready to be claimed: ``schedule_id``, ``due`` and
    ``next`` are the claim (a :class:`~cloaca.store.triggers.DueClaim`)."""

    # A NamedTuple, not a frozen dataclass: built for every poll (a thousand a second), and
    # three times cheaper to build; the claim's fields are its own for the same reason.

    schedule_id: str
    due: datetime  # next_poll_at as read: the claim's expected value
    next: datetime  # the next_poll_at the claim sets
    name: str
    spec: TriggerSpec
    interval: timedelta
    start_at: datetime  # when to start it (its due instant, or a lease's end)


def next_poll(due: datetime, interval: timedelta, now: datetime) -> datetime:
    """The poll after the one due at ``due``: fixed-rate, but never in the past."""
    following = due + interval
    return following if following > now else now + interval


class ScheduleView:
    """Due times of this process's trigger schedules.

    ``inflight`` and ``zombies`` are the scheduler's own containers (read here, never
    written): a trigger with a poll in flight is neither re-read nor picked, and one whose
    timed-out poll has not returned is not picked.
    """

    def __init__(
        self,
        store: Store,
        config: DefaultRunnerConfig,
        runner_id: str,
        inflight: Container[str],
        zombies: Container[str],
    ) -> None:
        self._store = store
        self._config = config
        self._runner_id = runner_id
        self._inflight = inflight
        self._zombies = zombies
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        # Poked from user threads, so under _poke_lock.
        self._poke_lock = threading.Lock()
        self._dirty_all = True  # re-read every local schedule
        self._dirty_names: set[str] = set()  # re-read just these
        self._reread_after: set[str] = set()  # these, once their in-flight poll is recorded
        self._has_local = False
        self._refresh_at: datetime | None = None
        self._version: str | None = None
        self._windows_for: float | None = None
        self._windows_of = (timedelta(0), timedelta(0), timedelta(0))

    def _windows(self) -> tuple[timedelta, timedelta, timedelta]:
        """(base interval, start window, claim window): asked for several times a round, so
        computed again only when the configured base interval changes."""
        seconds = self._config.trigger_base_poll_interval
        if seconds != self._windows_for:
            base = timedelta(seconds=seconds)
            start = min(BATCH_WINDOW, base / 20)
            self._windows_of = (base, start, max(start, min(CLAIM_AHEAD, base / 10)))
            self._windows_for = seconds
        return self._windows_of

    @property
    def _base(self) -> timedelta:
        return self._windows()[0]

    def poke(self, trigger_name: str | None = None) -> None:
        """Something changed locally: re-read ``trigger_name``'s schedule (or all of them)."""
        with self._poke_lock:
            if trigger_name is None:
                self._dirty_all = True
            else:
                self._dirty_names.add(trigger_name)

    # -- reading the database ---------------------------------------------------------------

    def refresh_if_needed(self, now: datetime) -> None:
        """Re-read what was poked, and everything if another process committed."""
        if self._dirty_all:
            self._refresh(now)
        elif self._has_local and (self._refresh_at is None or now >= self._refresh_at):
            # Other processes' schedule changes (new schedules, re-enabled ones) show up
            # here; disabling needs no refresh: every claim re-checks the enabled flag.
            # (PostgreSQL also announces them: NOTIFY ``triggers`` pokes the view.)
            self._refresh_at = now + self._base
            if self._store.triggers.schedules_version() != self._version:
                self._refresh(now)
        if self._dirty_names:
            self._refresh_some()

    def _refresh(self, now: datetime) -> None:
        with self._poke_lock:
            self._dirty_all = False
            self._dirty_names.clear()
        self._refresh_at = now + self._base
        self._version = self._store.triggers.schedules_version()  # before the read: a
        # change committed after it shows on the next look
        names = [spec.name for spec in registered_triggers()]
        self._has_local = bool(names)
        rows = self._store.triggers.active_schedules(names) if names else []
        slots: dict[str, _Slot] = {}
        for row in rows:
            slot = self._merge(row)
            if slot is not None:
                slots[row.trigger_name] = slot
        self._slots = slots

    def _refresh_some(self) -> None:
        with self._poke_lock:
            dirty, self._dirty_names = self._dirty_names, set()
        names = [n for n in dirty if get_trigger(n) is not None]
        if not names:
            return
        self._has_local = True
        found = {row.trigger_name: row for row in self._store.triggers.active_schedules(names)}
        for name in names:
            row = found.get(name)
            slot = self._merge(row) if row is not None else None
            if slot is not None:
                self._slots[name] = slot
            elif name not in self._inflight:
                self._slots.pop(name, None)  # disabled, paused or never scheduled

    def _merge(self, row: ActiveSchedule) -> _Slot | None:
        """The slot for a schedule row (pushed on the heap when its time changed)."""
        name = row.trigger_name
        current = self._slots.get(name)
        if name in self._inflight:
            if (
                current is None
                or row.next_poll_at != current.db_due
                or (row.lease_owner != self._runner_id)
            ):
                self._reread_after.add(name)  # the row changed under a running poll
            else:
                # As this runner's claim left it: nothing to re-read once the poll is
                # recorded (a full refresh lands on many polls in flight).
                current.interval = max(timedelta(milliseconds=row.poll_interval_ms), self._base)
            return current
        wake_at = row.next_poll_at
        if (
            row.lease_owner not in (None, self._runner_id)
            and row.lease_until is not None
            and row.lease_until > wake_at
        ):
            wake_at = row.lease_until  # another runner is polling it: no point before
        interval = max(timedelta(milliseconds=row.poll_interval_ms), self._base)
        if (
            current is not None
            and current.wake_at == wake_at
            and current.db_due == row.next_poll_at
        ):
            current.interval = interval
            return current
        slot = _Slot(row.id, interval, row.next_poll_at, wake_at)
        self._push(name, slot)
        return slot

    # -- the heap ---------------------------------------------------------------------------

    def _push(self, name: str, slot: _Slot) -> None:
        heapq.heappush(self._heap, (slot.wake_at, next(self._seq), name))

    def _clean_heap(self) -> None:
        """Drop stale entries from the top of the heap, so heap[0] is a real candidate."""
        heap = self._heap
        while heap:
            wake_at, _, name = heap[0]
            slot = self._slots.get(name)
            if slot is not None and slot.wake_at == wake_at and name not in self._inflight:
                return
            heapq.heappop(heap)

    def earliest(self) -> datetime | None:
        """When the view next wants a tick: the earliest due poll.

        The periodic re-read (other processes' commits) is not a due instant of its own: it
        happens on a round that comes anyway, at most ``scheduler_poll_interval_ms`` after
        it is due (the loop never waits longer). So fake time driven by hand does not crawl
        one base interval at a time either."""
        self._clean_heap()
        return self._heap[0][0] if self._heap else None

    def start_window(self) -> timedelta:
        """Polls due within this much of the earliest due one start with it."""
        return self._windows()[1]

    def claim_ahead(self) -> timedelta:
        """Polls due within this much of the earliest due one are claimed with it."""
        return self._windows()[2]

    def pick(self, now: datetime, ahead: timedelta | None = None) -> list[Picked]:
        """Take due polls off the heap: nothing until the earliest is due, then every poll
        due within ``ahead`` of now with it (default: the start window)."""
        heap = self._heap
        self._clean_heap()
        if not heap or heap[0][0] > now:
            return []
        horizon = now + (self.start_window() if ahead is None else ahead)
        picked: list[Picked] = []
        seen: set[str] = set()
        slots, inflight, zombies = self._slots, self._inflight, self._zombies
        pop = heapq.heappop
        while heap and heap[0][0] <= horizon:
            wake_at, _, name = pop(heap)
            slot = slots.get(name)
            if (
                slot is None
                or slot.wake_at != wake_at
                or name in seen
                or name in inflight
                or name in zombies
            ):
                continue
            spec = get_trigger(name)
            if spec is None:  # unregistered since the last refresh: forget it quietly
                del slots[name]
                continue
            seen.add(name)
            due, interval = slot.db_due, slot.interval
            following = next_poll(due, interval, now)
            picked.append(Picked(slot.schedule_id, due, following, name, spec, interval, wake_at))
        return picked

    # -- what happened to picked polls ------------------------------------------------------

    def claimed(self, picked: Picked) -> None:
        """The claim won: the stored next poll is now ``picked.next``."""
        slot = self._slots.get(picked.name)
        if slot is not None:
            slot.db_due = slot.wake_at = picked.next

    def lost(self, name: str) -> None:
        """The claim lost (another runner, disabled, changed): re-read the row."""
        self._slots.pop(name, None)
        self.poke(name)

    def retry(self, name: str, at: datetime) -> None:
        """Try a picked poll again at ``at`` (the claim could not be written)."""
        slot = self._slots.get(name)
        if slot is not None:
            slot.wake_at = at
            self._push(name, slot)

    def settled(self, name: str, enabled: bool | None, next_poll_at: datetime | None) -> None:
        """A poll was recorded: the schedule is ``enabled`` and next due at
        ``next_poll_at`` (``None`` for both when the lease was lost: re-read it)."""
        if name in self._reread_after:
            self._reread_after.discard(name)
            self.poke(name)
        if enabled is None or next_poll_at is None:
            self.poke(name)
            return
        if not enabled:
            self._slots.pop(name, None)  # paused (or disabled meanwhile)
            return
        slot = self._slots.get(name)
        if slot is not None:
            slot.db_due = slot.wake_at = next_poll_at
            if name not in self._zombies:  # _push, inline: once per poll
                heapq.heappush(self._heap, (next_poll_at, next(self._seq), name))

    def release(self, name: str) -> None:
        """A timed-out poll finally returned: its trigger may be picked again."""
        slot = self._slots.get(name)
        if slot is not None:
            self._push(name, slot)
