"""What this process knows of executions without reading it again: input contexts (an
execution's never changes once it exists, so the claims of a wide execution's roots read it
once, not once per claim transaction) and the outputs of tasks it recorded Completed."""

from __future__ import annotations

import threading
from collections.abc import Iterable

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


class KnownOutputs:
    """Execution id -> task id -> output JSON of the tasks this process recorded Completed
    (committed, by the runner that owned the attempt), bounded by total size: the oldest
    executions go first. A Completed task never changes again, so while every other task
    of an execution is known here, the outcome of its last task knows how the execution
    ends without reading anything."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self._limit = limit
        self._size = 0
        self._outputs: dict[str, dict[str, str | None]] = {}
        self._lock = threading.Lock()

    def add(self, execution_id: str, task_id: str, output: str | None) -> None:
        size = len(output or "")
        if size > self._limit // 4:
            return  # one huge output would push out everything else
        with self._lock:
            known = self._outputs.setdefault(execution_id, {})
            if task_id in known:
                return
            known[task_id] = output
            self._size += size
            while self._size > self._limit:
                oldest = next(iter(self._outputs))
                dropped = self._outputs.pop(oldest)
                self._size -= sum(len(o or "") for o in dropped.values())

    def others(self, execution_id: str, task_id: str, tasks: int) -> dict[str, str | None] | None:
        """The outputs of every task of the execution but ``task_id`` (it has ``tasks``
        in all), or None unless all of them are known."""
        with self._lock:
            known = self._outputs.get(execution_id)
            if known is None or len(known) != tasks - 1 or task_id in known:
                return None
            return dict(known)

    def get(self, execution_id: str, task_ids: Iterable[str]) -> dict[str, str | None] | None:
        """The outputs of ``task_ids`` (tasks of the execution), or None unless all of them
        are known."""
        with self._lock:
            known = self._outputs.get(execution_id)
            if known is None:
                return None
            found: dict[str, str | None] = {}
            for task_id in task_ids:
                if task_id not in known:
                    return None
                found[task_id] = known[task_id]
            return found

    def drop(self, execution_id: str) -> None:
        """Forget an execution (it ended)."""
        with self._lock:
            dropped = self._outputs.pop(execution_id, None)
            if dropped:
                self._size -= sum(len(o or "") for o in dropped.values())
