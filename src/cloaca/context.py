"""The `Context`: a JSON-valued, string-keyed map passed into and out of tasks.

Every value stored in a Context is a private deep copy in plain JSON form (dict, list, str,
int, float, bool, None), so a task can never change another task's data by aliasing.

Validation and copying happen in one recursive walk over the value. It is measured 2-10x
faster than a ``json.loads(json.dumps(...))`` round trip (immutable strings and numbers are
shared instead of being re-encoded and re-decoded), and it knows which key it is in, so an
error can name the key without a second pass. The walk also counts how deeply lists and
dicts nest, so a value deeper than `MAX_CONTEXT_DEPTH` is refused at the door rather than
failing later in the engine's merge or JSON code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

from cloaca.errors import (
    CloacaError,
    ContextLimitError,
    MissingKeyError,
    ValidationError,
    WrongTypeError,
)

__all__ = ["MAX_CONTEXT_DEPTH", "Context", "ContextLimitError", "check_context_size"]

_isfinite = math.isfinite

#: How deeply a value may nest lists and dicts (``{"k": [[1]]}``: the value of "k" nests 2
#: levels). Far more than data needs, and far below what recursive JSON code (the standard
#: library's encoder and decoder, a user's own walk) handles without a RecursionError.
MAX_CONTEXT_DEPTH = 100


class _NotJson(CloacaError):
    """Internal: raised by `_clean` with a description of the offending part."""


class _TooDeep(CloacaError):
    """Internal: raised by `_clean` when a value nests more than MAX_CONTEXT_DEPTH levels."""


#: Exact types copied as they are (immutable, always JSON); floats still need a check.
_PLAIN = frozenset({str, int, bool, type(None)})


def _clean(value: Any, level: int = 0) -> Any:
    """Return a deep JSON copy of `value`; raise _NotJson or _TooDeep if it is not acceptable.

    ``level`` counts the lists and dicts around `value`. Exact built-in types take the fast
    path (plain items of a container are copied without a call); subclasses (StrEnum,
    IntEnum, OrderedDict, ...) are converted to the plain type, as ``json.dumps`` would.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        if level >= MAX_CONTEXT_DEPTH:
            raise _TooDeep
        inner = level + 1
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    raise _NotJson(
                        f"nested dict key {key!r} of type {type(key).__name__} (keys must be str)"
                    )
                key = str.__str__(key)
            out[key] = item if type(item) in _PLAIN else _clean(item, inner)
        return out
    if kind is list or kind is tuple:
        if level >= MAX_CONTEXT_DEPTH:
            raise _TooDeep
        inner = level + 1
        return [item if type(item) in _PLAIN else _clean(item, inner) for item in value]
    if kind is float:
        if _isfinite(value):
            return value
        raise _NotJson(f"float {value!r} (NaN and Infinity are not JSON)")
    return _clean_subclass(value, level)


def _clean_subclass(value: Any, level: int) -> Any:
    """Slow path of `_clean` for subclasses of the JSON types, and the error for the rest."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return _clean(float.__float__(value), level)
    if isinstance(value, dict):
        return _clean(dict(value), level)
    if isinstance(value, list | tuple):
        return _clean(list(value), level)
    raise _NotJson(f"value of type {type(value).__name__}")


def _is_circular(value: Any) -> bool:
    """True if a list or dict in `value` contains itself (only asked once `_clean` found the
    value too deep: a circular value looks infinitely deep)."""
    stack: list[tuple[Any, frozenset[int]]] = [(value, frozenset())]
    while stack:
        item, ancestors = stack.pop()
        if not isinstance(item, dict | list | tuple):
            continue
        if id(item) in ancestors:
            return True
        if len(ancestors) > MAX_CONTEXT_DEPTH:
            continue  # deeper than anything accepted: nothing more to learn here
        inner = ancestors | {id(item)}
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, inner) for child in children)
    return False


def _too_deep(value: Any, level: int = 0) -> bool:
    """True if `value` (already plain JSON) nests more than MAX_CONTEXT_DEPTH levels."""
    kind = type(value)
    if kind is dict:
        children: Any = value.values()
    elif kind is list:
        children = value
    else:
        return False
    if level >= MAX_CONTEXT_DEPTH:
        return True
    return any(_too_deep(child, level + 1) for child in children)


def _depth_error(key: str) -> ContextLimitError:
    return ContextLimitError(
        f"Context value for key {key!r} is nested more than {MAX_CONTEXT_DEPTH} levels deep "
        f"(lists and dicts inside each other); the limit is {MAX_CONTEXT_DEPTH} levels"
    )


def check_context_size(text: str, limit: int, what: str) -> str:
    """Return the encoded context `text` if it is at most `limit` bytes of UTF-8, else raise
    ContextLimitError naming `what`, the size and the limit (``max_context_bytes``)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size > limit:
        raise ContextLimitError(
            f"{what} is {size} bytes of JSON, over the limit of {limit} bytes "
            f"(DefaultRunnerConfig.max_context_bytes); keep large data outside the context "
            f"and pass a reference to it"
        )
    return text


