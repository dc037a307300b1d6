"""The per-process registry of triggers that runners read and subscribe to."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cloaca.triggers.definition import TriggerSpec

logger = logging.getLogger("cloaca.triggers.definition")

_lock = threading.Lock()
_registry: dict[str, TriggerSpec] = {}
_listeners: list[Callable[[TriggerSpec], None]] = []


def store(spec: TriggerSpec) -> TriggerSpec:
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


def get_trigger(name: str) -> TriggerSpec | None:
    """The registered trigger called ``name``, or ``None``."""
    # No lock: one dict lookup is atomic, and the scheduler asks for every poll it claims.
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


def registered_from(source: object) -> TriggerSpec | None:
    """The registered trigger built from ``source`` (a decorated function), or ``None``."""
    with _lock:
        return next((s for s in _registry.values() if s.source is source), None)
