"""Cron parsing, next-fire arithmetic and DST rules (cloaca.cron)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloaca.cron.schedule import CronExpression, CronSchedule, resolve_timezone, validate_cron


def utc(text: str) -> datetime:
    """Parse an ISO timestamp ending in Z (or with an offset) into an aware datetime."""
    return datetime.fromisoformat(text)


# --------------------------------------------------------------------------- parsing

GOOD = [
    # expression, attribute, expected value
    ("* * * * *", "has_seconds", False),
    ("* * * * *", "seconds", frozenset({0})),
    ("* * * * *", "minutes", frozenset(range(60))),
    ("* * * * *", "days_of_week", frozenset(range(7))),
    ("*/15 * * * *", "minutes", frozenset({0, 15, 30, 45})),
    ("5-20/5 * * * *", "minutes", frozenset({5, 10, 15, 20})),
    ("10/20 * * * *", "minutes", frozenset({10, 30, 50})),
    ("1,2,3-4 * * * *", "minutes", frozenset({1, 2, 3, 4})),
    ("0 0-23/6 * * *", "hours", frozenset({0, 6, 12, 18})),
    ("0 0 * * 7", "days_of_week", frozenset({0})),
    ("0 0 * * 0,7", "days_of_week", frozenset({0})),
    ("0 0 * * MON-FRI", "days_of_week", frozenset({1, 2, 3, 4, 5})),
    ("0 0 * * fri-Sun", "days_of_week", frozenset({5, 6, 0})),
    ("0 0 * * */2", "days_of_week", frozenset({0, 2, 4, 6})),
    ("0 0 * * 1/2", "days_of_week", frozenset({1, 3, 5})),
    ("0 0 * * 5-7", "days_of_week", frozenset({5, 6, 0})),
    ("0 0 * * 7/1", "days_of_week", frozenset({0})),  # starts past 6: still Sunday
    ("0 0 * * SUN/3", "days_of_week", frozenset({0, 3, 6})),
    ("0 0 1 jan,Jul *", "months", frozenset({1, 7})),
    ("0 0 1 JAN-MAR/2 *", "months", frozenset({1, 3})),
    ("0 0 ? * MON", "day_of_month_restricted", False),
    ("0 0 ? * MON", "day_of_week_restricted", True),
    ("0 0 1 * *", "day_of_month_restricted", True),
    ("0 0 1 * *", "day_of_week_restricted", False),
    ("*/10 * * * * *", "has_seconds", True),
    ("*/10 * * * * *", "seconds", frozenset({0, 10, 20, 30, 40, 50})),
    ("  @daily  ", "expression", "@daily"),
    ("@daily", "hours", frozenset({0})),
    ("@midnight", "minutes", frozenset({0})),
    ("@HOURLY", "hours", frozenset(range(24))),
    ("@hourly", "minutes", frozenset({0})),
    ("@weekly", "days_of_week", frozenset({0})),
    ("@monthly", "days_of_month", frozenset({1})),
    ("@yearly", "months", frozenset({1})),
    ("@annually", "days_of_month", frozenset({1})),
    ("0 0 29 2 *", "days_of_month", frozenset({29})),
    ("0 0 31 2 MON", "months", frozenset({2})),  # OR rule: Mondays in February fire
    ("0\t0  1 * *", "days_of_month", frozenset({1})),
]


@pytest.mark.parametrize(("expression", "attribute", "expected"), GOOD)
def test_parse_good(expression: str, attribute: str, expected: object) -> None:
    assert getattr(CronExpression.parse(expression), attribute) == expected


BAD = [
    # expression, substrings the message must contain
    ("", ["the expression is empty", "5 fields", "6 fields"]),
    ("   ", ["the expression is empty"]),
    ("* * * *", ["got 4 field(s)", "5 fields 'minute hour", "6 fields 'second minute"]),
    ("* * * * * * *", ["got 7 field(s)"]),
    ("60 * * * *", ["value 60 out of range for minute field (accepted: 0-59)"]),
    ("* 24 * * *", ["value 24 out of range for hour field (accepted: 0-23)"]),
    ("* * 0 * *", ["value 0 out of range for day-of-month field (accepted: 1-31)"]),
    ("* * 32 * *", ["day-of-month field"]),
    ("* * * 13 *", ["value 13 out of range for month field (accepted: 1-12 or JAN-DEC)"]),
    ("* * * * 8", ["value 8 out of range for day-of-week field (accepted: 0-7 or SUN-SAT)"]),
    ("60 * * * * *", ["value 60 out of range for second field"]),
    ("*/0 * * * *", ["bad step '0' in minute field '*/0'", "from 1 to 60"]),
    ("*/61 * * * *", ["bad step '61'"]),
    ("*/x * * * *", ["bad step 'x'"]),
    ("5/ * * * *", ["bad step ''"]),
    ("30-10 * * * *", ["reversed range '30-10' in minute field"]),
    ("0 0 * * SAT-MON", ["reversed range 'SAT-MON' in day-of-week field"]),
    ("* * * FOO *", ["unknown value 'FOO' in month field (accepted: 1-12 or JAN-DEC)"]),
    ("* * * MON *", ["unknown value 'MON' in month field"]),
    ("* * * WED *", ["unknown value 'WED' in month field"]),
    ("* * * * JUL", ["unknown value 'JUL' in day-of-week field"]),
    ("0 0 15W * *", ["unsupported value '15W'"]),
    ("0 0 * * 5L", ["unsupported value '5L'"]),
    ("* * * * FUNDAY", ["unknown value 'FUNDAY' in day-of-week field"]),
    ("1.5 * * * *", ["unknown value '1.5' in minute field"]),
    ("? * * * *", ["'?' is only allowed in the day-of-month and day-of-week fields"]),
    ("1,,2 * * * *", ["empty list item in minute field '1,,2'"]),
    ("-5 * * * *", ["missing value in minute field"]),
    ("5- * * * *", ["missing value in minute field"]),
    ("0 0 L * *", ["unsupported value 'L'", "not supported"]),
    ("0 0 * * 5#3", ["unsupported value '5#3'"]),
    ("@reboot", ["unknown alias", "@hourly"]),
    ("0 0 30 2 *", ["never fires"]),
    ("0 0 31 4,6,9,11 *", ["never fires"]),
    ("0 0 31 2 ?", ["never fires"]),
    ("0 0 0 30 2 *", ["never fires"]),
]


@pytest.mark.parametrize(("expression", "fragments"), BAD)
def test_parse_bad(expression: str, fragments: list[str]) -> None:
    with pytest.raises(ValueError) as caught:
        CronExpression.parse(expression)
    message = str(caught.value)
    assert message.startswith(f"Invalid cron expression '{expression.strip()}': ")
    for fragment in fragments:
        assert fragment in message


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match=r"^Invalid cron expression 5: expected a string, got int"):
        CronExpression.parse(5)  # type: ignore[arg-type]


def test_parsed_expressions_are_hashable_values() -> None:
    first, second = CronExpression.parse("*/5 * * * *"), CronExpression.parse("*/5 * * * *")
    assert first == second and hash(first) == hash(second)
    assert len({first, second, CronExpression.parse("@hourly")}) == 2
    with pytest.raises(AttributeError):
        first.expression = "@daily"  # type: ignore[misc]


# --------------------------------------------------------------------------- timezones


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "the name is empty"),
        ("  ", "the name is empty"),
        ("Mars/Olympus_Mons", "not a known timezone"),
        ("Europe/Berlin ", "not a known timezone"),
        ("Europe", "not a known timezone"),
        ("../etc/passwd", "not a known timezone"),
        ("/etc/localtime", "not a known timezone"),
    ],
)
def test_unknown_timezones(name: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        resolve_timezone(name)
    message = str(caught.value)
    assert message.startswith(f"Invalid timezone '{name}': ")
    assert fragment in message and "'Europe/Berlin'" in message


def test_schedule_reports_both_kinds_of_error() -> None:
    with pytest.raises(ValueError, match=r"^Invalid timezone 'Nowhere/City': "):
        CronSchedule("* * * * *", "Nowhere/City")
    with pytest.raises(ValueError, match=r"^Invalid cron expression 'x': "):
        validate_cron("x", "UTC")
    schedule = validate_cron("*/5 * * * *", "Europe/Berlin")
    assert (schedule.timezone, schedule.expression.expression) == ("Europe/Berlin", "*/5 * * * *")
    assert schedule == CronSchedule("*/5 * * * *", "Europe/Berlin")
    assert schedule != CronSchedule("*/5 * * * *", "UTC")


# --------------------------------------------------------------------------- next_after

NEXT = [
    # expression, timezone, after, expected
    # every second (6 fields), including sub-second `after` and a year rollover
    ("* * * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"),
    ("* * * * * *", "UTC", "2026-01-01T00:00:00.500Z", "2026-01-01T00:00:01Z"),
    ("* * * * * *", "UTC", "2025-12-31T23:59:59Z", "2026-01-01T00:00:00Z"),
    ("*/20 * * * * *", "UTC", "2026-01-01T10:00:41Z", "2026-01-01T10:01:00Z"),
    ("30 0 12 * * *", "UTC", "2026-01-01T12:00:30Z", "2026-01-02T12:00:30Z"),
    # 5 fields: every 15 minutes, hour and day rollovers
    ("*/15 * * * *", "UTC", "2026-01-01T10:07:00Z", "2026-01-01T10:15:00Z"),
    ("*/15 * * * *", "UTC", "2026-01-01T10:45:00Z", "2026-01-01T11:00:00Z"),
    ("*/15 * * * *", "UTC", "2026-01-01T23:50:00Z", "2026-01-02T00:00:00Z"),
    ("*/15 * * * *", "UTC", "2026-01-01T10:14:59.999Z", "2026-01-01T10:15:00Z"),
    # day-of-month / day-of-week: OR when both restricted, else the restricted one
    ("0 0 13 * FRI", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),  # Friday 2nd
    ("0 0 13 * FRI", "UTC", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z"),  # Tuesday 13th
    ("0 0 13 * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z"),
    ("0 0 ? * FRI", "UTC", "2026-01-03T00:00:00Z", "2026-01-09T00:00:00Z"),
    ("0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"),  # Sunday
    ("0 9 * * MON-FRI", "UTC", "2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z"),
    ("0 0 1 * MON", "UTC", "2026-01-27T00:00:00Z", "2026-02-01T00:00:00Z"),  # the 1st (Sun)
    # month lengths, leap days, year rollovers
    ("0 0 31 * *", "UTC", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"),
    ("0 0 30 * *", "UTC", "2026-01-30T00:00:00Z", "2026-03-30T00:00:00Z"),
    ("0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"),
    ("0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"),  # 2100 not leap
    ("0 0 29 2 *", "UTC", "1999-03-01T00:00:00Z", "2000-02-29T00:00:00Z"),  # 2000 is leap
    ("59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"),
    ("@yearly", "UTC", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("@monthly", "UTC", "2026-12-15T00:00:00Z", "2027-01-01T00:00:00Z"),
    ("0 0 1 JAN,JUL *", "UTC", "2026-01-01T00:00:00Z", "2026-07-01T00:00:00Z"),
    # a non-UTC `after` and a fixed-offset local zone
    ("0 12 * * *", "UTC", "2026-01-01T13:30:00+02:00", "2026-01-01T12:00:00Z"),
    ("0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z", "2026-01-01T03:30:00Z"),
    # Europe/Berlin spring forward 2026-03-29: 02:00 CET -> 03:00 CEST at 01:00 UTC
    ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"),
    ("30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"),
    ("* * * * *", "Europe/Berlin", "2026-03-29T00:58:30Z", "2026-03-29T00:59:00Z"),
    ("* * * * *", "Europe/Berlin", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z"),
    ("* * * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T01:01:00Z"),
    ("0 * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z"),
    ("0 * * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"),
    ("15 2 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"),
    # Europe/Berlin fall back 2026-10-25: 03:00 CEST -> 02:00 CET at 01:00 UTC
    ("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"),
    ("30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"),
    ("* * * * *", "Europe/Berlin", "2026-10-25T00:59:00Z", "2026-10-25T02:00:00Z"),
    ("* * * * *", "Europe/Berlin", "2026-10-25T01:30:00Z", "2026-10-25T02:00:00Z"),
    ("* * * * * *", "Europe/Berlin", "2026-10-25T01:59:59.5Z", "2026-10-25T02:00:00Z"),
    ("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", "2026-10-25T00:00:00Z"),
    ("0 * * * *", "Europe/Berlin", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z"),
    # America/New_York spring forward 2026-03-08: 02:00 EST -> 03:00 EDT at 07:00 UTC
    ("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"),
    ("30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"),
    ("*/15 * * * *", "America/New_York", "2026-03-08T06:50:00Z", "2026-03-08T07:00:00Z"),
    ("*/15 * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T07:15:00Z"),
    ("0 * * * *", "America/New_York", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"),
    ("0 * * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"),
    # America/New_York fall back 2026-11-01: 02:00 EDT -> 01:00 EST at 06:00 UTC
    ("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"),
    ("30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"),
    ("0 * * * *", "America/New_York", "2026-11-01T04:30:00Z", "2026-11-01T05:00:00Z"),
    ("0 * * * *", "America/New_York", "2026-11-01T05:00:00Z", "2026-11-01T07:00:00Z"),
    ("* * * * *", "America/New_York", "2026-11-01T06:10:00Z", "2026-11-01T07:00:00Z"),
    # Australia/Lord_Howe shifts by 30 minutes: +10:30 <-> +11:00
    ("15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z", "2026-10-03T15:30:00Z"),
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00Z", "2026-04-04T14:45:00Z"),
    ("45 1 * * *", "Australia/Lord_Howe", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"),
    ("*/10 * * * *", "Australia/Lord_Howe", "2026-04-04T14:55:00Z", "2026-04-04T15:30:00Z"),
]


@pytest.mark.parametrize(("expression", "zone", "after", "expected"), NEXT)
def test_next_after(expression: str, zone: str, after: str, expected: str) -> None:
    result = CronSchedule(expression, zone).next_after(utc(after))
    assert result == utc(expected)
    assert result.tzinfo is UTC


DST_DAYS = [
    # expression, zone, day start (UTC), day end (UTC), expected number of fires
    ("* * * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23 * 60),
    ("* * * * *", "Europe/Berlin", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 24 * 60),
    ("0 * * * *", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z", 23),
    ("0 * * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z", 24),
    ("*/5 * * * * *", "Europe/Berlin", "2026-03-29T00:00:00Z", "2026-03-29T02:00:00Z", 24 * 60),
]


@pytest.mark.parametrize(("expression", "zone", "start", "end", "count"), DST_DAYS)
def test_dst_days_fire_each_instant_once(
    expression: str, zone: str, start: str, end: str, count: int
) -> None:
    slots = CronSchedule(expression, zone).slots_between(utc(start), utc(end))
    assert len(slots) == count
    assert slots == sorted(set(slots))


def test_slots_in_a_gap_collapse_into_one() -> None:
    schedule = CronSchedule("0,20,40 2 * * *", "Europe/Berlin")
    slots = schedule.slots_between(utc("2026-03-28T00:00:00Z"), utc("2026-03-30T12:00:00Z"))
    assert slots == [
        utc("2026-03-28T01:00:00Z"),
        utc("2026-03-28T01:20:00Z"),
        utc("2026-03-28T01:40:00Z"),
        utc("2026-03-29T01:00:00Z"),  # 02:00, 02:20 and 02:40 do not exist: fire once at 03:00
        utc("2026-03-30T00:00:00Z"),
        utc("2026-03-30T00:20:00Z"),
        utc("2026-03-30T00:40:00Z"),
    ]


def test_slots_between_limit_and_bounds() -> None:
    schedule = CronSchedule("*/15 * * * *")
    start, end = utc("2026-01-01T00:00:00Z"), utc("2026-01-01T01:00:00Z")
    assert schedule.slots_between(start, end) == [
        utc("2026-01-01T00:15:00Z"),
        utc("2026-01-01T00:30:00Z"),
        utc("2026-01-01T00:45:00Z"),
        utc("2026-01-01T01:00:00Z"),  # end is inclusive, start exclusive
    ]
    assert schedule.slots_between(start, end, limit=2) == [
        utc("2026-01-01T00:15:00Z"),
        utc("2026-01-01T00:30:00Z"),
    ]
    assert schedule.slots_between(start, end, limit=0) == []
    assert schedule.slots_between(end, start) == []
    with pytest.raises(ValueError, match="limit must be >= 0"):
        schedule.slots_between(start, end, limit=-1)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.next_after(datetime(2026, 1, 1)),
        lambda s: s.slots_between(datetime(2026, 1, 1), datetime(2026, 1, 2, tzinfo=UTC)),
        lambda s: s.slots_between(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2)),
    ],
)
def test_naive_datetimes_are_rejected(call: object) -> None:
    with pytest.raises(ValueError, match=r"timezone-aware.*'2026-01-0[12]T00:00:00'"):
        call(CronSchedule("* * * * *"))  # type: ignore[operator]


def test_never_fires_at_the_end_of_the_calendar() -> None:
    with pytest.raises(ValueError, match=r"^Invalid cron expression '0 0 29 2 \*': never fires"):
        CronSchedule("0 0 29 2 *").next_after(utc("9996-03-01T00:00:00Z"))
    with pytest.raises(ValueError, match="never fires"):
        CronSchedule("* * * * * *").next_after(datetime.max.replace(tzinfo=UTC))


# --------------------------------------------------------------------------- properties

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
INSTANTS = st.datetimes(
    min_value=datetime(1980, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)
)


def _field(low: int, high: int, top: int | None = None) -> st.SearchStrategy[str]:
    top = high if top is None else top
    value = st.integers(low, top)
    item = st.one_of(
        value.map(str),
        st.tuples(value, value).map(lambda pair: f"{min(pair)}-{max(pair)}"),
        st.tuples(st.one_of(st.just("*"), value.map(str)), st.integers(1, 20)).map(
            lambda pair: f"{pair[0]}/{pair[1]}"
        ),
    )
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


@st.composite
def expressions(draw: st.DrawFn) -> CronExpression:
    """Random valid expressions, with and without a seconds field."""
    parts = [
        draw(_field(0, 59)),
        draw(_field(0, 59)),
        draw(_field(0, 23)),
        draw(_field(1, 31)),
        draw(_field(1, 12)),
        draw(_field(0, 7)),
    ]
    if draw(st.booleans()):
        parts = parts[1:]
    try:
        return CronExpression.parse(" ".join(parts))
    except ValueError:
        assume(False)
        raise


def _oracle_next(expression: CronExpression, after: datetime) -> datetime:
    """A slow, independent reference for UTC: walk days, then nested sorted loops."""
    after = after.replace(tzinfo=None)
    day = after.date()
    for _ in range(366 * 9):
        dom_ok = day.day in expression.days_of_month
        dow_ok = day.isoweekday() % 7 in expression.days_of_week
        both = expression.day_of_month_restricted and expression.day_of_week_restricted
        if day.month in expression.months and ((dom_ok or dow_ok) if both else dom_ok and dow_ok):
            for hour in sorted(expression.hours):
                if day == after.date() and hour < after.hour:
                    continue
                for minute in sorted(expression.minutes):
                    for second in sorted(expression.seconds):
                        wall = datetime.combine(day, time(hour, minute, second))
                        if wall > after:
                            return wall.replace(tzinfo=UTC)
        day += timedelta(days=1)
    raise AssertionError("oracle found nothing")


@settings(max_examples=120, deadline=None)
@given(expressions(), INSTANTS)
def test_utc_next_after_matches_the_reference(expression: CronExpression, after: datetime) -> None:
    schedule = CronSchedule(expression.expression)
    result = schedule.next_after(after)
    assert result > after
    assert expression.matches(result.replace(tzinfo=None))
    assert result == _oracle_next(expression, after)


@settings(max_examples=120, deadline=None)
@given(
    expressions(), st.sampled_from(ZONES), INSTANTS, st.timedeltas(timedelta(0), timedelta(days=40))
)
def test_next_after_is_increasing_and_monotone(
    expression: CronExpression, zone: str, first: datetime, gap: timedelta
) -> None:
    schedule = CronSchedule(expression.expression, zone)
    second = first + gap
    assert first < schedule.next_after(first) <= schedule.next_after(second)


@settings(max_examples=120, deadline=None)
@given(expressions(), st.sampled_from(ZONES), INSTANTS)
def test_every_fire_is_a_matching_wall_time_or_the_end_of_a_gap(
    expression: CronExpression, zone: str, after: datetime
) -> None:
    schedule = CronSchedule(expression.expression, zone)
    result = schedule.next_after(after)
    tz = resolve_timezone(zone)
    local = result.astimezone(tz)
    if not expression.matches(local.replace(tzinfo=None)):
        # Only allowed at a DST transition that skipped the matching wall time.
        before = (result - timedelta(seconds=1)).astimezone(tz)
        assert before.utcoffset() != local.utcoffset()
        assert local.utcoffset() > before.utcoffset()  # type: ignore[operator]
    assert local.fold == 0  # never the second pass of a repeated hour


@settings(max_examples=120, deadline=None)
@given(
    expressions(),
    st.sampled_from(ZONES),
    INSTANTS,
    st.timedeltas(timedelta(0), timedelta(days=3)),
    st.one_of(st.none(), st.integers(0, 30)),
)
def test_slots_between_agrees_with_next_after(
    expression: CronExpression, zone: str, start: datetime, span: timedelta, limit: int | None
) -> None:
    schedule = CronSchedule(expression.expression, zone)
    end = start + span
    slots = schedule.slots_between(start, end, limit=30 if limit is None else limit)
    expected: list[datetime] = []
    cursor = start
    while len(expected) < (30 if limit is None else limit):
        cursor = schedule.next_after(cursor)
        if cursor > end:
            break
        expected.append(cursor)
    assert slots == expected


def test_dst_transition_dates_used_above_are_real() -> None:
    # Guards the tables: if tzdata ever moved these transitions the DST cases would lie.
    berlin, new_york = resolve_timezone("Europe/Berlin"), resolve_timezone("America/New_York")
    assert utc("2026-03-29T00:59:59Z").astimezone(berlin).hour == 1
    assert utc("2026-03-29T01:00:00Z").astimezone(berlin).hour == 3
    assert utc("2026-03-08T07:00:00Z").astimezone(new_york).hour == 3
    assert utc("2026-11-01T06:00:00Z").astimezone(new_york).fold == 1
    lord_howe = resolve_timezone("Australia/Lord_Howe")
    assert utc("2026-10-03T15:30:00Z").astimezone(lord_howe).utcoffset() == timedelta(hours=11)


LATEST = [
    # expression, zone, start, end, expected latest slot (None: no slot in the range)
    ("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T01:00:00Z"),
    ("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:59:59Z", "2026-01-01T00:45:00Z"),
    ("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:14:59Z", None),
    ("*/15 * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z", "2026-01-01T00:15:00Z"),
    (
        "* * * * * *",
        "UTC",
        "2025-01-01T00:00:00Z",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00Z",
    ),
    ("0 9 * * MON", "UTC", "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-02-23T09:00:00Z"),
    ("0 0 29 2 *", "UTC", "2024-03-01T00:00:00Z", "2028-02-28T00:00:00Z", None),
    # 02:30 does not exist in Berlin on 2026-03-29: that day's slot is 03:00 local = 01:00Z
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00:00Z",
        "2026-03-29T12:00:00Z",
        "2026-03-29T01:00:00Z",
    ),
    ("* * 9 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T15:00:00Z", "2026-01-01T09:59:59Z"),
    ("* * * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", None),
]


@pytest.mark.parametrize(("expression", "zone", "start", "end", "expected"), LATEST)
def test_latest_between(
    expression: str, zone: str, start: str, end: str, expected: str | None
) -> None:
    result = CronSchedule(expression, zone).latest_between(utc(start), utc(end))
    assert result == (None if expected is None else utc(expected))


@settings(max_examples=120, deadline=None)
@given(
    expressions(), st.sampled_from(ZONES), INSTANTS, st.timedeltas(timedelta(0), timedelta(days=2))
)
def test_latest_between_is_the_last_of_slots_between(
    expression: CronExpression, zone: str, start: datetime, span: timedelta
) -> None:
    schedule = CronSchedule(expression.expression, zone)
    end = start + span
    latest = schedule.latest_between(start, end)
    if latest is None:
        assert schedule.next_after(start) > end
    else:
        assert start < latest <= end
        assert schedule.next_after(latest - timedelta(microseconds=1)) == latest  # a real slot
        assert schedule.next_after(latest) > end
