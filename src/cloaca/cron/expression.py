"""Cron expression syntax: parse text into sets of allowed values and match local wall times.

This module is pure and knows nothing about timezones: it works on naive *wall clock*
datetimes. Turning wall times into instants (and the DST rules) is the job of
:mod:`cloaca.cron.schedule`.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import MAXYEAR, datetime, timedelta

from cloaca.errors import ValidationError

__all__ = ["SEARCH_YEARS", "CronExpression"]

SEARCH_YEARS = 10
"""How many years ahead a next-slot search looks; Feb 29 can be 8 years away (2096 → 2104)."""

_FORMS = (
    "expected 5 fields 'minute hour day-of-month month day-of-week' "
    "or 6 fields 'second minute hour day-of-month month day-of-week'"
)
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# The longest each month can ever be (Feb 29 exists in leap years), for "never fires" checks.
_MAX_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_UNRESTRICTED = ("*", "?")
# Quartz-style "last", "nearest weekday" and "nth weekday" forms, named in their own error.
_QUARTZ_ONLY = re.compile(r"^(L|LW|L-\d+|\d+[LW]|\w+#\d+)$", re.IGNORECASE)


class _FieldError(ValidationError):
    """A problem inside one field; :meth:`CronExpression.parse` adds the expression prefix."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()  # names[i] stands for the value low + i
    wildcard_high: int | None = None  # upper end of `*` and `a/n` when it differs from `high`

    def accepted(self) -> str:
        text = f"{self.low}-{self.high}"
        return f"{text} or {self.names[0]}-{self.names[-1]}" if self.names else text


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field(
    "month",
    1,
    12,
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"),
)
# 7 is a second spelling of Sunday; `*` and `a/n` stop at 6 so Sunday is not counted twice
# (and `1/2` does not sneak Sunday in through 7).
_DAY_OF_WEEK = _Field(
    "day-of-week", 0, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), wildcard_high=6
)
_FIELDS = (_SECOND, _MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)


def _parse_value(token: str, spec: _Field, *, range_end: bool = False) -> int:
    if not token:
        raise _FieldError(f"missing value in {spec.name} field (accepted: {spec.accepted()})")
    upper = token.upper()
    if upper in spec.names:
        value = spec.low + spec.names.index(upper)
        # `FRI-SUN` reads naturally as Friday through Sunday: let SUN end a range as 7.
        return 7 if spec is _DAY_OF_WEEK and range_end and value == 0 else value
    if not (token.isascii() and token.isdigit()):
        if _QUARTZ_ONLY.match(token):
            raise _FieldError(
                f"unsupported value '{token}' in {spec.name} field: L, W and # are not supported"
            )
        raise _FieldError(
            f"unknown value '{token}' in {spec.name} field (accepted: {spec.accepted()})"
        )
    value = int(token)
    if not spec.low <= value <= spec.high:
        raise _FieldError(
            f"value {value} out of range for {spec.name} field (accepted: {spec.accepted()})"
        )
    return value


def _parse_step(token: str, spec: _Field, part: str) -> int:
    span = spec.high - spec.low + 1
    if not (token.isascii() and token.isdigit()) or not 1 <= int(token) <= span:
        raise _FieldError(
            f"bad step '{token}' in {spec.name} field '{part}': "
            f"the step must be a whole number from 1 to {span}"
        )
    return int(token)


def _parse_part(part: str, spec: _Field) -> range:
    base, slash, step_text = part.partition("/")
    step = _parse_step(step_text, spec, part) if slash else 1
    top = spec.high if spec.wildcard_high is None else spec.wildcard_high
    if base in _UNRESTRICTED:
        if base == "?" and spec not in (_DAY_OF_MONTH, _DAY_OF_WEEK):
            raise _FieldError(
                f"'?' is only allowed in the day-of-month and day-of-week fields, "
                f"not in the {spec.name} field"
            )
        return range(spec.low, top + 1, step)
    if "-" in base:
        first, _, last = base.partition("-")
        low = _parse_value(first, spec)
        high = _parse_value(last, spec, range_end=True)
        if low > high:
            raise _FieldError(
                f"reversed range '{base}' in {spec.name} field: the start must not exceed the end"
            )
        return range(low, high + 1, step)
    low = _parse_value(base, spec)
    # `7/n` in day-of-week starts past the wildcard's top (6): it still means Sunday.
    return range(low, (max(top, low) if slash else low) + 1, step)


def _parse_field(text: str, spec: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise _FieldError(f"empty list item in {spec.name} field '{text}'")
        values.update(_parse_part(part, spec))
    if spec is _DAY_OF_WEEK and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values)


