"""Cron management, for the runner and the management client: register, list, edit,
enable and delete cron schedules, and read their history and statistics (SPEC section 7).

Every change made here wakes this process's cron scheduler (if any) at once; runners in other
processes see it within ``cron_poll_interval_seconds``. Schedule ids are UUID strings and
every time in the returned dicts is an RFC 3339 string (UTC, ``Z`` suffix).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cloaca.clock import Clock, rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context, check_context_size
from cloaca.cron.schedule import CronSchedule, validate_cron
from cloaca.engine.cron_plan import RESERVED_KEYS, slot_context
from cloaca.errors import ValidationError
from cloaca.names import check_name
from cloaca.paging import check_count
from cloaca.store.core import Store
from cloaca.store.cron_records import CatchupPolicy, CronExecutionRecord, CronScheduleRecord

if TYPE_CHECKING:
    from cloaca.engine.shape import Shape

_POLICIES = ", ".join(repr(str(p)) for p in CatchupPolicy)


class CronSchedules:
    """Cron schedules: register, list, edit, enable, delete; history and statistics.

    ``changed()`` tells this process's cron scheduler that a schedule changed (a no-op
    without one)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: DefaultRunnerConfig,
        shapes: Callable[[str], Shape],
        changed: Callable[[], None],
        check_open: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self.config = config
        self._shape = shapes
        self._cron_changed = changed
        self._check_open = check_open

    # -- registering ------------------------------------------------------------------------------

    def register_cron_workflow(
        self,
        workflow_name: str,
        cron_expression: str,
        timezone: str = "UTC",
        *,
        catchup_policy: str = "skip",
    ) -> str:
        """Run ``workflow_name`` on a cron schedule; returns the schedule id (a UUID string).

        ``cron_expression`` has 5 fields (minute hour day-of-month month day-of-week), 6 with
        leading seconds, or is an alias such as ``@hourly``; ``timezone`` is an IANA name.
        ``catchup_policy`` is ``"skip"`` (after downtime at most one late run) or
        ``"run_all"`` (every missed slot, capped by ``cron_max_catchup_executions``).
        Registering the same workflow, expression and timezone again returns the existing
        schedule (keeping its enabled flag, history and pending catch-up).
        """
        return self._register(workflow_name, None, cron_expression, timezone, None, catchup_policy)

    def register_workflow_instance(
        self,
        workflow_name: str,
        instance_name: str,
        cron_expression: str,
        timezone: str = "UTC",
        params: Mapping[str, Any] | None = None,
        *,
        catchup_policy: str = "skip",
    ) -> str:
        """Run a named instance of ``workflow_name`` on a cron schedule with its own
        ``params`` (merged into each fired execution's context); returns the schedule id.

        The instance is identified by ``(workflow_name, instance_name)``: registering it
        again updates its expression, timezone, params and policy in place.
        """
        check_name("instance_name", instance_name)
        return self._register(
            workflow_name,
            instance_name,
            cron_expression,
            timezone,
            _check_params(params, self.config.max_context_bytes),
            catchup_policy,
        )

    def _register(
        self,
        workflow_name: str,
        instance_name: str | None,
        cron_expression: str,
        timezone: str,
        params: dict[str, Any] | None,
        catchup_policy: str,
    ) -> str:
        self._check_open()
        cron = validate_cron(cron_expression, timezone)
        policy = _check_policy(catchup_policy)
        now = self._clock.now()
        # Unknown everywhere -> "... not found"; params its fires could not start with ->
        # ParamsError now rather than a failed slot later.
        slot_context(self._shape(workflow_name), "", cron_expression, timezone, params, now)
        record, _ = self._store.cron.register(
            new_id=str(uuid.uuid4()),
            workflow_name=workflow_name,
            instance_name=instance_name,
            cron_expression=_normalized(cron),
            timezone=timezone,
            catchup_policy=policy,
            params=params,
            next_run_at=cron.next_after(now),
            now=now,
        )
        self._cron_changed()
        return record.id

    # -- reading ----------------------------------------------------------------------------------

    def list_cron_schedules(
        self,
        enabled_only: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        """Cron schedules in creation order, as dicts (see :meth:`get_cron_schedule`)."""
        self._check_open()
        if enabled_only is not None and not isinstance(enabled_only, bool):
            raise ValidationError(f"enabled_only {enabled_only!r} must be True, False or None")
        check_count("limit", limit)
        check_count("offset", offset)
        records = self._store.cron.list_schedules(bool(enabled_only), limit, offset or 0)
        return [_schedule_dict(r) for r in records]

    def get_cron_schedule(self, schedule_id: str) -> dict[str, Any]:
        """One schedule as a dict with keys ``id, workflow_name, instance_name,
        cron_expression, timezone, enabled, catchup_policy, params, next_run_at,
        last_run_at, created_at, updated_at`` (``next_run_at`` is None while disabled)."""
        self._check_open()
        key = _schedule_id(schedule_id)
        record = self._store.cron.get(key)
        if record is None:
            raise ValidationError(f"Failed to get cron schedule {key!r}: no schedule with this ID")
        return _schedule_dict(record)

    def get_cron_execution_history(
        self, schedule_id: str, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        """Claimed slots of a schedule, latest scheduled time first, as dicts with keys
        ``id, schedule_id, workflow_execution_id, scheduled_time, claimed_at, claimed_by,
        status, started_at, completed_at, lost, recovery_attempts, recovered_at,
        created_at, updated_at``. ``status`` is the execution's status, or ``"Lost"`` while its
        execution is missing. An unknown (or deleted) schedule has no history: ``[]``."""
        self._check_open()
        key = _schedule_id(schedule_id)
        check_count("limit", limit)
        check_count("offset", offset)
        return [_history_dict(r) for r in self._store.cron.history(key, limit, offset or 0)]

    def get_cron_execution_stats(self, since: datetime | str) -> dict[str, Any]:
        """Counts over slots scheduled at or after ``since`` (an aware datetime or an RFC 3339
        string with an offset): ``total_executions``, ``successful_executions`` (execution
        Completed), ``failed_executions``, ``in_progress_executions``,
        ``lost_executions`` (hand-off found missing; see recovery),
        ``recovered_executions`` and ``success_rate`` (percent of total, 0.0 when none)."""
        self._check_open()
        start = _parse_since(since)
        lost_before = self._clock.now() - timedelta(minutes=self.config.cron_lost_threshold_minutes)
        stats = self._store.cron.stats(start, lost_before)
        rate = 100.0 * stats.successful / stats.total if stats.total else 0.0
        return {
            "total_executions": stats.total,
            "successful_executions": stats.successful,
            "failed_executions": stats.failed,
            "in_progress_executions": stats.in_progress,
            "lost_executions": stats.lost,
            "recovered_executions": stats.recovered,
            "success_rate": rate,
        }

    # -- changing ---------------------------------------------------------------------------------

    def update_cron_schedule(
        self, schedule_id: str, cron_expression: str, timezone: str | None = None
    ) -> None:
        """Change a schedule's expression and timezone (``None`` keeps the timezone). It
        resumes at the first new slot after now; nothing is caught up."""
        self._check_open()
        key = _schedule_id(schedule_id)
        if timezone is not None:
            validate_cron(cron_expression, timezone)
        else:
            validate_cron(cron_expression)  # report a bad expression before a lookup
        now = self._clock.now()
        with self._store.write() as tx:
            record = self._store.cron.get_in(tx, key)
            if record is None:
                raise ValidationError(
                    f"Failed to update cron schedule {key!r}: no schedule with this ID"
                )
            zone = record.timezone if timezone is None else timezone
            cron = CronSchedule(cron_expression, zone)
            expression = _normalized(cron)
            if record.instance_name is None:
                other = self._store.cron.find_plain(tx, record.workflow_name, expression, zone)
                if other is not None and other != key:
                    raise ValidationError(
                        f"Failed to update cron schedule {key!r}: schedule {other!r} already "
                        f"runs {record.workflow_name!r} on {expression!r} in {zone!r}"
                    )
            self._store.cron.set_expression(tx, key, expression, zone, cron.next_after(now), now)
        self._cron_changed()

    def set_cron_schedule_enabled(self, schedule_id: str, enabled: bool) -> None:
        """Enable or disable a schedule. A disabled schedule fires nothing, in any runner;
        enabling it resumes at the first slot after now (no catch-up of the pause)."""
        self._check_open()
        key = _schedule_id(schedule_id)
        if not isinstance(enabled, bool):
            raise ValidationError(f"enabled {enabled!r} must be True or False")
        record = self._store.cron.get(key)
        if record is None:
            raise ValidationError(
                f"Failed to update cron schedule {key!r}: no schedule with this ID "
                f"(it may have been deleted)"
            )
        now = self._clock.now()
        next_run = self._cron_of(record).next_after(now)
        if not self._store.cron.set_enabled(key, enabled, next_run, now):
            raise ValidationError(f"Failed to update cron schedule {key!r}: it was just deleted")
        self._cron_changed()

    def delete_cron_schedule(self, schedule_id: str) -> None:
        """Delete a schedule and its slot history; executions it started are kept."""
        self._check_open()
        key = _schedule_id(schedule_id)
        if not self._store.cron.delete(key):
            raise ValidationError(
                f"Failed to delete cron schedule {key!r}: no schedule with this ID"
            )
        self._cron_changed()

    @staticmethod
    def _cron_of(record: CronScheduleRecord) -> CronSchedule:
        return CronSchedule(record.cron_expression, record.timezone)


# -- validation and shapes ------------------------------------------------------------------------


def _normalized(cron: CronSchedule) -> str:
    # One spelling per expression, so "0  9 * * *" finds the schedule "0 9 * * *".
    return " ".join(cron.expression.expression.split())


def _schedule_id(value: object) -> str:
    try:
        if not isinstance(value, str | uuid.UUID):
            raise TypeError
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))
    except (TypeError, ValueError):
        raise ValidationError(
            f"Invalid schedule ID {value!r}: expected a UUID string as returned by "
            f"register_cron_workflow, e.g. '123e4567-e89b-12d3-a456-426614174000'"
        ) from None


