"""Retry value objects: backoff strategy, retry condition and retry policy (pure).

Delays are seconds as floats. `RetryPolicy.calculate_delay(n)` is the wait after failed
attempt n (1-based), i.e. before retry n.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from cloaca.errors import ValidationError

__all__ = [
    "BackoffStrategy",
    "RetryCondition",
    "RetryPolicy",
    "RetryPolicyBuilder",
    "is_transient_message",
]

BackoffKind = Literal["fixed", "linear", "exponential"]
ConditionKind = Literal["never", "transient", "all", "pattern"]

_BACKOFF_KINDS: tuple[str, ...] = ("fixed", "linear", "exponential")
_CONDITION_NAMES: tuple[str, ...] = ("all", "never", "transient")
_TRANSIENT_MARKERS: tuple[str, ...] = (
    "timeout",
    "timed out",
    "connection",
    "network",
    "temporary",
    "unavailable",
)
_JITTER = 0.25  # +-25 %


def is_transient_message(message: str) -> bool:
    """True if an error message looks transient (timeout, connection, network, ...)."""
    lowered = message.lower()
    return any(marker in lowered for marker in _TRANSIENT_MARKERS)


def _is_real(value: Any) -> bool:
    """True for int/float that are not bool (True is not a count of seconds)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seconds(value: Any, name: str) -> float:
    """Convert seconds (int/float) or a timedelta to finite, non-negative float seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif _is_real(value):
        seconds = float(value)
    else:
        raise ValidationError(
            f"{name} must be seconds (int or float) or a timedelta, got {value!r}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValidationError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return seconds


def _attempts(value: Any, name: str, lowest: int = 1) -> int:
    """Validate a total attempt count (an int >= ``lowest``)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < lowest:
        raise ValidationError(f"{name} must be an int >= {lowest} (total attempts), got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class BackoffStrategy:
    """How the delay grows between retries: fixed, linear or exponential."""

    kind: BackoffKind = "exponential"
    base: float = 2.0
    multiplier: float = 1.0

    def __post_init__(self) -> None:
        """Reject unknown kinds and nonsensical numbers."""
        if self.kind not in _BACKOFF_KINDS:
            raise ValidationError(
                f"Unknown backoff kind {self.kind!r}; accepted: {', '.join(_BACKOFF_KINDS)}"
            )
        if not _is_real(self.base) or not math.isfinite(self.base) or self.base < 1:
            raise ValidationError(f"Backoff base must be a finite number >= 1, got {self.base!r}")
        if (
            not _is_real(self.multiplier)
            or not math.isfinite(self.multiplier)
            or self.multiplier <= 0
        ):
            raise ValidationError(
                f"Backoff multiplier must be a finite number > 0, got {self.multiplier!r}"
            )

    @classmethod
    def fixed(cls) -> BackoffStrategy:
        """The same delay before every retry."""
        return cls("fixed", 1.0, 1.0)

    @classmethod
    def linear(cls, multiplier: float = 1.0) -> BackoffStrategy:
        """Delay before retry n = initial * n * multiplier."""
        return cls("linear", 1.0, multiplier)

    @classmethod
    def exponential(cls, base: float = 2.0, multiplier: float | None = None) -> BackoffStrategy:
        """Delay before retry n = initial * multiplier * base ** (n - 1) (multiplier: 1)."""
        return cls("exponential", base, 1.0 if multiplier is None else multiplier)

    def raw_delay(self, initial_delay: float, retry: int) -> float:
        """Uncapped delay in seconds before retry `retry` (1 for the first retry)."""
        if initial_delay == 0:
            return 0.0  # avoids 0 * inf = nan for huge exponents
        if self.kind == "fixed":
            return initial_delay
        if self.kind == "linear":
            return initial_delay * retry * self.multiplier
        try:
            growth = self.base ** (retry - 1)
        except OverflowError:
            return math.inf
        return initial_delay * self.multiplier * growth


@dataclass(frozen=True, slots=True)
class RetryCondition:
    """Which failures are worth retrying."""

    kind: ConditionKind = "all"
    patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Reject unknown kinds and pattern lists that cannot match sensibly."""
        if self.kind not in ("never", "transient", "all", "pattern"):
            raise ValidationError(
                f"Unknown retry condition {self.kind!r}; accepted: never, transient, all, pattern"
            )
        if self.kind == "pattern" and not self.patterns:
            raise ValidationError("error_pattern needs at least one non-empty pattern string")

    @classmethod
    def never(cls) -> RetryCondition:
        """Never retry."""
        return cls("never")

    @classmethod
    def transient_only(cls) -> RetryCondition:
        """Retry timeouts and errors whose text looks transient (connection, network, ...)."""
        return cls("transient")

    @classmethod
    def all_errors(cls) -> RetryCondition:
        """Retry every failure."""
        return cls("all")

    @classmethod
    def error_pattern(cls, patterns: Sequence[str] | str) -> RetryCondition:
        """Retry when the error text contains any of `patterns` (case-insensitive)."""
        items = [patterns] if isinstance(patterns, str) else list(patterns)
        for pattern in items:
            if not isinstance(pattern, str) or not pattern:
                raise ValidationError(
                    f"error_pattern patterns must be non-empty strings, got {pattern!r}"
                )
        return cls("pattern", tuple(items))

    def should_retry(self, error_message: str, timed_out: bool = False) -> bool:
        """True if a failure with this message (or a timeout) should be retried."""
        if self.kind == "all":
            return True
        if self.kind == "never":
            return False
        if self.kind == "transient":
            return timed_out or is_transient_message(error_message)
        lowered = error_message.lower()
        return any(pattern.lower() in lowered for pattern in self.patterns)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how fast a failed task is retried.

    `max_attempts` counts every attempt, the first included. Delays are seconds (a
    timedelta is accepted and converted).
    """

    max_attempts: int = 3
    initial_delay: float = 1.0
    max_delay: float = 60.0
    backoff: BackoffStrategy = field(default_factory=BackoffStrategy.exponential)
    condition: RetryCondition = field(default_factory=RetryCondition.all_errors)
    jitter: bool = True

    def __post_init__(self) -> None:
        """Validate every field and normalise delays to float seconds."""
        _attempts(self.max_attempts, "max_attempts")
        initial = _seconds(self.initial_delay, "initial_delay")
        maximum = _seconds(self.max_delay, "max_delay")
        if maximum < initial:
            raise ValidationError(f"max_delay ({maximum}s) must be >= initial_delay ({initial}s)")
        object.__setattr__(self, "initial_delay", initial)
        object.__setattr__(self, "max_delay", maximum)
        if not isinstance(self.backoff, BackoffStrategy):
            raise ValidationError(f"backoff must be a BackoffStrategy, got {self.backoff!r}")
        if not isinstance(self.condition, RetryCondition):
            raise ValidationError(f"condition must be a RetryCondition, got {self.condition!r}")
        if not isinstance(self.jitter, bool):
            raise ValidationError(f"jitter must be True or False, got {self.jitter!r}")

    @property
    def with_jitter(self) -> bool:
        """Whether delays are jittered (the name upstream reads back; same as ``jitter``)."""
        return self.jitter

    @classmethod
    def default(cls) -> RetryPolicy:
        """3 attempts, 1 s initial delay, 60 s cap, exponential base 2, all errors, jitter."""
        return cls()

    @staticmethod
    def builder() -> RetryPolicyBuilder:
        """Start a fluent builder initialised with the defaults."""
        return RetryPolicyBuilder()

    def calculate_delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based), capped at `max_delay`.

        With jitter the capped delay is scaled by a random factor in [0.75, 1.25] and
        capped again; pass `rng` for reproducible results.
        """
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise ValidationError(f"attempt must be an int >= 1, got {attempt!r}")
        delay = min(self.backoff.raw_delay(self.initial_delay, attempt), self.max_delay)
        if self.jitter and delay > 0:
            factor = (rng or random).uniform(1 - _JITTER, 1 + _JITTER)
            delay = min(delay * factor, self.max_delay)
        return max(delay, 0.0)

    def should_retry(self, attempt: int, error_message: str, timed_out: bool = False) -> bool:
        """True if failed attempt `attempt` (1-based) leaves attempts and the condition holds."""
        return attempt < self.max_attempts and self.condition.should_retry(error_message, timed_out)

    @classmethod
    def from_task_options(
        cls,
        retry: RetryPolicy | None = None,
        retry_attempts: int | None = None,
        retry_backoff: str | BackoffStrategy | None = None,
        retry_delay_ms: float | None = None,
        retry_max_delay_ms: float | None = None,
        retry_condition: str | RetryCondition | None = None,
        retry_jitter: bool | None = None,
    ) -> RetryPolicy:
        """Build the policy for `@task(...)` keyword arguments.

        Either `retry=` or the `retry_*` kwargs, not both. When only `retry_delay_ms` is
        given and exceeds the default cap, the cap rises to it rather than failing.
        """
        given = {
            "retry_attempts": retry_attempts,
            "retry_backoff": retry_backoff,
            "retry_delay_ms": retry_delay_ms,
            "retry_max_delay_ms": retry_max_delay_ms,
            "retry_condition": retry_condition,
            "retry_jitter": retry_jitter,
        }
        named = [name for name, value in given.items() if value is not None]
        if retry is not None:
            if named:
                raise ValidationError(
                    f"Pass retry=RetryPolicy or the retry_* options, not both "
                    f"(got retry= and {', '.join(named)})"
                )
            if not isinstance(retry, RetryPolicy):
                raise ValidationError(
                    f"retry must be a RetryPolicy (see RetryPolicy.builder()), got {retry!r}"
                )
            return retry
        attempts = 3
        if retry_attempts is not None:
            # Upstream accepts 0 and makes one attempt; any other count is the total.
            attempts = _attempts(retry_attempts, "retry_attempts", lowest=0) or 1
        initial = 1.0 if retry_delay_ms is None else _ms(retry_delay_ms, "retry_delay_ms")
        if retry_max_delay_ms is None:
            maximum = max(60.0, initial)
        else:
            maximum = _ms(retry_max_delay_ms, "retry_max_delay_ms")
            if maximum < initial:
                raise ValidationError(
                    f"retry_max_delay_ms ({retry_max_delay_ms}) must be >= "
                    f"retry_delay_ms ({1000.0 if retry_delay_ms is None else retry_delay_ms})"
                )
        if retry_jitter is not None and not isinstance(retry_jitter, bool):
            raise ValidationError(f"retry_jitter must be True or False, got {retry_jitter!r}")
        return cls(
            max_attempts=attempts,
            initial_delay=initial,
            max_delay=maximum,
            backoff=_backoff_option(retry_backoff),
            condition=_condition_option(retry_condition),
            jitter=True if retry_jitter is None else retry_jitter,
        )


def _ms(value: Any, name: str) -> float:
    """Validate a millisecond option and return seconds."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be a number of milliseconds >= 0, got {value!r}")
    return float(value) / 1000.0


