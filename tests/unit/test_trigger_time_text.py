"""The trigger queries' fast timestamp text is exactly ``to_db_time``'s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cloaca.clock import to_db_time
from cloaca.errors import ValidationError
from cloaca.store.triggers import _db_time

CASES = [
    datetime(2026, 12, 3, 18, 10, 40, 123456, tzinfo=UTC),
    datetime(2026, 1, 1, tzinfo=UTC),  # no microseconds: still six digits
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(999, 6, 1, 12, tzinfo=UTC),  # a short year takes to_db_time
    datetime(2026, 3, 29, 1, 30, 0, 5, tzinfo=timezone(timedelta(hours=2))),  # not UTC
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(0))),  # UTC, another object
]


@pytest.mark.parametrize("value", CASES, ids=str)
def test_db_time_matches_to_db_time(value: datetime) -> None:
    assert _db_time(value) == to_db_time(value)


def test_db_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValidationError):
        _db_time(datetime(2026, 1, 1))
