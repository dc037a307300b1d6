"""``@task``: turning functions into tasks, and the ``TaskHandle`` a task may ask for."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, Protocol

from cloaca.errors import RunnerShutDown, ValidationError
from cloaca.names import check_name
from cloaca.workflows import registry, rules
from cloaca.workflows.retry import RetryCondition, RetryPolicy

TASK_ATTR = "__cloaca_task__"
_HANDLE_PARAMS = ("handle", "task_handle")


class FailureArgs(Enum):
    """How ``on_failure`` is called: ``(task_id, error, context)`` as upstream does, or with
    the failed attempt's traceback as a 4th positional argument or as ``traceback=``."""

    THREE = "three"
    POSITIONAL = "positional"
    KEYWORD = "keyword"


def failure_args_of(callback: Callable[..., Any] | None) -> FailureArgs:
    """Read once, at declaration, what an ``on_failure`` callback accepts: a parameter named
    ``traceback`` gets it by keyword, else a 4th positional parameter gets it; any other
    callback (``*args`` included) is called with the three upstream arguments."""
    if callback is None:
        return FailureArgs.THREE
    try:
        params = list(inspect.signature(callback).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature
        return FailureArgs.THREE
    kinds = inspect.Parameter
    if any(
        p.name == "traceback" and p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        for p in params
    ):
        return FailureArgs.KEYWORD
    positional = [
        p for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
    ]
    return FailureArgs.POSITIONAL if len(positional) >= 4 else FailureArgs.THREE


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything the engine needs to know about one task."""

    id: str
    fn: Callable[..., Any]
    dependencies: tuple[str, ...]
    retry: RetryPolicy
    trigger_rules: dict[str, Any] | None
    timeout: float | None
    on_success: Callable[..., Any] | None
    on_failure: Callable[..., Any] | None
    is_async: bool
    wants_handle: bool
    failure_args: FailureArgs = FailureArgs.THREE


def task_id_of(ref: object) -> str:
    """Resolve a dependency reference (a task id or a decorated function) to a task id."""
    if isinstance(ref, str):
        return check_name("task dependency", ref)
    spec = getattr(ref, TASK_ATTR, None)
    if isinstance(spec, TaskSpec):
        return spec.id
    raise ValidationError(
        f"dependency {ref!r} must be a string task ID or a function object decorated with @task"
    )


def _timeout_seconds(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValidationError(f"timeout {value!r} must be seconds (int/float) or a timedelta")
    if not seconds > 0:
        raise ValidationError(f"timeout {value!r} must be positive")
    return seconds


def _wants_handle(fn: Callable[..., Any]) -> bool:
    params = list(inspect.signature(fn).parameters.values())
    if not params:
        raise ValidationError(f"task function {fn.__name__!r} must accept a `context` parameter")
    if len(params) >= 2 and params[1].name in _HANDLE_PARAMS:
        return True
    required = [
        p
        for p in params[1:]
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if required:
        raise ValidationError(
            f"task function {fn.__name__!r} takes an unexpected parameter {required[0].name!r}; "
            f"accepted: (context) or (context, handle) / (context, task_handle)"
        )
    return False


def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    id: str | None = None,  # noqa: A002 - compat argument name
    dependencies: Sequence[object] | None = None,
    retry: RetryPolicy | None = None,
    retry_attempts: int | None = None,
    retry_backoff: str | None = None,
    retry_delay_ms: int | None = None,
    retry_max_delay_ms: int | None = None,
    retry_condition: str | RetryCondition | None = None,
    retry_jitter: bool | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    trigger_rules: Any = None,
    timeout: float | timedelta | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a task. Returns the function unchanged (still directly callable).

    Inside ``with WorkflowBuilder(...)`` the task joins that workflow; at module level it is
    a standalone task that :func:`cloaca.workflow` or ``add_task`` can assemble. Bare
    ``@task`` (without parentheses) takes every default.
    """
    if fn is not None:
        if not callable(fn):
            raise ValidationError(
                f"@task takes keyword arguments only (id=..., dependencies=...); got {fn!r}"
            )
        return task()(fn)
    policy = RetryPolicy.from_task_options(
        retry=retry,
        retry_attempts=retry_attempts,
        retry_backoff=retry_backoff,
        retry_delay_ms=retry_delay_ms,
        retry_max_delay_ms=retry_max_delay_ms,
        retry_condition=retry_condition,
        retry_jitter=retry_jitter,
    )
    deps = tuple(task_id_of(d) for d in (dependencies or ()))
    if isinstance(dependencies, str):
        raise ValidationError(
            f"dependencies {dependencies!r} must be a list of task ids, not a string"
        )
    rule = rules.normalize_rule(trigger_rules)
    seconds = _timeout_seconds(timeout)
    for name, cb in (("on_success", on_success), ("on_failure", on_failure)):
        if cb is not None and not callable(cb):
            raise ValidationError(f"{name} {cb!r} must be callable")
    if id is not None:
        check_name("task id", id)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise ValidationError(f"@task must decorate a function, got {fn!r}")
        spec = TaskSpec(
            id=id if id is not None else check_name("task id", getattr(fn, "__name__", None)),
            fn=fn,
            dependencies=deps,
            retry=policy,
            trigger_rules=rule,
            timeout=seconds,
            on_success=on_success,
            on_failure=on_failure,
            is_async=inspect.iscoroutinefunction(fn),
            wants_handle=_wants_handle(fn),
            failure_args=failure_args_of(on_failure),
        )
        setattr(fn, TASK_ATTR, spec)
        registry.task_defined(spec)
        return fn

    return decorate


class SlotControl(Protocol):
    """What the executor lends a handle: give the concurrency slot back and take it again."""

    def release_slot(self) -> None: ...
    def acquire_slot(self) -> None: ...
    def set_sub_status(self, sub_status: str | None) -> None: ...
    def wait(self, seconds: float) -> bool: ...


class TaskHandle:
    """Lets a running task give its concurrency slot back while it waits (compat)."""

    def __init__(self, task_id: str, control: SlotControl) -> None:
        self.task_id = task_id
        self._control = control
        self._slot_held = True
        self._ended = False
        self._lock = threading.Lock()

    def _check(self) -> None:
        if self._ended:
            raise ValidationError(f"TaskHandle for task {self.task_id!r} used after its task ended")

    def is_slot_held(self) -> bool:
        """True while the task holds one of the runner's concurrency slots."""
        self._check()
        return self._slot_held

    def defer_until(self, condition: Callable[[], Any], poll_interval_ms: int = 1000) -> Any:
        """Release the slot until ``condition()`` is true, then take a slot again.

        In a sync task this blocks; in an ``async def`` task ``await`` it. The task execution
        shows the sub-status ``"Deferred"`` meanwhile.
        """
        self._check()
        if not callable(condition):
            raise ValidationError(f"defer_until condition {condition!r} must be callable")
        if not isinstance(poll_interval_ms, int) or poll_interval_ms <= 0:
            raise ValidationError(
                f"poll_interval_ms {poll_interval_ms!r} must be a positive integer"
            )
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._defer_blocking(condition, poll_interval_ms / 1000)
        return self._defer_async(condition, poll_interval_ms / 1000)

    def _begin_defer(self) -> None:
        self._control.set_sub_status("Deferred")
        self._control.release_slot()
        self._slot_held = False

    def _end_defer(self) -> None:
        self._control.acquire_slot()
        self._slot_held = True
        self._control.set_sub_status(None)

    def _defer_blocking(self, condition: Callable[[], Any], interval: float) -> None:
        self._begin_defer()
        try:
            while not condition():
                if self._control.wait(interval):
                    raise RunnerShutDown("runner is shutting down")
        finally:
            self._end_defer()

    async def _defer_async(self, condition: Callable[[], Any], interval: float) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._begin_defer)
        try:
            while True:
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    break
                if await loop.run_in_executor(None, self._control.wait, interval):
                    raise RunnerShutDown("runner is shutting down")
        finally:
            await loop.run_in_executor(None, self._end_defer)

    def _end(self) -> None:
        self._ended = True
