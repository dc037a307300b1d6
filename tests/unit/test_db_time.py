"""The timestamp text stored in the database: fixed width, UTC, so the database compares
and indexes it as text in time order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cloaca.clock import from_db_time, to_db_time
from cloaca.errors import ValidationError


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 12, 3, 18, 10, 40, 123456, tzinfo=UTC), "2026-12-03T18:10:40.123456Z"),
        (datetime(2026, 1, 1, tzinfo=UTC), "2026-01-01T00:00:00.000000Z"),  # six digits
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
        (datetime(1000, 1, 1, tzinfo=UTC), "1000-01-01T00:00:00.000000Z"),
        # Another zone, and UTC as another object: converted to UTC.
        (
            datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))),
            "2026-03-28T23:30:00.000005Z",
        ),
        (
            datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(0))),
            "2026-03-29T01:30:00.000000Z",
        ),
    ],
    ids=str,
)
def test_db_time_text(value: datetime, text: str) -> None:
    assert to_db_time(value) == text
    assert from_db_time(text) == value


def test_db_time_keeps_time_order_as_text_order() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    instants = [start + timedelta(microseconds=7**k) for k in range(12)]
    texts = [to_db_time(t) for t in instants]
    assert texts == sorted(texts)


def test_db_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValidationError, match="naive datetime"):
        to_db_time(datetime(2026, 1, 1))
