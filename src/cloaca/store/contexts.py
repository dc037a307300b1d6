"""Input contexts already read: an execution's input context never changes once the
execution exists, so the claims of a wide execution's roots read it once, not once per
claim transaction."""

from __future__ import annotations

import threading

#: Bytes of context JSON kept at most (the oldest entries go first).
CACHE_BYTES = 4 * 1024 * 1024


class ContextCache:
    """Execution id -> input context JSON, bounded by total size."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self._limit = limit
        self._size = 0
        self._texts: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, execution_id: str) -> str | None:
        return self._texts.get(execution_id)

    def put(self, execution_id: str, text: str) -> None:
        if len(text) > self._limit // 4:
            return  # one huge context would push out everything else
        with self._lock:
            if execution_id in self._texts:
                return
            self._texts[execution_id] = text
            self._size += len(text)
            while self._size > self._limit:
                oldest = next(iter(self._texts))
                self._size -= len(self._texts.pop(oldest))
