"""Event trigger definitions: ``Trigger``, ``TriggerResult``, ``@trigger`` and the registry.

This module holds the pure, user-facing half of event triggers (SPEC section 6): how a
trigger is defined (class form or decorator form), what a poll returns, how a fired context
is hashed for deduplication, and the per-process registry that runners read. It never runs
a poll itself: the engine's trigger scheduler owns the event loop, timeouts and persistence.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import json
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from cloaca.context import Context

__all__ = [
    "NO_CONTEXT_HASH",
    "Trigger",
    "TriggerError",
    "TriggerResult",
    "TriggerSpec",
    "add_trigger_listener",
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

#: The dedup hash recorded for a fire without a context (SPEC 6.3).
NO_CONTEXT_HASH = "fire_no_context"

_DEFAULT_POLL_INTERVAL = timedelta(seconds=30)
_INTERVAL_FORMS = (
    "a positive timedelta, a positive number of seconds, or a string such as "
    "'2s', '500ms', '5m', '1h' or '1.5' (seconds)"
)
_INTERVAL_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

_F = TypeVar("_F", bound=Callable[..., Any])


class TriggerError(Exception):
    """A poll failed; raised by user ``poll()`` code (any other exception is treated alike)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------- results


def _to_context(value: Any, where: str) -> Context | None:
    """Convert a fire() argument to an owned ``Context`` (or ``None``)."""
    if value is None:
        return None
    if isinstance(value, Context):
        # Copy so that later mutation of the user's object cannot change what was fired;
        # to_dict() already deep-copies clean JSON, so adopting it skips a second check.
        return Context._adopt(value.to_dict())
    if isinstance(value, Mapping):
        # Context validates JSON-ness and raises TypeError naming the offending key.
        return Context(value)
    raise TypeError(
        f"{where}: a context must be a Context, a dict or None, got {type(value).__name__}"
    )


def _check_cursor(cursor: Any) -> str | None:
    if cursor is not None and not isinstance(cursor, str):
        raise TypeError(f"cursor must be a str or None, got {type(cursor).__name__}: {cursor!r}")
    return cursor


