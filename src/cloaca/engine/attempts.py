"""One attempt of a task execution as the executor sees it: its state while it runs, the
control a ``TaskHandle`` gets over its slot, and how a body's result becomes its output."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cloaca.context import Context, check_context_size
from cloaca.engine.outcomes import Outcome
from cloaca.engine.shape import Shape
from cloaca.errors import BadTaskResult, TaskTimedOut  # noqa: F401  (their home was here)
from cloaca.store.records import ClaimedTask
from cloaca.workflows.task import FailureArgs, TaskHandle, TaskSpec

if TYPE_CHECKING:
    from cloaca.engine.executor import Executor

log = logging.getLogger(__name__)


@dataclass
class Attempt:
    """A claimed task execution while its body runs (or waits to be recorded)."""

    claimed: ClaimedTask
    spec: TaskSpec | None
    shape: Shape | None
    deadline: float | None = None  # monotonic; sync tasks only (async ones cancel themselves)
    done: bool = False
    handle: TaskHandle | None = None
    future: concurrent.futures.Future[Any] | None = None  # an async body on the event loop
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The input context, when the claim read it in its own transaction.
    input: dict[str, Any] | None = None
    #: Its execution ended while the attempt ran (see Executor.cancel_attempts).
    cancel_requested: bool = False
    #: The thread a sync body runs on (its stack is shown when it times out).
    thread: int | None = None


@dataclass(slots=True)
class Done:
    """A finished attempt waiting to be recorded; ``holds_slot`` when its slot is handed
    on to whatever the recording transaction claims."""

    attempt: Attempt
    outcome: Outcome
    holds_slot: bool


def output_of(task_id: str, result: Any, ctx: Context, max_bytes: int) -> str:
    """The output JSON of a body that returned ``result`` (None: its context as changed)."""
    if result is None:
        result = ctx
    if not isinstance(result, Context):
        raise BadTaskResult(
            f"task {task_id!r} returned {type(result).__name__}; return a Context or None"
        )
    return check_context_size(
        json.dumps(result._raw()), max_bytes, f"the context returned by task {task_id!r}"
    )


def run_callback(
    spec: TaskSpec, error: str | None, ctx: Context | None, traceback: str | None = None
) -> None:
    """Call ``on_success`` / ``on_failure``; whatever they raise is logged, never passed on.
    ``on_failure`` gets the traceback too when it asked for it (see ``FailureArgs``)."""
    try:
        if error is None and spec.on_success is not None:
            spec.on_success(spec.id, ctx)
        elif error is not None and spec.on_failure is not None:
            if spec.failure_args is FailureArgs.KEYWORD:
                spec.on_failure(spec.id, error, ctx, traceback=traceback)
            elif spec.failure_args is FailureArgs.POSITIONAL:
                spec.on_failure(spec.id, error, ctx, traceback)
            else:
                spec.on_failure(spec.id, error, ctx)
    except BaseException:  # user code: even SystemExit must not stop the worker thread
        log.exception("task callback raised", extra={"task": spec.id})


class Control:
    """The executor's side of a TaskHandle."""

    def __init__(self, executor: Executor, attempt: Attempt) -> None:
        self._executor = executor
        self._attempt = attempt
        self._remaining: float | None = None

    def release_slot(self) -> None:
        # Deferring is waiting, not running: the timeout clock pauses until the slot is back.
        deadline, self._attempt.deadline = self._attempt.deadline, None
        self._remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        self._executor.release_slot()

    def acquire_slot(self) -> None:
        self._executor.acquire_slot()
        if self._remaining is not None:
            self._attempt.deadline = time.monotonic() + self._remaining
            self._executor._wake()

    def set_sub_status(self, sub_status: str | None) -> None:
        self._executor._store.tasks.set_sub_status(self._attempt.claimed, sub_status)

    def wait(self, seconds: float) -> bool:
        """Pause between two looks at a defer_until condition; True if shutting down."""
        return self._executor.drive.pause(self._attempt, seconds)