def _backoff_option(value: str | BackoffStrategy | None) -> BackoffStrategy:
    """Map the `retry_backoff` option to a strategy (exponential base 2 by default)."""
    if value is None:
        return BackoffStrategy.exponential()
    if isinstance(value, BackoffStrategy):
        return value
    if isinstance(value, str) and value.strip().lower() in _BACKOFF_KINDS:
        kind = value.strip().lower()
        if kind == "fixed":
            return BackoffStrategy.fixed()
        return BackoffStrategy.linear() if kind == "linear" else BackoffStrategy.exponential()
    raise ValidationError(
        f"Unknown retry_backoff {value!r}; accepted: {', '.join(map(repr, _BACKOFF_KINDS))}"
        " or a BackoffStrategy"
    )


def _condition_option(value: str | RetryCondition | None) -> RetryCondition:
    """Map the `retry_condition` option to a condition (all errors by default)."""
    if value is None:
        return RetryCondition.all_errors()
    if isinstance(value, RetryCondition):
        return value
    if isinstance(value, str) and value.strip().lower() in _CONDITION_NAMES:
        return RetryCondition(value.strip().lower())  # type: ignore[arg-type]
    raise ValidationError(
        f"Unknown retry_condition {value!r}; accepted: {', '.join(map(repr, _CONDITION_NAMES))}"
        " or a RetryCondition"
    )


