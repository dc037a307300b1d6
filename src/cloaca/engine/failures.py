"""What a failed attempt leaves behind: its traceback as stored text, the log line that
says what happens next, and the callbacks' view of it (SPEC 10, "Failures are visible")."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import threading
import traceback as tb
from datetime import datetime
from pathlib import Path

from cloaca.engine.aio import BodyTimedOut, EscapedBaseException
from cloaca.store.records import ClaimedTask, TaskStatus

log = logging.getLogger(__name__)

#: The longest traceback text stored (characters). A longer one keeps its head and its
#: tail, where the raising line and the message are, around a marker.
MAX_TRACEBACK_CHARS = 64 * 1024
_HEAD_CHARS = 8 * 1024


def cap(text: str, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """``text``, or its head and tail around a marker saying how much was cut, so the
    result is at most ``limit`` characters."""
    if len(text) <= limit:
        return text
    head = min(_HEAD_CHARS, limit // 4)
    marker = f"\n... [{{}} characters cut: a stored traceback is at most {limit}] ...\n"
    tail = limit - head - len(marker.format(len(text)))
    cut = len(text) - head - tail
    return text[:head] + marker.format(cut) + text[len(text) - tail :]


#: Where the frames that lead into a task body live: the engine itself, and the standard
#: library's plumbing between a worker thread, a future and the event loop.
_PLUMBING = (
    str(Path(__file__).parent),
    str(Path(asyncio.__file__).parent),
    str(Path(concurrent.futures.__file__).parent),
)


def format_failure(exc: BaseException) -> str:
    """The formatted exception (``traceback.format_exception``), capped, starting at the
    first frame outside the engine (the task body's, when it raised). A BaseException the
    engine carried as :class:`EscapedBaseException` is shown as the user raised it."""
    if isinstance(exc, EscapedBaseException):
        exc = exc.original
    frames = exc.__traceback__
    while frames is not None and frames.tb_frame.f_code.co_filename.startswith(_PLUMBING):
        frames = frames.tb_next
    if frames is None:  # raised by the engine itself (a timeout): keep it all
        frames = exc.__traceback__
    return cap("".join(tb.format_exception(type(exc), exc, frames)))


def _from_the_body(frames: tb.StackSummary) -> list[tb.FrameSummary]:
    """``frames`` without the leading ones that only lead into the task body (thread
    start-up, the engine, futures and the event loop)."""
    plumbing = (*_PLUMBING, threading.__file__)
    first = next((i for i, f in enumerate(frames) if not f.filename.startswith(plumbing)), 0)
    return list(frames)[first:]


def stack_of_thread(ident: int | None) -> str | None:
    """Where the thread ``ident`` is now (most recent call last), capped; None if it is
    gone. A sync body that timed out is still running there: this is where it was."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    if frame is None:
        return None
    frames = _from_the_body(tb.extract_stack(frame))
    return cap(
        "Stack of the task's thread when it timed out (most recent call last):\n"
        + "".join(tb.format_list(frames))
    )


def stack_at_cancel(timed_out: BaseException) -> str | None:
    """Where an ``async def`` body was awaiting when its timeout cancelled it (from the
    ``CancelledError`` behind :class:`~cloaca.engine.aio.BodyTimedOut`), capped; None if
    that is not known."""
    cancelled = timed_out.__cause__ if isinstance(timed_out, BodyTimedOut) else None
    if cancelled is None or cancelled.__traceback__ is None:
        return None
    frames = _from_the_body(tb.extract_tb(cancelled.__traceback__))
    return cap(
        "Stack of the task when it timed out, at the await it was cancelled in "
        "(most recent call last):\n" + "".join(tb.format_list(frames))
    )


def log_failed_attempt(
    claimed: ClaimedTask,
    error: str,
    status: TaskStatus,
    retry_at: datetime | None,
    now: datetime,
    exc: BaseException | None,
    traceback: str | None,
) -> None:
    """Log a failed attempt at WARNING with its traceback, and what happens next: a retry
    (when) or none."""
    progress = f"attempt {claimed.attempt}/{claimed.max_attempts}"
    if status is TaskStatus.READY and retry_at is not None:
        delay = max(0.0, (retry_at - now).total_seconds())
        then = f"will retry in {delay:g}s ({progress})"
    elif claimed.attempt < claimed.max_attempts:
        then = f"giving up ({progress}: the retry policy does not retry this error)"
    else:
        then = f"giving up ({progress})"
    if isinstance(exc, EscapedBaseException):
        exc = exc.original
    message = "task %r of execution %s failed: %s; %s"
    args: tuple[object, ...] = (claimed.task_id, claimed.execution_id, error, then)
    if exc is None and traceback:
        message += "\n%s"
        args += (traceback,)
    log.warning(
        message,
        *args,
        exc_info=exc,
        extra={
            "task": claimed.task_id,
            "execution_id": claimed.execution_id,
            "attempt": claimed.attempt,
            "max_attempts": claimed.max_attempts,
        },
    )
