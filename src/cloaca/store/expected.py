"""Results a waiter in this process expects: the transaction that ends such an execution
reads it too, with its COMMIT (``Tx.later``, no round trip of its own on PostgreSQL), so
the waiter it wakes needs no read of its own."""

from __future__ import annotations

import threading

from cloaca.store.db import Later, Row, Tx


class ExpectedResults:
    """Execution ids someone here waits for -> the rows of ``execution_with_tasks`` read by
    the transaction that ended the execution (None until one did)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, Later | None] = {}
        self._waiting: dict[str, int] = {}

    def expect(self, execution_id: str) -> None:
        """A thread of this process is going to wait for ``execution_id``."""
        with self._lock:
            self._waiting[execution_id] = self._waiting.get(execution_id, 0) + 1
            self._rows.setdefault(execution_id, None)

    def forget(self, execution_id: str) -> None:
        """That thread stopped waiting."""
        with self._lock:
            left = self._waiting.get(execution_id, 0) - 1
            if left > 0:
                self._waiting[execution_id] = left
            else:
                self._waiting.pop(execution_id, None)
                self._rows.pop(execution_id, None)

    def read_in(self, tx: Tx, execution_id: str) -> None:
        """``tx`` ends ``execution_id``: if it is expected, read it with the COMMIT, after
        every change ``tx`` made to it (the caller's last one)."""
        with self._lock:
            if execution_id not in self._rows:
                return
        later = tx.later("execution_with_tasks", {"id": execution_id, "with_tasks": 1})
        with self._lock:
            if execution_id in self._rows:  # a rerun of the transaction replaces it
                self._rows[execution_id] = later

    def rows(self, execution_id: str, wait: float = 0.0) -> list[Row] | None:
        """The execution as the transaction that ended it left it, once that committed;
        None when no transaction of this process ended it. A waiter woken by another
        thread's notice may run ahead of the ending transaction's own thread: ``wait``
        seconds at most for that transaction to end."""
        with self._lock:
            later = self._rows.get(execution_id)
        if later is None or not later.wait(wait):
            return None
        return later.rows
