"""Event trigger definitions: ``Trigger``, ``@trigger``, ``TriggerSpec`` and the registry.

This module holds how a trigger is *defined* (SPEC 6.1): the class form, the decorator form,
interval parsing, the validated ``TriggerSpec`` and the per-process registry that runners
read and subscribe to. What a poll *returns* (``TriggerResult``, ``TriggerError``) and the
pure helpers about it (hashing, normalising, metadata) live in :mod:`cloaca.triggers.results`
and are re-exported here. Nothing here runs a poll: the engine's trigger scheduler owns
threads, timeouts and persistence.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, overload

from cloaca.errors import ValidationError, WrongTypeError
from cloaca.names import check_name
from cloaca.triggers import registry
from cloaca.triggers.registry import (
    add_trigger_listener,
    get_trigger,
    registered_triggers,
    remove_trigger_listener,
    unregister_trigger,
)
from cloaca.triggers.results import (
    NO_CONTEXT_HASH,
    TriggerError,
    TriggerResult,
    context_hash,
    normalize_poll_result,
    with_trigger_metadata,
)

__all__ = [
    "FAILED_RUN_POLICIES",
    "NO_CONTEXT_HASH",
    "Trigger",
    "TriggerError",
    "TriggerResult",
    "TriggerSpec",
    "add_trigger_listener",
    "check_failed_run_policy",
    "context_hash",
    "get_trigger",
    "normalize_poll_result",
    "parse_interval",
    "register_trigger",
    "registered_triggers",
    "remove_trigger_listener",
    "trigger",
    "unregister_trigger",
    "with_trigger_metadata",
]

logger = logging.getLogger(__name__)

_DEFAULT_POLL_INTERVAL = timedelta(seconds=30)
_INTERVAL_FORMS = (
    "a positive timedelta, a positive number of seconds, or a string such as "
    "'2s', '500ms', '5m', '1h' or '1.5' (seconds)"
)
_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

_F = TypeVar("_F", bound=Callable[..., Any])

#: What happens to a context whose last run did not complete (see docs/triggers.md):
#: ``refire`` fires it again at the next poll, ``backoff`` (the default) waits longer after
#: each consecutive failure, ``hold`` waits for a manual ``fire_trigger``.
FAILED_RUN_POLICIES = ("refire", "backoff", "hold")
DEFAULT_FAILED_RUN_POLICY = "backoff"


def check_failed_run_policy(value: Any, what: str = "on_failed_run") -> str:
    """Return ``value`` if it is one of :data:`FAILED_RUN_POLICIES`; else ``ValueError``
    naming ``what``, the value and the accepted values."""
    if not isinstance(value, str) or value not in FAILED_RUN_POLICIES:
        accepted = ", ".join(repr(p) for p in FAILED_RUN_POLICIES)
        raise ValidationError(f"{what} must be one of {accepted}, got {value!r}")
    return value


# --------------------------------------------------------------------------- intervals


def _interval_error(value: Any, what: str, why: str = "") -> ValueError:
    reason = f" ({why})" if why else ""
    return ValueError(f"invalid {what} {value!r}{reason}; expected {_INTERVAL_FORMS}")


def parse_interval(
    value: timedelta | int | float | str, *, what: str = "poll_interval"
) -> timedelta:
    """Parse a poll interval into a positive ``timedelta``.

    Accepts a ``timedelta``, a number of seconds, or a string ``"<number><unit>"`` with unit
    ``ms``, ``s``, ``m`` or ``h`` (no unit means seconds). Zero, negative, non-finite,
    boolean and unparseable values raise ``ValueError`` naming ``what`` and the value.
    """
    if isinstance(value, bool):
        # bool is an int subclass; True meaning "1 second" would be a silent surprise.
        raise _interval_error(value, what, "a bool is not a duration")
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, (int, float)):
        result = _seconds(value, value, what)
    elif isinstance(value, str):
        match = _INTERVAL_RE.match(value)
        if match is None:
            raise _interval_error(value, what)
        number, unit = match.groups()
        result = _seconds(float(number) * _UNIT_SECONDS[unit], value, what)
    else:
        raise _interval_error(value, what, f"unsupported type {type(value).__name__}")
    if result <= timedelta(0):
        raise _interval_error(value, what, "must be greater than zero")
    return result


def _seconds(seconds: float, original: Any, what: str) -> timedelta:
    if not math.isfinite(seconds):
        raise _interval_error(original, what, "must be finite")
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise _interval_error(original, what, "too large") from None


# --------------------------------------------------------------------------- class form


class Trigger:
    """Base class for class-form triggers (SPEC 6.1).

    Subclasses implement ``poll()`` (``def`` or ``async def``, optionally taking a
    ``cursor`` argument) returning a :class:`TriggerResult` or a bool. ``name``,
    ``poll_interval``, ``allow_concurrent`` and ``on_failed_run`` (``"refire"``,
    ``"backoff"`` or ``"hold"``) may be class attributes, instance attributes or
    properties; they are read when the trigger is registered.
    """

    name: str | None = None
    poll_interval: timedelta | float | int | str = _DEFAULT_POLL_INTERVAL
    allow_concurrent: bool = False
    on_failed_run: str = DEFAULT_FAILED_RUN_POLICY

    def __init__(
        self,
        name: str | None = None,
        poll_interval: timedelta | float | int | str | None = None,
        allow_concurrent: bool | None = None,
        on_failed_run: str | None = None,
    ) -> None:
        # Only the given values are set, so class attributes and properties stay in charge
        # of everything the caller did not pass.
        given = {
            "name": name,
            "poll_interval": poll_interval,
            "allow_concurrent": allow_concurrent,
            "on_failed_run": on_failed_run,
        }
        for attr, value in given.items():
            if value is None:
                continue
            try:
                setattr(self, attr, value)
            except AttributeError:
                raise WrongTypeError(
                    f"{type(self).__qualname__} defines {attr!r} as a read-only property; "
                    f"do not pass {attr}= to Trigger.__init__()"
                ) from None

    def poll(self, *args: Any, **kwargs: Any) -> Any:
        """Check the condition; subclasses must override this.

        Overrides take no argument or one ``cursor`` argument and return a
        ``TriggerResult`` or a bool (from ``async def`` too). The loose signature here lets
        every such override type-check.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement poll()")

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} name={getattr(self, 'name', None)!r}>"


