"""Time as an argument: the clock the engine reads.

Only ``engine/loop.py`` waits; everything else asks a :class:`Clock` for ``now`` so tests
can substitute :class:`cloaca.testing.FakeClock` and drive schedules deterministically.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from cloaca.errors import ValidationError


class Clock(Protocol):
    """Source of the current time (aware UTC datetimes)."""

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """Return ``datetime.now(UTC)``."""
        return datetime.now(UTC)


def to_db_time(value: datetime) -> str:
    """Render an aware datetime as the fixed-width UTC text stored in the database.

    The fixed width keeps lexicographic order equal to time order, so the database can
    compare and index these strings directly.
    """
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValidationError(f"naive datetime {value!r}: an aware datetime is required")
        value = value.astimezone(UTC)
    if value.year < 1000:  # strftime's %Y does not pad a short year: kept as it was
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # Formatting the fields is several times faster than strftime; the engine formats
    # several timestamps per task and per trigger poll.
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 (faster than format specs)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def from_db_time(value: str | None) -> datetime | None:
    """Parse a timestamp written by :func:`to_db_time` (``None`` stays ``None``)."""
    if value is None:
        return None
    return datetime.fromisoformat(value)


def rfc3339(value: datetime | None) -> str | None:
    """Format an aware datetime as an RFC 3339 string for the compat API."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
