"""The runner's one event loop thread, where ``async def`` tasks and trigger polls run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any


class AsyncBridge:
    """Owns an event loop on a daemon thread; started lazily on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="cloaca-async", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Schedule ``coro`` on the loop; returns a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self._ensure())

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
        """Run ``coro`` on the loop and block for its result.

        Raises ``TimeoutError`` after ``timeout`` seconds, having cancelled the coroutine.
        """
        future = self.submit(bounded(coro, timeout))
        return future.result()

    def close(self) -> None:
        """Stop the loop and join its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()


async def bounded(coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
    """Await ``coro``, raising ``TimeoutError`` (after cancelling it) past ``timeout`` s."""
    if timeout is None:
        return await coro
    return await asyncio.wait_for(coro, timeout)