def _copy(value: Any) -> Any:
    """Deep-copy a value already known to be clean JSON (no checks: the hot read path)."""
    kind = type(value)
    if kind is dict:
        return {key: _copy(item) for key, item in value.items()}
    if kind is list:
        return [_copy(item) for item in value]
    return value


def _check_key(key: Any) -> None:
    """Raise TypeError unless `key` is a str."""
    if not isinstance(key, str):
        raise WrongTypeError(f"Context keys must be str, got {key!r} of type {type(key).__name__}")


def _clean_value(key: str, value: Any) -> Any:
    """Return a private JSON copy of `value`; raise TypeError (not JSON) or ContextLimitError
    (nested too deep), naming `key`."""
    try:
        return _clean(value)
    except _NotJson as exc:
        what = str(exc)
    except _TooDeep:
        if not _is_circular(value):
            raise _depth_error(key) from None
        what = "a circular reference (a list or dict that contains itself)"
    raise WrongTypeError(
        f"Context value for key {key!r} is not JSON-serialisable: {what} "
        f"(accepted: dict, list, tuple, str, int, float, bool, None)"
    )


def _clean_dict(data: Any) -> dict[str, Any]:
    """Validate and deep-copy a mapping of str keys to JSON values."""
    if not isinstance(data, Mapping):
        raise WrongTypeError(
            f"Context data must be a dict with str keys, got {type(data).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in data.items():
        if type(key) is not str:
            _check_key(key)
            key = str.__str__(key)
        out[key] = _clean_value(key, value)
    return out


def _check_depth(text: str | bytes | bytearray, data: dict[str, Any]) -> None:
    """Raise ContextLimitError if a value of decoded `data` nests too deeply."""
    if isinstance(text, str):
        brackets = text.count("[") + text.count("{")
    else:
        brackets = text.count(b"[") + text.count(b"{")
    # No more brackets in the whole text than the limit: no value can be too deep, no walk.
    if brackets <= MAX_CONTEXT_DEPTH:
        return
    for key, value in data.items():
        if _too_deep(value, 0):
            raise _depth_error(key)


def _reject_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not valid JSON."""
    raise ValidationError(f"invalid JSON constant {name!r} (NaN/Infinity are not JSON)")


class Context(Mapping[str, Any]):
    """A JSON-valued, string-keyed map passed into and out of tasks.

    A read-only ``Mapping`` to the rest of Python (``dict(ctx)``, ``ctx.items()``, any API
    that takes a dict takes a Context), with its own ways to change it.

    Values are deep-copied on the way in and on the way out, so callers never share
    mutable state with the context. Keys must be `str`; values must be JSON-serialisable
    (dict, list, tuple, str, int, float, bool, None; NaN and Infinity are rejected) and nest
    at most `MAX_CONTEXT_DEPTH` lists and dicts deep (deeper: `ContextLimitError`, a
    ValueError naming the key, from construction, set/insert/update and `from_json`).
    """

    __slots__ = ("_data",)
    __hash__ = None  # type: ignore[assignment]  # mutable, like dict

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        """Create a context holding a deep copy of `data` (empty when None)."""
        self._data: dict[str, Any] = {} if data is None else _clean_dict(data)

    @classmethod
    def _adopt(cls, data: dict[str, Any]) -> Context:
        """Wrap `data` without copying or validating it (internal, hot path).

        The caller guarantees `data` is clean JSON with str keys and hands over ownership:
        nobody else may keep a reference to it.
        """
        ctx = cls.__new__(cls)
        ctx._data = data
        return ctx

    def _raw(self) -> dict[str, Any]:
        """Return the internal dict itself, without copying (internal, read-only use)."""
        return self._data

    def get(self, key: str, default: Any = None) -> Any:
        """Return a copy of the value under `key`, or `default` if the key is missing."""
        try:
            value = self._data[key]
        except (KeyError, TypeError):
            return default
        return _copy(value)

    def set(self, key: str, value: Any) -> None:
        """Insert or replace the value under `key`."""
        _check_key(key)
        self._data[key] = _clean_value(key, value)

    def insert(self, key: str, value: Any) -> None:
        """Insert a new key; raise ValueError ("Key already exists") if it is present."""
        _check_key(key)
        if key in self._data:
            raise ValidationError(f"Key already exists: {key}")
        self._data[key] = _clean_value(key, value)

    def update(self, key: str, value: Any) -> None:
        """Replace the value of an existing key; raise KeyError if it is missing."""
        _check_key(key)
        if key not in self._data:
            raise MissingKeyError(f"Key not found: {key}")
        self._data[key] = _clean_value(key, value)

    def remove(self, key: str) -> Any:
        """Remove `key` and return its value, or return None if it was not present."""
        try:
            return self._data.pop(key)
        except (KeyError, TypeError):
            return None

    def to_dict(self) -> dict[str, Any]:
        """Return a deep copy of the data as a plain dict."""
        return _copy(self._data)

    def update_from_dict(self, data: Mapping[str, Any]) -> None:
        """Set every key of `data` (validated as a whole first, so a failure changes nothing)."""
        self._data.update(_clean_dict(data))

    def to_json(self) -> str:
        """Return the data as compact JSON text."""
        return json.dumps(self._data, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> Context:
        """Parse JSON text holding an object; raise ValueError for anything else."""
        if not isinstance(text, str | bytes | bytearray):
            raise ValidationError(
                f"Context.from_json expects JSON text (str), got {type(text).__name__}"
            )
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(f"Invalid JSON for Context: {exc}") from None
        if not isinstance(data, dict):
            raise ValidationError(
                f"Context JSON must be an object, got {type(data).__name__}: {text!r:.80}"
            )
        _check_depth(text, data)
        return cls._adopt(data)

    def __len__(self) -> int:
        """Number of keys."""
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        """True if `key` is present."""
        try:
            return key in self._data
        except TypeError:  # unhashable: certainly not a key
            return False

    def __getitem__(self, key: str) -> Any:
        """Return a copy of the value under `key`; KeyError if missing."""
        try:
            value = self._data[key]
        except KeyError:
            raise MissingKeyError(key) from None
        return _copy(value)

    def __setitem__(self, key: str, value: Any) -> None:
        """Insert or replace the value under `key` (same as `set`)."""
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        """Remove `key`; KeyError if missing."""
        try:
            del self._data[key]
        except KeyError:
            raise MissingKeyError(key) from None

    def __iter__(self) -> Iterator[str]:
        """Iterate over the keys in insertion order."""
        return iter(self._data)

    def __eq__(self, other: object) -> bool:
        """Contexts are equal when their data are equal."""
        if isinstance(other, Context):
            return self._data == other._data
        return NotImplemented

    def __repr__(self) -> str:
        """`Context(<compact json>)`."""
        return f"Context({self.to_json()})"
