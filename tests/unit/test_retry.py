"""Unit tests for cloaca.workflows.retry: backoff, retry conditions and retry policies."""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloaca.workflows.retry import (
    BackoffStrategy,
    RetryCondition,
    RetryPolicy,
    is_transient_message,
)


def policy(backoff: BackoffStrategy, initial: float = 1.0, maximum: float = 1000.0) -> RetryPolicy:
    """A jitter-free policy for exact delay checks."""
    return RetryPolicy(
        max_attempts=10, initial_delay=initial, max_delay=maximum, backoff=backoff, jitter=False
    )


class TestBackoff:
    @pytest.mark.parametrize(
        ("backoff", "delays"),
        [
            (BackoffStrategy.fixed(), [2.0, 2.0, 2.0, 2.0]),
            (BackoffStrategy.linear(), [2.0, 4.0, 6.0, 8.0]),
            (BackoffStrategy.linear(1.5), [3.0, 6.0, 9.0, 12.0]),
            (BackoffStrategy.exponential(), [2.0, 4.0, 8.0, 16.0]),
            (BackoffStrategy.exponential(3.0), [2.0, 6.0, 18.0, 54.0]),
            (BackoffStrategy.exponential(2.0, 0.5), [1.0, 2.0, 4.0, 8.0]),
        ],
    )
    def test_delays_per_attempt(self, backoff: BackoffStrategy, delays: list[float]) -> None:
        p = policy(backoff, initial=2.0)
        assert [p.calculate_delay(n) for n in range(1, 5)] == pytest.approx(delays)

    def test_capped_at_max_delay(self) -> None:
        p = policy(BackoffStrategy.exponential(), initial=1.0, maximum=5.0)
        assert [p.calculate_delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]

    def test_huge_attempt_numbers_do_not_overflow(self) -> None:
        p = policy(BackoffStrategy.exponential(10.0), maximum=30.0)
        assert p.calculate_delay(100_000) == 30.0

    def test_zero_initial_delay(self) -> None:
        p = policy(BackoffStrategy.exponential(10.0), initial=0.0)
        assert p.calculate_delay(100_000) == 0.0

    def test_fields(self) -> None:
        assert BackoffStrategy.exponential() == BackoffStrategy("exponential", 2.0, 1.0)
        assert BackoffStrategy.linear(2.0).multiplier == 2.0
        assert BackoffStrategy.fixed().kind == "fixed"

    @pytest.mark.parametrize(
        ("make", "match"),
        [
            (lambda: BackoffStrategy.exponential(0.5), "0.5"),
            (lambda: BackoffStrategy.exponential(2.0, 0), "multiplier"),
            (lambda: BackoffStrategy.linear(-1.0), "-1.0"),
            (lambda: BackoffStrategy("cubic"), "cubic"),  # type: ignore[arg-type]
            (lambda: BackoffStrategy.exponential(float("inf")), "inf"),
        ],
    )
    def test_invalid(self, make: Any, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            make()

    def test_frozen(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            BackoffStrategy.fixed().kind = "linear"  # type: ignore[misc]


class TestConditions:
    @pytest.mark.parametrize(
        ("message", "expected"),
        [
            ("Request TIMEOUT after 5s", True),
            ("operation timed out", True),
            ("Connection refused", True),
            ("network is unreachable", True),
            ("Temporary failure in name resolution", True),
            ("503 Service Unavailable", True),
            ("KeyError: 'x'", False),
            ("", False),
        ],
    )
    def test_is_transient_message(self, message: str, expected: bool) -> None:
        assert is_transient_message(message) is expected
        assert RetryCondition.transient_only().should_retry(message) is expected

    @pytest.mark.parametrize(
        ("condition", "message", "timed_out", "expected"),
        [
            (RetryCondition.never(), "connection reset", True, False),
            (RetryCondition.all_errors(), "ValueError", False, True),
            (RetryCondition.transient_only(), "ValueError", True, True),
            (RetryCondition.transient_only(), "ValueError", False, False),
            (RetryCondition.error_pattern(["rate limit", "429"]), "HTTP 429", False, True),
            (RetryCondition.error_pattern(["rate limit"]), "Rate Limit hit", False, True),
            (RetryCondition.error_pattern(["rate limit"]), "timeout", True, False),
            (RetryCondition.error_pattern("deadlock"), "DEADLOCK detected", False, True),
        ],
    )
    def test_should_retry(
        self, condition: RetryCondition, message: str, timed_out: bool, expected: bool
    ) -> None:
        assert condition.should_retry(message, timed_out) is expected

    @pytest.mark.parametrize("patterns", [[], [""], ["ok", 3]])
    def test_error_pattern_rejects_useless_patterns(self, patterns: Any) -> None:
        with pytest.raises(ValueError, match="pattern"):
            RetryCondition.error_pattern(patterns)


class TestPolicy:
    def test_default(self) -> None:
        p = RetryPolicy.default()
        assert (p.max_attempts, p.initial_delay, p.max_delay, p.jitter) == (3, 1.0, 60.0, True)
        assert p.backoff == BackoffStrategy.exponential(2.0)
        assert p.condition == RetryCondition.all_errors()
        assert p == RetryPolicy()

    def test_builder(self) -> None:
        p = (
            RetryPolicy.builder()
            .max_attempts(5)
            .initial_delay(0.5)
            .max_delay(timedelta(seconds=30))
            .backoff_strategy(BackoffStrategy.linear(2.0))
            .retry_condition(RetryCondition.transient_only())
            .with_jitter(False)
            .build()
        )
        assert p == RetryPolicy(
            max_attempts=5,
            initial_delay=0.5,
            max_delay=30.0,
            backoff=BackoffStrategy.linear(2.0),
            condition=RetryCondition.transient_only(),
            jitter=False,
        )

    def test_builder_initial_delay_above_default_cap_raises_cap(self) -> None:
        p = RetryPolicy.builder().initial_delay(timedelta(minutes=2)).build()
        assert (p.initial_delay, p.max_delay) == (120.0, 120.0)

    def test_builder_explicit_max_below_initial_fails(self) -> None:
        builder = RetryPolicy.builder().initial_delay(10).max_delay(5)
        with pytest.raises(ValueError, match="max_delay"):
            builder.build()

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda b: b.max_attempts(0), "0"),
            (lambda b: b.max_attempts(True), "True"),
            (lambda b: b.max_attempts(2.5), "2.5"),
            (lambda b: b.initial_delay(-1), "-1"),
            (lambda b: b.max_delay("5s"), "5s"),
            (lambda b: b.backoff_strategy("fixed"), "fixed"),
            (lambda b: b.retry_condition("all"), "all"),
            (lambda b: b.with_jitter("yes"), "yes"),
        ],
    )
    def test_builder_rejects_bad_values(self, call: Any, match: str) -> None:
        with pytest.raises(ValueError, match=match):
            call(RetryPolicy.builder())

    def test_timedelta_fields_are_converted(self) -> None:
        p = RetryPolicy(initial_delay=timedelta(milliseconds=250))  # type: ignore[arg-type]
        assert p.initial_delay == 0.25

    @pytest.mark.parametrize(
        ("attempt", "message", "timed_out", "expected"),
        [
            (1, "boom", False, True),
            (2, "boom", False, True),
            (3, "boom", False, False),  # the third attempt was the last one
            (4, "boom", False, False),
        ],
    )
    def test_should_retry_counts_total_attempts(
        self, attempt: int, message: str, timed_out: bool, expected: bool
    ) -> None:
        assert RetryPolicy.default().should_retry(attempt, message, timed_out) is expected

    def test_should_retry_consults_condition(self) -> None:
        p = dataclasses.replace(RetryPolicy.default(), condition=RetryCondition.transient_only())
        assert p.should_retry(1, "ValueError") is False
        assert p.should_retry(1, "ValueError", timed_out=True) is True
        assert p.should_retry(1, "connection reset") is True

    @pytest.mark.parametrize("attempt", [0, -1, True])
    def test_calculate_delay_rejects_bad_attempt(self, attempt: Any) -> None:
        with pytest.raises(ValueError, match="attempt"):
            RetryPolicy.default().calculate_delay(attempt)

    def test_jitter_is_reproducible_with_rng(self) -> None:
        p = RetryPolicy.default()
        assert p.calculate_delay(2, random.Random(7)) == p.calculate_delay(2, random.Random(7))

    def test_jitter_varies(self) -> None:
        p = RetryPolicy.default()
        rng = random.Random(1)
        assert len({p.calculate_delay(1, rng) for _ in range(20)}) > 1


