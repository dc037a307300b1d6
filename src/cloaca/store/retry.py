"""Retrying a whole transaction when the database fails transiently.

A connection dropped by the server, a failover, a deadlock or a SQLite file locked by
another process beyond its busy timeout: each makes one transaction fail, and trying the
WHOLE transaction again (on a fresh connection: the pool discards broken ones) usually
succeeds. Only :class:`~cloaca.store.db.TransientStoreError` is retried; any other error is
a real answer and propagates at once.

Retrying is safe because every engine write is conditional ("only if still Running with
this attempt", unique fire keys): when a commit did go through but its acknowledgement was
lost, the retry finds the work already done and changes nothing.

This is the one place outside ``engine/loop.py`` that waits in real time: the backoff is a
pause between two tries of the same transaction, never a scheduling decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from cloaca.errors import ValidationError
from cloaca.store.db import Transactions, TransientStoreError, Tx

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How often and how patiently to retry: ``tries`` in all, the pause doubling from
    ``first_delay`` up to ``max_delay`` seconds (so the total pause is bounded)."""

    tries: int = 5
    first_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.tries < 1:
            raise ValidationError(
                f"Backoff tries={self.tries!r} is invalid: expected an integer >= 1"
            )
        if not 0 <= self.first_delay <= self.max_delay:
            raise ValidationError(
                f"Backoff delays first_delay={self.first_delay!r}, max_delay={self.max_delay!r} "
                f"are invalid: expected 0 <= first_delay <= max_delay"
            )

    def delay(self, failures: int) -> float:
        """The pause after the ``failures``-th failed try (1-based)."""
        return min(self.max_delay, self.first_delay * 2 ** (failures - 1))


#: The engine's default: 5 tries, 50 ms doubling (0.75 s of pauses in all).
DEFAULT_BACKOFF = Backoff()


def retrying(
    op: Callable[[], T],
    what: str,
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``op`` (one whole transaction) and return its result, trying it again after a
    pause when it raises :class:`TransientStoreError`; the last failure propagates. ``what``
    names the operation in the log."""
    failures = 0
    while True:
        try:
            return op()
        except TransientStoreError as exc:
            failures += 1
            if failures >= backoff.tries:
                log.error(
                    "%s failed after %d tries: %s",
                    what,
                    failures,
                    exc,
                    extra={"operation": what, "tries": failures},
                )
                raise
            delay = backoff.delay(failures)
            log.warning(
                "%s failed transiently (try %d of %d), retrying in %.2fs: %s",
                what,
                failures,
                backoff.tries,
                delay,
                exc,
                extra={"operation": what, "try": failures, "delay": delay},
            )
            sleep(delay)


def write_retrying(db: Transactions, fn: Callable[[Tx], T], what: str) -> T:
    """Run ``fn(tx)`` in a write transaction of ``db`` and return its result; when the
    database fails transiently the WHOLE transaction is run again (:func:`retrying`), on a
    fresh connection. ``fn`` must be safe to run again after a rollback (engine writes are
    conditional, so they are)."""

    def once() -> T:
        with db.write() as tx:
            return fn(tx)

    return retrying(once, what)


def read_retrying(db: Transactions, fn: Callable[[Tx], T], what: str) -> T:
    """Like :func:`write_retrying`, for a read transaction."""

    def once() -> T:
        with db.read() as tx:
            return fn(tx)

    return retrying(once, what)
