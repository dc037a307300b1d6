"""One attempt of a task execution as the executor sees it: its state while it runs, how
its body is run (:class:`Body`), the control a ``TaskHandle`` gets over its slot, and how a
body's result becomes its output."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context, ContextLimitError, check_context_size
from cloaca.engine.aio import AsyncBridge, bounded, describe
from cloaca.engine.failures import stack_at_cancel
from cloaca.engine.inputs import load_input
from cloaca.engine.outcomes import Outcome
from cloaca.engine.shape import Shape
from cloaca.errors import BadTaskResult, TaskTimedOut
from cloaca.store.core import Store
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


class Finish(Protocol):
    """How the executor records the end of an attempt (see ``Executor._finish``)."""

    def __call__(
        self,
        attempt: Attempt,
        output: str | None,
        error: str | None,
        *,
        timed_out: bool,
        ctx: Context | None = None,
        final: bool = False,
        exc: BaseException | None = None,
        traceback: str | None = None,
    ) -> None: ...


class Body:
    """Runs the body of one attempt and says how it ended.

    It reads the input if the claim did not, builds the Context and the TaskHandle, and
    calls the task: a plain ``def`` on this thread (the executor enforces its deadline), an
    ``async def`` on the runner's event loop, bounded by its timeout. Every way it can end
    goes to ``finish`` exactly as the executor records it."""

    def __init__(
        self,
        store: Store,
        config: DefaultRunnerConfig,
        aio: AsyncBridge,
        wake: Callable[[], None],
        finish: Finish,
        control: Callable[[Attempt], Control],
    ) -> None:
        self._store = store
        self._config = config
        self._aio = aio
        self._wake = wake
        self._finish = finish
        self._control = control

    def __call__(self, attempt: Attempt) -> None:
        claimed, spec, shape = attempt.claimed, attempt.spec, attempt.shape
        finish = self._finish
        if spec is None or shape is None:
            msg = f"task {claimed.task_id!r} is not part of workflow {claimed.workflow_name!r} here"
            finish(attempt, None, msg, timed_out=False)
            return
        ctx: Context | None = None
        timeout_stack: str | None = None  # where an async body was when it timed out
        try:
            data = attempt.input
            if data is None:
                with self._store.read() as tx:
                    data = load_input(self._store, tx, shape, claimed.execution_id, claimed.task_id)
            attempt.input = None  # the Context owns it now
            ctx = Context._adopt(data)
            timeout = spec.timeout or float(self._config.task_timeout_seconds)
            attempt.handle = TaskHandle(spec.id, self._control(attempt))
            args: tuple[Any, ...] = (ctx, attempt.handle) if spec.wants_handle else (ctx,)
            if spec.is_async:
                future = self._aio.submit(bounded(spec.fn(*args), timeout))
                with attempt.lock:
                    attempt.future = future
                    if attempt.cancel_requested:
                        future.cancel()
                try:
                    result = future.result()
                except TimeoutError as exc:
                    timeout_stack = stack_at_cancel(exc)
                    raise TaskTimedOut(f"Task {spec.id!r} timed out after {timeout:g}s") from None
                except concurrent.futures.CancelledError:
                    raise RuntimeError("cancelled: the execution ended while it ran") from None
            else:
                attempt.thread = threading.get_ident()  # where to look if it times out
                attempt.deadline = time.monotonic() + timeout
                # The loop ticks at least every poll interval and learns the deadline then;
                # only a shorter timeout needs it to look now (a wake is a whole round).
                if timeout <= self._config.scheduler_poll_interval_ms / 1000:
                    self._wake()
                result = spec.fn(*args)
            output = output_of(spec.id, result, ctx, self._config.max_context_bytes)
            finish(attempt, output, None, timed_out=False, ctx=ctx)
        except TaskTimedOut as exc:
            finish(attempt, None, str(exc), timed_out=True, ctx=ctx, traceback=timeout_stack)
        except BadTaskResult as exc:
            error = f"TypeError: {exc}"
            finish(attempt, None, error, timed_out=False, ctx=ctx, final=True, exc=exc)
        except ContextLimitError as exc:
            # Too large or too deep: the same code would build the same data again.
            error = f"{type(exc).__name__}: {exc}"
            finish(attempt, None, error, timed_out=False, ctx=ctx, final=True, exc=exc)
        except BaseException as exc:
            # The user's error is the attempt's outcome, SystemExit and KeyboardInterrupt
            # included (signals only reach the main thread: on this worker thread they come
            # from user code; from an async body they arrive as EscapedBaseException).
            finish(attempt, None, describe(exc), timed_out=False, ctx=ctx, exc=exc)