@dataclass(frozen=True)
class TriggerSpec:
    """A validated, registered trigger as the engine sees it."""

    name: str
    poll_interval: timedelta
    allow_concurrent: bool
    #: ``"refire"``, ``"backoff"`` or ``"hold"``: see :data:`FAILED_RUN_POLICIES`.
    on_failed_run: str
    #: Call as ``poll()`` or, when ``takes_cursor``, ``poll(cursor)``; await if ``is_async``.
    poll: Callable[..., Any]
    is_async: bool
    takes_cursor: bool
    #: Workflow named by ``@trigger(on=...)``; the runner creates that schedule on start.
    workflow: str | None
    #: The ``Trigger`` instance or the decorated function this spec was built from.
    source: object


def _is_async(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # Also accept callable objects whose ``__call__`` is ``async def``.
    call = getattr(fn, "__call__", None)  # noqa: B004 - we want __call__ itself, not callable()
    return call is not None and inspect.iscoroutinefunction(call)


def _poll_call(poll: Callable[..., Any], desc: str, is_async: bool) -> tuple[Callable, bool]:
    """Return ``(callable, takes_cursor)``; the callable accepts the cursor positionally."""
    try:
        params = list(inspect.signature(poll).parameters.values())
    except (TypeError, ValueError):
        return poll, False  # no introspectable signature (e.g. a builtin): call it bare
    kinds = inspect.Parameter
    named = [p for p in params if p.kind not in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD)]
    positional = [
        p for p in named if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
    ]
    cursor = next((p for p in named if p.name == "cursor"), None)
    if cursor is None and len(positional) == 1:
        cursor = positional[0]
    if any(p.default is p.empty and p is not cursor for p in named):
        required = ", ".join(p.name for p in named if p.default is p.empty)
        raise ValidationError(
            f"poll() of {desc} must take no arguments or a single 'cursor' argument, "
            f"but it requires ({required})"
        )
    if cursor is None:
        return poll, False
    if cursor.kind is not kinds.KEYWORD_ONLY:
        return poll, True
    # The engine passes the cursor positionally; adapt a keyword-only ``cursor``.
    if is_async:

        @functools.wraps(poll)
        async def call_async(value: str | None) -> Any:
            return await poll(cursor=value)

        return call_async, True

    @functools.wraps(poll)
    def call(value: str | None) -> Any:
        return poll(cursor=value)

    return call, True


