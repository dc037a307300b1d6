"""``DefaultRunnerConfig``: every runner setting, validated at construction and assignment."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cloaca.errors import ValidationError

# name -> (default, kind, minimum). kind "int" and "float" are checked against minimum
# (inclusive); "bool" must be a bool; "seconds" accepts a number or a timedelta.
_FIELDS: dict[str, tuple[Any, str, float]] = {
    "max_concurrent_tasks": (4, "int", 1),
    "scheduler_poll_interval_ms": (100, "int", 1),
    "task_timeout_seconds": (300, "int", 1),
    "workflow_timeout_seconds": (3600, "int", 1),
    "db_pool_size": (10, "int", 1),
    "enable_recovery": (True, "bool", 0),
    "enable_cron_scheduling": (True, "bool", 0),
    "cron_poll_interval_seconds": (30, "int", 1),
    "cron_max_catchup_executions": (100, "int", 1),
    "cron_enable_recovery": (True, "bool", 0),
    "cron_recovery_interval_seconds": (300, "int", 1),
    "cron_lost_threshold_minutes": (10, "int", 1),
    "cron_max_recovery_age_seconds": (86400, "int", 1),
    "cron_max_recovery_attempts": (3, "int", 1),
    "enable_trigger_scheduling": (True, "bool", 0),
    "trigger_base_poll_interval": (1.0, "seconds", 0.001),
    "trigger_poll_timeout": (30.0, "seconds", 0.001),
    "trigger_max_consecutive_errors": (10, "int", 1),
    "trigger_evaluation_retention": (1000, "int", 1),
    # on_failed_run="backoff": the first refire of a context whose run failed waits this
    # long after the failure, doubling with each consecutive failure up to the maximum.
    "trigger_failed_run_backoff_seconds": (30.0, "seconds", 0.001),
    "trigger_failed_run_backoff_max_seconds": (3600.0, "seconds", 0.001),
    # Retention: terminal executions (with their tasks), trigger fires and evaluations and
    # cron records older than this many days are pruned by the runner. 0 keeps everything.
    "execution_retention_days": (0, "int", 0),
    "prune_interval_seconds": (3600.0, "seconds", 1),
    "heartbeat_interval_seconds": (10, "seconds", 0.01),
    "stale_claim_threshold_seconds": (60, "seconds", 0.01),
    "stale_claim_sweep_interval_seconds": (30, "seconds", 0.01),
    # The smallest context, "{}", is 2 bytes.
    "max_context_bytes": (16 * 1024 * 1024, "int", 2),
}


def _coerce(name: str, value: Any) -> Any:
    default, kind, minimum = _FIELDS[name]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValidationError(f"{name}={value!r} is invalid: expected True or False")
        return value
    if kind == "seconds" and isinstance(value, timedelta):
        value = value.total_seconds()
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int" and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ValidationError(f"{name}={value!r} is invalid: expected an integer >= {minimum:g}")
    if not numeric or value != value or value < minimum:
        accepted = "seconds (number) or a timedelta" if kind == "seconds" else "a number"
        raise ValidationError(f"{name}={value!r} is invalid: expected {accepted} >= {minimum:g}")
    return float(value) if kind == "seconds" else value


class DefaultRunnerConfig:
    """Runner settings. Pass any field as a keyword or set it as an attribute.

    Unknown names and invalid values raise ``ValueError`` naming the field and what is
    accepted. ``trigger_base_poll_interval`` and ``trigger_poll_timeout`` are seconds and
    also accept a ``timedelta``.

    ``max_context_bytes`` (default 16 MiB, at least 2) caps the size of every context, as
    encoded JSON: an execution's input at ``start``/``execute`` (``ValueError``), a trigger
    fire (recorded as an error evaluation), a cron instance's ``params`` (``ValueError`` at
    registration) and a task's output (the attempt fails, without retry).

    ``trigger_failed_run_backoff_seconds`` (30) and ``trigger_failed_run_backoff_max_seconds``
    (3600) shape ``on_failed_run="backoff"``: after ``n`` consecutive failed runs of a
    context, it is fired again no sooner than ``min(base * 2**(n-1), max)`` after the last
    failure.

    ``execution_retention_days`` (default 0: keep everything) makes a running runner prune,
    every ``prune_interval_seconds`` (3600), what ``cloaca db prune`` would prune with
    ``--older-than <days>d``.
    """

    __slots__ = tuple(_FIELDS)

    max_concurrent_tasks: int
    scheduler_poll_interval_ms: int
    task_timeout_seconds: int
    workflow_timeout_seconds: int
    db_pool_size: int
    enable_recovery: bool
    enable_cron_scheduling: bool
    cron_poll_interval_seconds: int
    cron_max_catchup_executions: int
    cron_enable_recovery: bool
    cron_recovery_interval_seconds: int
    cron_lost_threshold_minutes: int
    cron_max_recovery_age_seconds: int
    cron_max_recovery_attempts: int
    enable_trigger_scheduling: bool
    trigger_base_poll_interval: float
    trigger_poll_timeout: float
    trigger_max_consecutive_errors: int
    trigger_evaluation_retention: int
    trigger_failed_run_backoff_seconds: float
    trigger_failed_run_backoff_max_seconds: float
    execution_retention_days: int
    prune_interval_seconds: float
    heartbeat_interval_seconds: float
    stale_claim_threshold_seconds: float
    stale_claim_sweep_interval_seconds: float
    max_context_bytes: int

    def __init__(self, **kwargs: Any) -> None:
        for name, (default, _, _) in _FIELDS.items():
            object.__setattr__(self, name, default)
        for name, value in kwargs.items():
            setattr(self, name, value)
        self.validate()

    def validate(self) -> None:
        """Check the rules that tie fields together (single fields are checked when set)."""
        heartbeat = self.heartbeat_interval_seconds
        threshold = self.stale_claim_threshold_seconds
        if threshold <= heartbeat:
            raise ValidationError(
                f"stale_claim_threshold_seconds={threshold:g} must be greater than "
                f"heartbeat_interval_seconds={heartbeat:g}: a live runner's claims would look "
                f"stale between two of its heartbeats"
            )
        base = self.trigger_failed_run_backoff_seconds
        cap = self.trigger_failed_run_backoff_max_seconds
        if cap < base:
            raise ValidationError(
                f"trigger_failed_run_backoff_max_seconds={cap:g} must be at least "
                f"trigger_failed_run_backoff_seconds={base:g}"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FIELDS:
            raise ValidationError(
                f"unknown DefaultRunnerConfig field {name!r}; accepted: {', '.join(_FIELDS)}"
            )
        object.__setattr__(self, name, _coerce(name, value))

    @classmethod
    def default(cls) -> DefaultRunnerConfig:
        """A config with every default."""
        return cls()

    def to_dict(self) -> dict[str, Any]:
        """Every field and its value."""
        return {name: getattr(self, name) for name in _FIELDS}

    def copy(self) -> DefaultRunnerConfig:
        """An independent copy."""
        return DefaultRunnerConfig(**self.to_dict())

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"DefaultRunnerConfig({fields})"


# -- reading settings from text (environment variables, files, command-line flags) ---------

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def config_fields() -> dict[str, tuple[Any, str, str]]:
    """Every field: ``name -> (default, kind, what is accepted)``, in declaration order.
    Tools that read settings from text (the CLI, the docs) are generated from this."""
    return {name: (default, kind, _accepted(name)) for name, (default, kind, _) in _FIELDS.items()}


def _accepted(name: str) -> str:
    _, kind, minimum = _FIELDS[name]
    if kind == "bool":
        return "true or false (also 1/0, yes/no, on/off)"
    if kind == "int":
        return f"an integer >= {minimum:g}"
    return f"seconds, a number >= {minimum:g}"


def parse_field(name: str, text: str, source: str | None = None) -> Any:
    """The value of field ``name`` written as ``text`` (an environment variable, a
    ``--set``), parsed by the field's kind and checked like an assignment.

    Unknown names and bad values raise ``ValidationError`` (a ``ValueError``) naming
    ``source`` (default: the field), the value and what is accepted."""
    where = source or name
    if name not in _FIELDS:
        raise ValidationError(
            f"{where}: unknown DefaultRunnerConfig field {name!r}; accepted: {', '.join(_FIELDS)}"
        )
    kind = _FIELDS[name][1]
    cleaned = text.strip()
    value: Any
    try:
        if kind == "bool":
            if cleaned.lower() not in _TRUE + _FALSE:
                raise ValueError(cleaned)
            value = cleaned.lower() in _TRUE
        elif kind == "int":
            value = int(cleaned)
        else:
            value = float(cleaned)
        return _coerce(name, value)
    except ValueError:
        raise ValidationError(f"{where}={text!r} is invalid: expected {_accepted(name)}") from None