def _check_policy(value: object) -> CatchupPolicy:
    if isinstance(value, str) and value in set(CatchupPolicy):
        return CatchupPolicy(value)
    raise ValidationError(f"Invalid catchup_policy {value!r}: accepted values are {_POLICIES}")


def _check_params(params: Mapping[str, Any] | None, max_bytes: int) -> dict[str, Any] | None:
    if params is None:
        return None
    if not isinstance(params, Mapping):
        raise ValidationError(f"params must be a dict or None, got {type(params).__name__}")
    data = dict(params)
    for key, value in data.items():
        if not isinstance(key, str):
            raise ValidationError(f"params key {key!r} must be a string")
        if key in RESERVED_KEYS:
            raise ValidationError(
                f"params key {key!r} is reserved: every cron-fired context sets "
                f"{', '.join(RESERVED_KEYS)}"
            )
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValidationError(
                f"params[{key!r}] = {value!r} is not JSON-serialisable; params must hold "
                f"JSON values (str, int, float, bool, None, lists and dicts of them)"
            ) from None
    try:
        # The same limits as every context: params become each fired execution's input.
        data = Context(data).to_dict()
    except TypeError as exc:
        raise ValidationError(str(exc)) from None
    check_context_size(json.dumps(data), max_bytes, "the cron instance params")
    return data


