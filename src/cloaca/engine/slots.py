"""The runner's concurrency slots: ``max_concurrent_tasks`` of them, shared by every way
work is taken on (the loop's claims, a claim riding on a start or on recorded outcomes, a
deferred task taking its slot back).

Whoever claims task executions reserves slots *before* the claim and gives back what it did
not use, so two claimers never promise the same slot.
"""

from __future__ import annotations

import threading


class Slots:
    """A counter of free slots with reserve / give back / wait-for-one."""

    def __init__(self, size: int) -> None:
        self._cond = threading.Condition()
        self._free = size

    @property
    def free(self) -> int:
        """How many slots nobody holds right now."""
        with self._cond:
            return self._free

    def reserve(self, wanted: int) -> int:
        """Take up to ``wanted`` free slots at once; returns how many were taken."""
        with self._cond:
            taken = max(0, min(wanted, self._free))
            self._free -= taken
            return taken

    def give_back(self, count: int = 1) -> None:
        """Return ``count`` slots."""
        if count <= 0:
            return
        with self._cond:
            self._free += count
            self._cond.notify(count)

    def wait_for_one(self, stopping: threading.Event) -> None:
        """Block until a slot is free and take it (or take one anyway when stopping: the
        task is about to be abandoned, and the count is given back when it ends)."""
        with self._cond:
            while self._free <= 0 and not stopping.is_set():
                self._cond.wait(0.5)
            self._free -= 1
