"""The runner's one event loop thread, where ``async def`` tasks and trigger polls run."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Coroutine
from typing import Any

from cloaca.errors import CloacaError

log = logging.getLogger(__name__)


class EscapedBaseException(CloacaError):
    """User code raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``, a custom subclass).

    Carried as an ordinary exception so it fails the one attempt that raised it: asyncio
    re-raises ``SystemExit``/``KeyboardInterrupt`` out of the event loop (stopping it for
    every later task), and a worker thread would end without recording anything.
    """

    def __init__(self, original: BaseException) -> None:
        super().__init__(describe(original))
        self.original = original


def describe(exc: BaseException) -> str:
    """``"<type name>: <message>"`` for an error of user code (``"SystemExit: 3"``), or the
    type name alone when the message is empty (``"KeyboardInterrupt"``)."""
    if isinstance(exc, EscapedBaseException):
        exc = exc.original
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def raised_by_user(exc: BaseException, task: asyncio.Task[Any] | None) -> bool:
    """True if ``exc``, a ``BaseException`` caught in the coroutine of ``task``, is the
    user code's own doing. Not when it is our cancellation (a timeout, a cancelled execution,
    shutdown: the task has a cancellation request pending), nor when the coroutine is being
    closed (``GeneratorExit`` thrown in as a pending task is destroyed: not inside a step of
    ``task``). A ``CancelledError`` user code raises on its own is its error like any other.
    """
    try:
        if asyncio.current_task() is not task:
            return False
    except RuntimeError:  # no running loop: closed by the garbage collector
        return False
    if isinstance(exc, asyncio.CancelledError):
        return task is None or task.cancelling() == 0
    return True


async def contained(coro: Coroutine[Any, Any, Any]) -> Any:
    """Await user code; a ``BaseException`` it raises comes out as ``EscapedBaseException``
    (our own cancellation still propagates as ``CancelledError``)."""
    task = asyncio.current_task()
    try:
        return await coro
    except Exception:
        raise
    except BaseException as exc:
        if not raised_by_user(exc, task):
            raise
        raise EscapedBaseException(exc) from exc


class AsyncBridge:
    """Owns an event loop on a daemon thread; started lazily on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._closing = threading.Event()
                thread = threading.Thread(
                    target=_serve, args=(loop, self._closing), name="cloaca-async", daemon=True
                )
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
            closing = self._closing
        if loop is not None and thread is not None:
            closing.set()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()


def _serve(loop: asyncio.AbstractEventLoop, closing: threading.Event) -> None:
    """Run ``loop`` until ``close()`` stops it.

    ``run_forever`` returns when stopped and raises when a ``SystemExit`` or
    ``KeyboardInterrupt`` escapes a callback (user code scheduling its own callbacks, which
    ``contained`` cannot wrap): then the loop runs on, since every task and poll of this
    runner depends on it and a daemon thread has no process to exit.
    """
    while True:
        try:
            loop.run_forever()
            return
        except BaseException as exc:
            if closing.is_set():
                return
            log.error(
                "an exception escaped the event loop; it keeps running",
                extra={"error": describe(exc)},
                exc_info=exc,
            )


class BodyTimedOut(CloacaError, TimeoutError):
    """User code ran past its timeout and was cancelled. Its ``__cause__`` is the
    ``CancelledError`` thrown in at the ``await`` where the code was, so its traceback
    says where. (A subclass: a plain ``TimeoutError`` crossing a concurrent future is
    made anew there, without its cause.)"""


async def bounded(coro: Coroutine[Any, Any, Any], timeout: float | None) -> Any:
    """Await user code ``coro`` (see ``contained``), raising :class:`BodyTimedOut` (after
    cancelling it) past ``timeout`` s."""
    if timeout is None:
        return await contained(coro)
    scope = asyncio.timeout(timeout)
    try:
        async with scope:
            return await contained(coro)
    except TimeoutError as exc:
        if not scope.expired():
            raise  # the user's own TimeoutError
        raise BodyTimedOut(f"timed out after {timeout:g}s") from exc.__cause__