class RetryPolicyBuilder:
    """Fluent builder for `RetryPolicy`; every setter returns the builder.

    Each setter validates its argument at once so the error points at the bad call.
    """

    def __init__(self) -> None:
        """Start from the defaults of `RetryPolicy.default()`."""
        default = RetryPolicy()
        self._max_attempts = default.max_attempts
        self._initial_delay = default.initial_delay
        self._max_delay = default.max_delay
        self._max_delay_set = False
        self._backoff = default.backoff
        self._condition = default.condition
        self._jitter = default.jitter

    def max_attempts(self, n: int) -> RetryPolicyBuilder:
        """Total number of attempts, the first included (>= 1)."""
        self._max_attempts = _attempts(n, "max_attempts")
        return self

    def initial_delay(self, delay: float | timedelta) -> RetryPolicyBuilder:
        """Delay before the first retry, in seconds or as a timedelta."""
        self._initial_delay = _seconds(delay, "initial_delay")
        return self

    def max_delay(self, delay: float | timedelta) -> RetryPolicyBuilder:
        """Cap on any delay, in seconds or as a timedelta."""
        self._max_delay = _seconds(delay, "max_delay")
        self._max_delay_set = True
        return self

    def backoff_strategy(self, strategy: BackoffStrategy) -> RetryPolicyBuilder:
        """How delays grow between retries."""
        if not isinstance(strategy, BackoffStrategy):
            raise ValidationError(f"backoff_strategy expects a BackoffStrategy, got {strategy!r}")
        self._backoff = strategy
        return self

    def retry_condition(self, condition: RetryCondition) -> RetryPolicyBuilder:
        """Which failures are retried."""
        if not isinstance(condition, RetryCondition):
            raise ValidationError(f"retry_condition expects a RetryCondition, got {condition!r}")
        self._condition = condition
        return self

    def with_jitter(self, jitter: bool = True) -> RetryPolicyBuilder:
        """Randomise each delay by +-25 % so retries of many tasks spread out."""
        if not isinstance(jitter, bool):
            raise ValidationError(f"with_jitter expects True or False, got {jitter!r}")
        self._jitter = jitter
        return self

    def build(self) -> RetryPolicy:
        """Return the policy; ValueError if an explicit max_delay is below initial_delay.

        Without an explicit max_delay the default cap rises to the initial delay.
        """
        max_delay = self._max_delay
        if not self._max_delay_set:
            max_delay = max(max_delay, self._initial_delay)
        return RetryPolicy(
            max_attempts=self._max_attempts,
            initial_delay=self._initial_delay,
            max_delay=max_delay,
            backoff=self._backoff,
            condition=self._condition,
            jitter=self._jitter,
        )