def _can_ever_fire(months: frozenset[int], days: frozenset[int], day_only: bool) -> bool:
    # Every month contains every weekday, so only a day-of-month restriction that is not
    # OR-ed with a weekday restriction can make a schedule impossible (Feb 30, Apr 31, ...).
    if not day_only:
        return True
    return any(day <= _MAX_MONTH_DAYS[month - 1] for month in months for day in days)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression: the set of allowed values per field.

    Build one with :meth:`parse`. A 5-field expression has ``seconds == {0}`` and
    ``has_seconds`` false. Day-of-week uses 0-6 with 0 = Sunday (7 is folded into 0). When
    both day fields are restricted (neither is ``*`` nor ``?``), a day matches if EITHER
    matches, as in classic cron; otherwise the restricted one must match.
    """

    expression: str
    has_seconds: bool
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]
    day_of_month_restricted: bool
    day_of_week_restricted: bool
    _sorted: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)
    # Matching days per (year, month): per-second schedules ask for the same month all the time.
    _days_cache: dict[tuple[int, int], tuple[int, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        ordered = tuple(
            tuple(sorted(values))
            for values in (self.months, self.hours, self.minutes, self.seconds)
        )
        object.__setattr__(self, "_sorted", ordered)

    @classmethod
    def parse(cls, expression: str) -> CronExpression:
        """Parse ``expression``: 5 fields, 6 with leading seconds, or an ``@hourly``-style alias.

        Raises ``ValueError("Invalid cron expression '<expr>': ...")`` saying what is wrong,
        including "never fires" for expressions no calendar date can satisfy (``0 0 30 2 *``).
        """
        if not isinstance(expression, str):
            raise ValidationError(
                f"Invalid cron expression {expression!r}: expected a string, "
                f"got {type(expression).__name__}"
            )
        text = expression.strip()
        prefix = f"Invalid cron expression '{text}': "
        if not text:
            raise ValidationError(prefix + "the expression is empty; " + _FORMS)
        body = text
        if text.startswith("@"):
            if text.lower() not in _ALIASES:
                raise ValidationError(
                    prefix + f"unknown alias; accepted aliases are {', '.join(_ALIASES)}"
                )
            body = _ALIASES[text.lower()]
        parts = body.split()
        if len(parts) not in (5, 6):
            raise ValidationError(prefix + f"got {len(parts)} field(s); " + _FORMS)
        has_seconds = len(parts) == 6
        if not has_seconds:
            parts.insert(0, "0")
        try:
            seconds, minutes, hours, days, months, weekdays = (
                _parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)
            )
        except _FieldError as error:
            raise ValidationError(prefix + str(error)) from None
        dom_restricted = parts[3] not in _UNRESTRICTED
        dow_restricted = parts[5] not in _UNRESTRICTED
        if not _can_ever_fire(months, days, dom_restricted and not dow_restricted):
            raise ValidationError(
                prefix + "never fires: no month in the month field has any of the days "
                "in the day-of-month field"
            )
        return cls(
            expression=text,
            has_seconds=has_seconds,
            seconds=seconds,
            minutes=minutes,
            hours=hours,
            days_of_month=days,
            months=months,
            days_of_week=weekdays,
            day_of_month_restricted=dom_restricted,
            day_of_week_restricted=dow_restricted,
        )

    def _day_matches(self, day: int, weekday: int) -> bool:
        dom_ok = day in self.days_of_month
        dow_ok = weekday in self.days_of_week
        if self.day_of_month_restricted and self.day_of_week_restricted:
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def matches(self, wall: datetime) -> bool:
        """Whether the wall clock time ``wall`` (tzinfo ignored, microseconds must be 0) fires."""
        return (
            wall.microsecond == 0
            and wall.second in self.seconds
            and wall.minute in self.minutes
            and wall.hour in self.hours
            and wall.month in self.months
            and self._day_matches(wall.day, wall.isoweekday() % 7)
        )

    def _days(self, year: int, month: int) -> tuple[int, ...]:
        key = (year, month)
        days = self._days_cache.get(key)
        if days is None:
            first_weekday, length = calendar.monthrange(year, month)  # Monday == 0
            # Cron counts Sunday as 0: Monday (Python 0) is cron 1.
            days = tuple(
                day
                for day in range(1, length + 1)
                if self._day_matches(day, (first_weekday + day) % 7)
            )
            if len(self._days_cache) > 64:
                self._days_cache.clear()
            self._days_cache[key] = days
        return days

    def next_wall_time(self, start: datetime, *, inclusive: bool) -> datetime | None:
        """The first matching naive wall time at or after (``inclusive``) / after ``start``.

        Field-wise arithmetic (never a scan); ``None`` when nothing matches within
        :data:`SEARCH_YEARS` years or before the end of ``datetime``'s range.
        """
        floor = start.replace(microsecond=0, tzinfo=None)
        if floor < start.replace(tzinfo=None) or not inclusive:
            if floor == datetime.max.replace(microsecond=0):
                return None
            floor += timedelta(seconds=1)
        months, hours, minutes, seconds = self._sorted
        year, month, day = floor.year, floor.month, floor.day
        hour, minute, second = floor.hour, floor.minute, floor.second
        last_year = min(year + SEARCH_YEARS, MAXYEAR)
        while year <= last_year:
            index = bisect_left(months, month)
            if index == len(months):
                year, month, day, hour, minute, second = year + 1, months[0], 1, 0, 0, 0
                continue
            if months[index] != month:
                month, day, hour, minute, second = months[index], 1, 0, 0, 0
            days = self._days(year, month)
            index = bisect_left(days, day)
            if index == len(days):
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                day, hour, minute, second = 1, 0, 0, 0
                continue
            if days[index] != day:
                day, hour, minute, second = days[index], 0, 0, 0
            index = bisect_left(hours, hour)
            if index == len(hours):  # no hour left today: the day lookup above rolls over
                day, hour, minute, second = day + 1, 0, 0, 0
                continue
            if hours[index] != hour:
                hour, minute, second = hours[index], 0, 0
            index = bisect_left(minutes, minute)
            if index == len(minutes):
                hour, minute, second = hour + 1, 0, 0
                continue
            if minutes[index] != minute:
                minute, second = minutes[index], 0
            index = bisect_left(seconds, second)
            if index == len(seconds):
                minute, second = minute + 1, 0
                continue
            return datetime(year, month, day, hour, minute, seconds[index])
        return None
