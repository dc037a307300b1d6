"""Threads waiting for executions to end, woken when this process learns one did."""

from __future__ import annotations

import threading


class Waiters:
    """Events per execution id. Nobody has to set them: a waiter also re-reads the database
    at its own interval, so without wake-ups (a management client) waiting is polling."""

    def __init__(self) -> None:
        self._events: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()

    def add(self, execution_id: str) -> threading.Event:
        """A new event set when ``execution_id`` is reported finished."""
        event = threading.Event()
        with self._lock:
            self._events.setdefault(execution_id, []).append(event)
        return event

    def drop(self, execution_id: str, event: threading.Event) -> None:
        """Forget an event (its waiter stopped waiting)."""
        with self._lock:
            events = self._events.get(execution_id)
            if events and event in events:
                events.remove(event)
                if not events:
                    del self._events[execution_id]

    def finished(self, execution_id: str) -> None:
        """``execution_id`` ended: wake its waiters."""
        with self._lock:
            events = self._events.pop(execution_id, [])
        for event in events:
            event.set()

    def wake_all(self, clear: bool = False) -> None:
        """Wake every waiter so it re-reads the database (``clear``: and forget them)."""
        with self._lock:
            events = [e for evs in self._events.values() for e in evs]
            if clear:
                self._events.clear()
        for event in events:
            event.set()
