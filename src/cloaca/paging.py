"""The one check every listing call applies to its ``limit`` / ``offset`` arguments."""

from __future__ import annotations

from cloaca.errors import ValidationError


def check_count(label: str, value: object, *, optional: bool = True) -> None:
    """Raise ``ValueError`` unless ``value`` is a non-negative int (or None if optional)."""
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        accepted = "a non-negative integer or None" if optional else "a non-negative integer"
        raise ValidationError(f"{label} {value!r} must be {accepted}")