class TestFromTaskOptions:
    def test_defaults(self) -> None:
        assert RetryPolicy.from_task_options() == RetryPolicy.default()

    def test_maps_every_option(self) -> None:
        p = RetryPolicy.from_task_options(
            retry_attempts=5,
            retry_backoff="linear",
            retry_delay_ms=200,
            retry_max_delay_ms=2000,
            retry_condition="transient",
            retry_jitter=False,
        )
        assert p == RetryPolicy(
            max_attempts=5,
            initial_delay=0.2,
            max_delay=2.0,
            backoff=BackoffStrategy.linear(),
            condition=RetryCondition.transient_only(),
            jitter=False,
        )

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("fixed", BackoffStrategy.fixed()),
            ("linear", BackoffStrategy.linear()),
            ("exponential", BackoffStrategy.exponential(2.0)),
            ("Exponential", BackoffStrategy.exponential(2.0)),
            (BackoffStrategy.exponential(3.0), BackoffStrategy.exponential(3.0)),
        ],
    )
    def test_backoff_names(self, name: Any, expected: BackoffStrategy) -> None:
        assert RetryPolicy.from_task_options(retry_backoff=name).backoff == expected

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("all", RetryCondition.all_errors()),
            ("never", RetryCondition.never()),
            ("transient", RetryCondition.transient_only()),
            (RetryCondition.error_pattern(["x"]), RetryCondition.error_pattern(["x"])),
        ],
    )
    def test_condition_names(self, name: Any, expected: RetryCondition) -> None:
        assert RetryPolicy.from_task_options(retry_condition=name).condition == expected

    def test_retry_policy_passes_through(self) -> None:
        custom = RetryPolicy.builder().max_attempts(7).build()
        assert RetryPolicy.from_task_options(retry=custom) is custom

    def test_retry_and_kwargs_are_exclusive(self) -> None:
        with pytest.raises(ValueError, match="not both") as info:
            RetryPolicy.from_task_options(
                retry=RetryPolicy.default(), retry_attempts=2, retry_jitter=False
            )
        assert "retry_attempts" in str(info.value)
        assert "retry_jitter" in str(info.value)

    def test_delay_above_default_cap_raises_cap(self) -> None:
        p = RetryPolicy.from_task_options(retry_delay_ms=120_000)
        assert (p.initial_delay, p.max_delay) == (120.0, 120.0)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"retry_backoff": "quadratic"}, "quadratic"),
            ({"retry_backoff": "quadratic"}, "exponential"),
            ({"retry_condition": "sometimes"}, "sometimes"),
            ({"retry_condition": "sometimes"}, "transient"),
            ({"retry_attempts": -1}, "retry_attempts"),
            ({"retry_attempts": "3"}, "'3'"),
            ({"retry_delay_ms": -5}, "-5"),
            ({"retry_max_delay_ms": -1}, "retry_max_delay_ms"),
            ({"retry_delay_ms": 500, "retry_max_delay_ms": 100}, "retry_max_delay_ms"),
            ({"retry_jitter": "yes"}, "yes"),
            ({"retry": "fast"}, "fast"),
        ],
    )
    def test_invalid_options(self, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            RetryPolicy.from_task_options(**kwargs)


backoffs = st.one_of(
    st.builds(BackoffStrategy.linear, st.floats(min_value=0.1, max_value=5)),
    st.builds(
        BackoffStrategy.exponential,
        st.floats(min_value=1, max_value=4),
        st.none() | st.floats(min_value=0.1, max_value=5),
    ),
    st.just(BackoffStrategy.fixed()),
)


@given(
    backoffs,
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1000),
)
def test_unjittered_delays_are_monotonic_and_capped(
    backoff: BackoffStrategy, initial: float, extra: float
) -> None:
    p = policy(backoff, initial=initial, maximum=initial + extra)
    delays = [p.calculate_delay(n) for n in range(1, 40)]
    assert delays == sorted(delays)
    assert all(0 <= d <= p.max_delay for d in delays)


@given(
    backoffs,
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=1000),
    st.integers(min_value=1, max_value=60),
    st.integers(min_value=0, max_value=2**32),
)
def test_jittered_delays_stay_within_25_percent(
    backoff: BackoffStrategy, initial: float, extra: float, attempt: int, seed: int
) -> None:
    plain = policy(backoff, initial=initial, maximum=initial + extra)
    jittered = dataclasses.replace(plain, jitter=True)
    base = plain.calculate_delay(attempt)
    delay = jittered.calculate_delay(attempt, random.Random(seed))
    assert 0.75 * base <= delay <= min(1.25 * base, plain.max_delay)