def _build_spec(
    *,
    desc: str,
    name: Any,
    poll_interval: Any,
    allow_concurrent: Any,
    on_failed_run: Any,
    poll: Any,
    workflow: str | None,
    source: object,
) -> TriggerSpec:
    try:
        check_name("trigger name", name)
    except ValueError as exc:
        raise ValidationError(
            f"{desc} has no valid name: {exc}. Set 'name' as a class attribute, instance "
            "attribute, property or Trigger(name=...)"
        ) from None
    desc = f"trigger {name!r}"
    interval = parse_interval(poll_interval, what=f"poll_interval of {desc}")
    if not isinstance(allow_concurrent, bool):
        raise ValidationError(
            f"allow_concurrent of {desc} must be True or False, got {allow_concurrent!r}"
        )
    policy = check_failed_run_policy(on_failed_run, f"on_failed_run of {desc}")
    if not callable(poll):
        raise ValidationError(f"{desc} has no callable poll(); got {poll!r}")
    is_async = _is_async(poll)
    call, takes_cursor = _poll_call(poll, desc, is_async)
    return TriggerSpec(
        name=name,
        poll_interval=interval,
        allow_concurrent=allow_concurrent,
        on_failed_run=policy,
        poll=call,
        is_async=is_async,
        takes_cursor=takes_cursor,
        workflow=workflow,
        source=source,
    )


def register_trigger(trigger: Trigger | Callable[..., Any]) -> TriggerSpec:
    """Validate ``trigger`` and make it known to runners in this process.

    Reads ``name``, ``poll_interval``, ``allow_concurrent`` and ``on_failed_run`` once, now.
    A missing or invalid name (see :func:`cloaca.names.check_name`), an invalid interval, a
    non-bool ``allow_concurrent``, an unknown ``on_failed_run`` or a missing ``poll()`` raise
    ``ValueError``. Re-registering a name
    replaces the earlier trigger. A function already decorated with :func:`trigger` may be
    passed too; its registration is refreshed.
    """
    if not isinstance(trigger, Trigger):
        existing = registry.registered_from(trigger)
        if existing is not None:
            return registry.store(existing)
    desc = f"trigger {type(trigger).__qualname__} instance"
    poll = getattr(trigger, "poll", None)
    if poll is None:
        raise ValidationError(
            f"{trigger!r} is not a trigger: it has no poll(); subclass cloaca.Trigger "
            "or decorate a function with @cloaca.trigger"
        )
    if isinstance(trigger, Trigger) and type(trigger).poll is Trigger.poll:
        raise ValidationError(f"{desc} does not implement poll()")
    spec = _build_spec(
        desc=desc,
        name=getattr(trigger, "name", None),
        poll_interval=getattr(trigger, "poll_interval", _DEFAULT_POLL_INTERVAL),
        allow_concurrent=getattr(trigger, "allow_concurrent", False),
        on_failed_run=getattr(trigger, "on_failed_run", DEFAULT_FAILED_RUN_POLICY),
        poll=poll,
        workflow=None,
        source=trigger,
    )
    return registry.store(spec)


@overload
def trigger(func: _F, /) -> _F: ...


@overload
def trigger(
    *,
    name: str | None = None,
    on: str | None = None,
    poll_interval: timedelta | float | int | str = "30s",
    allow_concurrent: bool = False,
    on_failed_run: str = DEFAULT_FAILED_RUN_POLICY,
) -> Callable[[_F], _F]: ...


def trigger(
    func: _F | None = None,
    /,
    *,
    name: str | None = None,
    on: str | None = None,
    poll_interval: timedelta | float | int | str = "30s",
    allow_concurrent: bool = False,
    on_failed_run: str = DEFAULT_FAILED_RUN_POLICY,
) -> Any:
    """Decorator form: register a function as a trigger's ``poll()`` (SPEC 6.1).

    The function takes no arguments (or one ``cursor`` argument) and returns a
    :class:`TriggerResult` or a bool (``True`` fires, ``False`` skips). ``name`` defaults to
    the function's ``__name__``; with ``on="<workflow>"`` runners create the trigger
    schedule for that workflow. ``on_failed_run`` is ``"refire"``, ``"backoff"`` (default)
    or ``"hold"``. Registers at decoration time; returns the function unchanged.
    """
    if on is not None:
        check_name("@trigger(on=...) workflow name", on)
    check_failed_run_policy(on_failed_run, "@trigger(on_failed_run=...)")

    def decorate(fn: _F) -> _F:
        if not callable(fn):
            raise WrongTypeError(f"@trigger decorates a function, got {type(fn).__name__}")
        registry.store(
            _build_spec(
                desc=f"@trigger function {getattr(fn, '__qualname__', fn)!r}",
                name=name if name is not None else getattr(fn, "__name__", None),
                poll_interval=poll_interval,
                allow_concurrent=allow_concurrent,
                on_failed_run=on_failed_run,
                poll=fn,
                workflow=on,
                source=fn,
            )
        )
        return fn

    # Also accept the bare ``@trigger`` form, which is an easy slip to make.
    return decorate(func) if func is not None else decorate
