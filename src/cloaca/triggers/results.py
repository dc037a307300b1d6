"""What a trigger poll produces, and the pure helpers the engine applies to it.

``TriggerResult`` (skip / fire / fire_many, with an optional cursor) and ``TriggerError`` are
the values user ``poll()`` code deals in. ``context_hash`` (the dedup key, SPEC 6.3),
``normalize_poll_result`` and ``with_trigger_metadata`` are the pure decisions the trigger
scheduler makes about them. Nothing here runs a poll or touches the database;
:mod:`cloaca.triggers.definition` re-exports every public name.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from cloaca.context import Context
from cloaca.errors import TriggerError, ValidationError, WrongTypeError

__all__ = [
    "NO_CONTEXT_HASH",
    "TriggerError",
    "TriggerResult",
    "context_hash",
    "normalize_poll_result",
    "with_trigger_metadata",
]

#: The dedup hash recorded for a fire without a context (SPEC 6.3).
NO_CONTEXT_HASH = "fire_no_context"


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
    raise WrongTypeError(
        f"{where}: a context must be a Context, a dict or None, got {type(value).__name__}"
    )


def _check_cursor(cursor: Any) -> str | None:
    if cursor is not None and not isinstance(cursor, str):
        raise WrongTypeError(
            f"cursor must be a str or None, got {type(cursor).__name__}: {cursor!r}"
        )
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
            raise WrongTypeError(
                "TriggerResult.fire_many() takes an iterable of contexts (Context, dict or "
                f"None), got {type(contexts).__name__}; use TriggerResult.fire() for one"
            )
        converted = [
            _to_context(ctx, f"TriggerResult.fire_many() item {i}")
            for i, ctx in enumerate(contexts)
        ]
        if not converted:
            raise ValidationError(
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
            raise ValidationError(f"triggered_at must be timezone-aware, got {triggered_at!r}")
        triggered_at = triggered_at.isoformat()
    result: dict[str, Any] = {"trigger_name": trigger_name, "triggered_at": triggered_at}
    if context is not None:
        result.update(copy.deepcopy(dict(_plain(context))))
    return result
