"""Cron schedules: next fire times of a cron expression in an IANA timezone, with DST rules.

Slots are found in local wall time by field-wise arithmetic (:mod:`cloaca.cron.expression`) and
then turned into UTC instants:

- a wall time that does not exist (spring-forward gap) fires once, at the first valid instant
  after the gap; every slot inside the same gap, and the wall time right after it, collapse
  into that one instant;
- an ambiguous wall time (fall-back) fires once, at its first occurrence; the repeated hour
  produces no extra fires.

So results strictly increase and each instant fires at most once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cloaca.cron.expression import SEARCH_YEARS, CronExpression
from cloaca.errors import ValidationError, WrongTypeError

__all__ = ["CronExpression", "CronSchedule", "resolve_timezone", "validate_cron"]

_ONE_SECOND = timedelta(seconds=1)


def resolve_timezone(name: str) -> ZoneInfo:
    """Return the IANA timezone called ``name`` (e.g. ``'Europe/Berlin'``, ``'UTC'``).

    Raises ``ValueError("Invalid timezone '<name>': ...")`` for empty or unknown names.
    """
    hint = "use an IANA timezone name such as 'UTC', 'Europe/Berlin' or 'America/New_York'"
    if not isinstance(name, str):
        raise ValidationError(f"Invalid timezone {name!r}: expected a string; {hint}")
    if not name.strip():
        raise ValidationError(f"Invalid timezone '{name}': the name is empty; {hint}")
    try:
        return ZoneInfo(name)
    # ZoneInfo raises ValueError for malformed keys and OSError for odd paths (a directory).
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(f"Invalid timezone '{name}': not a known timezone; {hint}") from None


def _require_aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise WrongTypeError(f"{name} must be a timezone-aware datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(
            f"{name} must be a timezone-aware datetime, got naive {value.isoformat()!r}; "
            "attach a timezone, e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC)


def _offset(instant: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(instant, UTC).astimezone(zone).utcoffset()


class CronSchedule:
    """A cron expression bound to an IANA timezone; computes fire times as UTC instants.

    ``CronSchedule("30 2 * * *", "Europe/Berlin")``. Invalid input raises ``ValueError``
    starting with ``"Invalid cron expression"`` or ``"Invalid timezone"``.
    """

    __slots__ = ("expression", "timezone", "_zone")

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        self.expression = CronExpression.parse(expression)
        self.timezone = timezone
        self._zone = resolve_timezone(timezone)

    def __repr__(self) -> str:
        return f"CronSchedule({self.expression.expression!r}, {self.timezone!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CronSchedule):
            return NotImplemented
        return (self.expression, self.timezone) == (other.expression, other.timezone)

    def __hash__(self) -> int:
        return hash((self.expression, self.timezone))

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after ``after`` (timezone-aware), as an aware UTC datetime.

        Raises ``ValueError`` for a naive ``after``, and ``ValueError(... "never fires")`` if
        no slot exists within the search horizon (only possible near the end of the calendar).
        """
        instant = _require_aware(after, "after")
        wall, inclusive = self._search_start(instant)
        while True:
            found = self.expression.next_wall_time(wall, inclusive=inclusive)
            if found is None:
                raise ValidationError(
                    f"Invalid cron expression '{self.expression.expression}': never fires "
                    f"within {SEARCH_YEARS} years after {instant.isoformat()}"
                )
            slot = self._to_instant(found)
            if slot > instant:
                return slot
            # Not reachable with well-formed tz data (see _search_start); it guards odd zones
            # by moving on field-wise from the slot that came out too early.
            wall, inclusive = found, False

    def slots_between(
        self, start: datetime, end: datetime, limit: int | None = None
    ) -> list[datetime]:
        """Every fire time with ``start < slot <= end``, ascending; at most the first ``limit``.

        Both bounds must be timezone-aware; an empty list when ``end <= start``.
        """
        low = _require_aware(start, "start")
        high = _require_aware(end, "end")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise WrongTypeError(f"limit must be an int or None, got {limit!r}")
        if limit is not None and limit < 0:
            raise ValidationError(f"limit must be >= 0 or None, got {limit}")
        slots: list[datetime] = []
        while limit is None or len(slots) < limit:
            slot = self.next_after(low)
            if slot > high:
                break
            slots.append(slot)
            low = slot
        return slots

    def latest_between(self, start: datetime, end: datetime) -> datetime | None:
        """The last fire time with ``start < slot <= end``, or ``None`` if there is none.

        Cheap however many slots the range holds (a year of per-second slots included): it
        bisects on whole seconds instead of walking every slot, which catch-up after a long
        downtime relies on.
        """
        low = _require_aware(start, "start")
        high = _require_aware(end, "end")
        if high <= low:
            return None
        first = self.next_after(low)
        if first > high:
            return None
        # Fire times are whole seconds, so the latest slot L is next_after(L - 1s) while
        # next_after(L) is past ``end``: bisect for the largest whole-second offset from
        # ``first`` whose next slot is still within the range (next_after is monotone).
        good, bad = 0, int((high - first).total_seconds()) + 1
        while bad - good > 1:
            middle = (good + bad) // 2
            if self.next_after(first + timedelta(seconds=middle)) <= high:
                good = middle
            else:
                bad = middle
        if good == 0 and self.next_after(first) > high:
            return first
        return self.next_after(first + timedelta(seconds=good))

    def _search_start(self, instant: datetime) -> tuple[datetime, bool]:
        """The local wall time to search from, and whether that wall time itself may fire."""
        local = instant.astimezone(self._zone)
        wall = local.replace(tzinfo=None)
        if not wall.fold:
            return wall, False
        # ``instant`` lies in the repeated hour's second pass. Wall times still inside that
        # hour map to their first occurrence, which is already past, so the search starts at
        # the first wall time after the repeated hour. It lies within one offset change of
        # ``wall``; find it by bisecting whole seconds (transitions are on whole seconds).
        earlier = wall.replace(fold=0, tzinfo=self._zone).utcoffset()
        later = local.utcoffset()
        assert earlier is not None and later is not None
        low = wall.replace(microsecond=0)  # ambiguous
        high = low + (earlier - later)  # not ambiguous any more
        while high - low > _ONE_SECOND:
            middle = low + timedelta(seconds=(high - low) // _ONE_SECOND // 2)
            if self._is_ambiguous(middle):
                low = middle
            else:
                high = middle
        return high, True

    def _is_ambiguous(self, wall: datetime) -> bool:
        first = wall.replace(fold=0, tzinfo=self._zone).utcoffset()
        second = wall.replace(fold=1, tzinfo=self._zone).utcoffset()
        return first != second

    def _to_instant(self, wall: datetime) -> datetime:
        """Map a wall time to its UTC instant: first occurrence, or the end of a DST gap."""
        candidate = wall.replace(tzinfo=self._zone).astimezone(UTC)  # fold=0
        if candidate.astimezone(self._zone).replace(tzinfo=None) == wall:
            return candidate
        # ``wall`` is in a gap. Reading it with the offsets before and after the transition
        # gives two instants that bracket the transition; bisect whole seconds for it.
        other = wall.replace(fold=1, tzinfo=self._zone).astimezone(UTC)
        low, high = sorted((int(candidate.timestamp()), int(other.timestamp())))
        after_offset = _offset(high, self._zone)
        while high - low > 1:
            middle = (low + high) // 2
            if _offset(middle, self._zone) == after_offset:
                high = middle
            else:
                low = middle
        return datetime.fromtimestamp(high, UTC)


def validate_cron(expression: str, timezone: str = "UTC") -> CronSchedule:
    """Check an expression and timezone together; returns the :class:`CronSchedule`."""
    return CronSchedule(expression, timezone)
