"""Waiting in tests that run real threads or processes: poll a condition until a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    predicate: Callable[[], bool], what: str = "the condition", seconds: float = 10.0
) -> None:
    """Return once ``predicate()`` is true; ``AssertionError`` naming ``what`` after
    ``seconds``."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g}s waiting for {what}")
        time.sleep(0.01)
