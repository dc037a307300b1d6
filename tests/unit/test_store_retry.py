"""The transaction retry helper: what it retries, how long it pauses, when it gives up."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloaca.store.db import StoreError, TransientStoreError
from cloaca.store.retry import DEFAULT_BACKOFF, Backoff, retrying


def _flaky(failures: int, error: Exception) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def op() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "done"

    return calls, op


def test_transient_errors_are_retried_with_doubling_pauses() -> None:
    calls, op = _flaky(3, TransientStoreError("connection lost"))
    pauses: list[float] = []
    assert retrying(op, "test op", sleep=pauses.append) == "done"  # type: ignore[arg-type]
    assert len(calls) == 4
    assert pauses == [0.05, 0.1, 0.2]


def test_the_last_transient_error_propagates_after_every_try() -> None:
    calls, op = _flaky(99, TransientStoreError("still down"))
    pauses: list[float] = []
    with pytest.raises(TransientStoreError, match="still down"):
        retrying(op, "test op", Backoff(tries=3), sleep=pauses.append)
    assert len(calls) == 3
    assert len(pauses) == 2


@pytest.mark.parametrize("error", [StoreError("constraint"), ValueError("bug")])
def test_other_errors_are_not_retried(error: Exception) -> None:
    calls, op = _flaky(1, error)
    pauses: list[float] = []
    with pytest.raises(type(error)):
        retrying(op, "test op", sleep=pauses.append)
    assert calls == [1]
    assert pauses == []


@pytest.mark.parametrize(
    ("failures", "expected"), [(1, 0.05), (2, 0.1), (5, 0.8), (6, 1.6), (7, 2.0), (30, 2.0)]
)
def test_pauses_are_capped(failures: int, expected: float) -> None:
    assert DEFAULT_BACKOFF.delay(failures) == pytest.approx(expected)


def test_the_default_total_pause_is_bounded() -> None:
    total = sum(DEFAULT_BACKOFF.delay(n) for n in range(1, DEFAULT_BACKOFF.tries))
    assert total == pytest.approx(0.75)


@pytest.mark.parametrize(
    "kwargs", [{"tries": 0}, {"first_delay": -1.0}, {"first_delay": 3.0, "max_delay": 1.0}]
)
def test_a_bad_backoff_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Backoff"):
        Backoff(**kwargs)  # type: ignore[arg-type]