class TriggerResult:
    """What a poll returns: skip, or fire one or several executions (SPEC 6.1).

    Build it with :meth:`skip`, :meth:`fire` or :meth:`fire_many`; any of them may carry a
    ``cursor`` string that the engine persists together with the outcome (SPEC 6.5).
    """

    __slots__ = ("_contexts", "_cursor", "_fire")

    def __init__(self, fire: bool, contexts: list[Context | None], cursor: str | None) -> None:
        # Internal: use the classmethods, which validate their input.
        self._fire = fire
        self._contexts = contexts
        self._cursor = cursor

    @classmethod
    def skip(cls, *, cursor: str | None = None) -> TriggerResult:
        """Do not fire; keep polling. ``cursor`` optionally advances the stored cursor."""
        return cls(False, [], _check_cursor(cursor))

    @classmethod
    def fire(
        cls, context: Context | Mapping[str, Any] | None = None, *, cursor: str | None = None
    ) -> TriggerResult:
        """Fire one execution with ``context`` (a ``Context``, a dict, or ``None``)."""
        return cls(True, [_to_context(context, "TriggerResult.fire()")], _check_cursor(cursor))

    @classmethod
    def fire_many(
        cls,
        contexts: Iterable[Context | Mapping[str, Any] | None],
        *,
        cursor: str | None = None,
    ) -> TriggerResult:
        """Fire one execution per context; an empty iterable is a ``ValueError``."""
        if isinstance(contexts, (Mapping, Context, str, bytes)) or not isinstance(
            contexts, Iterable
        ):
            # A dict is iterable (over its keys), which would silently do the wrong thing.
            raise TypeError(
                "TriggerResult.fire_many() takes an iterable of contexts (Context, dict or "
                f"None), got {type(contexts).__name__}; use TriggerResult.fire() for one"
            )
        converted = [
            _to_context(ctx, f"TriggerResult.fire_many() item {i}")
            for i, ctx in enumerate(contexts)
        ]
        if not converted:
            raise ValueError(
                "TriggerResult.fire_many() needs at least one context; "
                "return TriggerResult.skip() to fire nothing"
            )
        return cls(True, converted, _check_cursor(cursor))

    def is_fire_result(self) -> bool:
        """True when this result starts at least one execution."""
        return self._fire

    def is_skip_result(self) -> bool:
        """True when this result starts nothing."""
        return not self._fire

    @property
    def context(self) -> Context | None:
        """The fired context (the first one for ``fire_many``); ``None`` for a skip."""
        return self._contexts[0] if self._contexts else None

    @property
    def contexts(self) -> list[Context | None]:
        """All fired contexts: ``[]`` for a skip, one per execution otherwise."""
        return list(self._contexts)

    @property
    def cursor(self) -> str | None:
        """The cursor to persist with this outcome, or ``None`` to leave it unchanged."""
        return self._cursor

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TriggerResult):
            return NotImplemented
        return (self._fire, self._contexts, self._cursor) == (
            other._fire,
            other._contexts,
            other._cursor,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable contexts: not hashable

    def __repr__(self) -> str:
        cursor = f", cursor={self._cursor!r}" if self._cursor is not None else ""
        if not self._fire:
            return f"TriggerResult.Skip({cursor.removeprefix(', ')})"
        if len(self._contexts) == 1:
            return f"TriggerResult.Fire(context={self._contexts[0]!r}{cursor})"
        return f"TriggerResult.Fire(contexts={self._contexts!r}{cursor})"


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
    ``poll_interval`` and ``allow_concurrent`` may be class attributes, instance attributes
    or properties; they are read when the trigger is registered.
    """

    name: str | None = None
    poll_interval: timedelta | float | int | str = _DEFAULT_POLL_INTERVAL
    allow_concurrent: bool = False

    def __init__(
        self,
        name: str | None = None,
        poll_interval: timedelta | float | int | str | None = None,
        allow_concurrent: bool | None = None,
    ) -> None:
        # Only the given values are set, so class attributes and properties stay in charge
        # of everything the caller did not pass.
        given = {
            "name": name,
            "poll_interval": poll_interval,
            "allow_concurrent": allow_concurrent,
        }
        for attr, value in given.items():
            if value is None:
                continue
            try:
                setattr(self, attr, value)
            except AttributeError:
                raise TypeError(
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
        raise ValueError(
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
    poll: Any,
    workflow: str | None,
    source: object,
) -> TriggerSpec:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"{desc} has no valid name (got {name!r}); set a non-empty string 'name' "
            "(class attribute, instance attribute, property or Trigger(name=...))"
        )
    desc = f"trigger {name!r}"
    interval = parse_interval(poll_interval, what=f"poll_interval of {desc}")
    if not isinstance(allow_concurrent, bool):
        raise ValueError(
            f"allow_concurrent of {desc} must be True or False, got {allow_concurrent!r}"
        )
    if not callable(poll):
        raise ValueError(f"{desc} has no callable poll(); got {poll!r}")
    is_async = _is_async(poll)
    call, takes_cursor = _poll_call(poll, desc, is_async)
    return TriggerSpec(
        name=name,
        poll_interval=interval,
        allow_concurrent=allow_concurrent,
        poll=call,
        is_async=is_async,
        takes_cursor=takes_cursor,
        workflow=workflow,
        source=source,
    )


# --------------------------------------------------------------------------- registry

_lock = threading.Lock()
_registry: dict[str, TriggerSpec] = {}
_listeners: list[Callable[[TriggerSpec], None]] = []


def _store(spec: TriggerSpec) -> TriggerSpec:
    with _lock:
        replaced = spec.name in _registry
        _registry[spec.name] = spec
        listeners = list(_listeners)
    logger.debug("trigger registered", extra={"trigger_name": spec.name, "replaced": replaced})
    # Outside the lock: a listener (a runner) may call back into the registry.
    for listener in listeners:
        try:
            listener(spec)
        except Exception:
            logger.exception("trigger listener failed", extra={"trigger_name": spec.name})
    return spec


def register_trigger(trigger: Trigger | Callable[..., Any]) -> TriggerSpec:
    """Validate ``trigger`` and make it known to runners in this process.

    Reads ``name``, ``poll_interval`` and ``allow_concurrent`` once, now. A missing or empty
    name, an invalid interval, a non-bool ``allow_concurrent`` or a missing ``poll()`` raise
    ``ValueError``. Re-registering a name replaces the earlier trigger. A function already
    decorated with :func:`trigger` may be passed too; its registration is refreshed.
    """
    if not isinstance(trigger, Trigger):
        with _lock:
            existing = next((s for s in _registry.values() if s.source is trigger), None)
        if existing is not None:
            return _store(existing)
    desc = f"trigger {type(trigger).__qualname__} instance"
    poll = getattr(trigger, "poll", None)
    if poll is None:
        raise ValueError(
            f"{trigger!r} is not a trigger: it has no poll(); subclass cloaca.Trigger "
            "or decorate a function with @cloaca.trigger"
        )
    if isinstance(trigger, Trigger) and type(trigger).poll is Trigger.poll:
        raise ValueError(f"{desc} does not implement poll()")
    spec = _build_spec(
        desc=desc,
        name=getattr(trigger, "name", None),
        poll_interval=getattr(trigger, "poll_interval", _DEFAULT_POLL_INTERVAL),
        allow_concurrent=getattr(trigger, "allow_concurrent", False),
        poll=poll,
        workflow=None,
        source=trigger,
    )
    return _store(spec)


@overload
def trigger(func: _F, /) -> _F: ...


@overload
def trigger(
    *,
    name: str | None = None,
    on: str | None = None,
    poll_interval: timedelta | float | int | str = "30s",
    allow_concurrent: bool = False,
) -> Callable[[_F], _F]: ...


def trigger(
    func: _F | None = None,
    /,
    *,
    name: str | None = None,
    on: str | None = None,
    poll_interval: timedelta | float | int | str = "30s",
    allow_concurrent: bool = False,
) -> Any:
    """Decorator form: register a function as a trigger's ``poll()`` (SPEC 6.1).

    The function takes no arguments (or one ``cursor`` argument) and returns a
    :class:`TriggerResult` or a bool (``True`` fires, ``False`` skips). ``name`` defaults to
    the function's ``__name__``; with ``on="<workflow>"`` runners create the trigger
    schedule for that workflow. Registers at decoration time; returns the function unchanged.
    """
    if on is not None and (not isinstance(on, str) or not on.strip()):
        raise ValueError(f"@trigger(on=...) must be a non-empty workflow name, got {on!r}")

    def decorate(fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"@trigger decorates a function, got {type(fn).__name__}")
        _store(
            _build_spec(
                desc=f"@trigger function {getattr(fn, '__qualname__', fn)!r}",
                name=name if name is not None else getattr(fn, "__name__", None),
                poll_interval=poll_interval,
                allow_concurrent=allow_concurrent,
                poll=fn,
                workflow=on,
                source=fn,
            )
        )
        return fn

    # Also accept the bare ``@trigger`` form, which is an easy slip to make.
    return decorate(func) if func is not None else decorate


def get_trigger(name: str) -> TriggerSpec | None:
    """The registered trigger called ``name``, or ``None``."""
    with _lock:
        return _registry.get(name)


def registered_triggers() -> list[TriggerSpec]:
    """All registered triggers, in first-registration order."""
    with _lock:
        return list(_registry.values())


def unregister_trigger(name: str) -> None:
    """Forget the trigger called ``name`` (no error if unknown); mainly for tests."""
    with _lock:
        _registry.pop(name, None)


def add_trigger_listener(callback: Callable[[TriggerSpec], None]) -> None:
    """Call ``callback(spec)`` after every future registration (runners subscribe here)."""
    with _lock:
        if callback not in _listeners:
            _listeners.append(callback)


def remove_trigger_listener(callback: Callable[[TriggerSpec], None]) -> None:
    """Stop calling ``callback``; no error if it was not subscribed."""
    with _lock:
        if callback in _listeners:
            _listeners.remove(callback)


# --------------------------------------------------------------------------- pure helpers


def _plain(context: Mapping[str, Any] | Context) -> Mapping[str, Any]:
    # Context is not a Mapping; its internal dict is read-only here, so no copy is needed.
    return context._raw() if isinstance(context, Context) else context


def context_hash(context: Mapping[str, Any] | Context | None) -> str:
    """Deduplication key of a fired context (SPEC 6.3).

    Hex SHA-256 of the canonical JSON (sorted keys, compact separators, UTF-8);
    ``"fire_no_context"`` for ``None``. An empty context is a context and hashes normally.
    """
    if context is None:
        return NO_CONTEXT_HASH
    canonical = json.dumps(
        _plain(context), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def normalize_poll_result(value: Any, trigger_name: str) -> TriggerResult:
    """Turn what ``poll()`` returned into a ``TriggerResult`` or raise ``TriggerError``.

    ``TriggerResult`` passes through; ``True``/``False`` become ``fire()``/``skip()``.
    """
    if isinstance(value, TriggerResult):
        return value
    if value is True:
        return TriggerResult.fire()
    if value is False:
        return TriggerResult.skip()
    accepted = "return TriggerResult.skip(), TriggerResult.fire(...) or a bool"
    if value is None:
        raise TriggerError(f"trigger {trigger_name!r}: poll() returned None; {accepted}")
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it so Python does not warn about it later
        raise TriggerError(
            f"trigger {trigger_name!r}: poll() returned a coroutine that was not awaited; "
            f"declare poll with 'async def' or {accepted}"
        )
    raise TriggerError(
        f"trigger {trigger_name!r}: poll() returned {type(value).__name__} ({value!r:.80}); "
        f"{accepted}"
    )


def with_trigger_metadata(
    context: Mapping[str, Any] | Context | None,
    trigger_name: str,
    triggered_at: str | datetime,
) -> dict[str, Any]:
    """The fired execution's input: the trigger's context plus ``trigger_name`` and
    ``triggered_at`` (RFC 3339); keys the user already set win (SPEC 6.2)."""
    if isinstance(triggered_at, datetime):
        if triggered_at.tzinfo is None:
            raise ValueError(f"triggered_at must be timezone-aware, got {triggered_at!r}")
        triggered_at = triggered_at.isoformat()
    result: dict[str, Any] = {"trigger_name": trigger_name, "triggered_at": triggered_at}
    if context is not None:
        result.update(copy.deepcopy(dict(_plain(context))))
    return result