def _parse_since(value: object) -> datetime:
    hint = "use an aware datetime or an RFC 3339 string such as '2026-01-01T00:00:00Z'"
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(f"Invalid datetime format {value!r}: {hint}") from None
    else:
        raise ValidationError(f"Invalid datetime format {value!r}: {hint}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValidationError(
            f"Invalid datetime format {value!r}: a timezone offset is required; {hint}"
        )
    return parsed


def _schedule_dict(r: CronScheduleRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "workflow_name": r.workflow_name,
        "instance_name": r.instance_name,
        "cron_expression": r.cron_expression,
        "timezone": r.timezone,
        "enabled": r.enabled,
        "catchup_policy": str(r.catchup_policy),
        "params": r.params,
        "next_run_at": rfc3339(r.next_run_at) if r.enabled else None,
        "last_run_at": rfc3339(r.last_run_at),
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
    }


def _history_dict(r: CronExecutionRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "schedule_id": r.schedule_id,
        "workflow_execution_id": r.workflow_execution_id,
        "scheduled_time": rfc3339(r.scheduled_time),
        "claimed_at": rfc3339(r.claimed_at),
        "claimed_by": r.claimed_by,
        "status": r.execution_status or "Lost",
        "started_at": rfc3339(r.started_at),
        "completed_at": rfc3339(r.completed_at),
        "lost": r.lost,
        "recovery_attempts": r.recovery_attempts,
        "recovered_at": rfc3339(r.recovered_at),
        "created_at": rfc3339(r.claimed_at),
        # A claim row changes when claimed (with its hand-off) and when recovered.
        "updated_at": rfc3339(max(r.claimed_at, r.recovered_at or r.claimed_at)),
    }
