"""Trigger management, for the runner and the management client (SPEC 6.2, 6.4, 6.5).

Every call here works from a process that executes nothing (a ManagementClient):
schedules, history and evaluations live in the database, and a disabled trigger stops
being polled by every runner on that database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from cloaca.clock import Clock, rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.context import Context
from cloaca.engine.executor import TaskSlots
from cloaca.engine.planner import CreateExecution
from cloaca.engine.triggers.fire import TriggerRecorder
from cloaca.errors import ValidationError
from cloaca.names import check_name
from cloaca.paging import check_count
from cloaca.store.trigger_records import (
    TriggerEvaluationRecord,
    TriggerExecutionRecord,
    TriggerScheduleRecord,
)
from cloaca.triggers.definition import (
    DEFAULT_FAILED_RUN_POLICY,
    Trigger,
    TriggerSpec,
    add_trigger_listener,
    check_failed_run_policy,
    get_trigger,
    parse_interval,
    register_trigger,
    registered_triggers,
    remove_trigger_listener,
)
from cloaca.workflows.registry import add_workflow_listener, remove_workflow_listener
from cloaca.workflows.workflow import Workflow

if TYPE_CHECKING:
    from cloaca.engine.shape import Shape
    from cloaca.store.core import Store

log = logging.getLogger(__name__)

DEFAULT_EVALUATION_LIMIT = 100


class Triggers:
    """Trigger schedules, their history and evaluations, and manual fires.

    ``changed(name)`` tells this process's trigger scheduler that a schedule changed (a
    no-op without one); other processes re-read schedules on their own."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: DefaultRunnerConfig,
        writer_id: str,
        shapes: Callable[[str], Shape],
        create_execution: CreateExecution,
        changed: Callable[[str | None], None],
        check_open: Callable[[], None],
        slots: TaskSlots,
    ) -> None:
        self._store = store
        self._clock = clock
        self._shape = shapes
        self._changed = changed
        self._check_open = check_open
        self._following = False
        self.recorder = TriggerRecorder(
            store,
            config,
            writer_id,
            shape=shapes,
            create_execution=create_execution,
            slots=slots,
        )

    # -- following the registries of this process (a runner does) --------------------------

    def follow_registry(self) -> None:
        """Give every trigger registered with ``on=`` (now or later) its schedule."""
        self._following = True
        add_trigger_listener(self._on_trigger_registered)
        add_workflow_listener(self._on_workflow_registered)
        for spec in registered_triggers():
            if spec.workflow is not None:
                self._ensure_on_schedule(spec)

    def unfollow_registry(self) -> None:
        """Stop following the registries (at shutdown)."""
        self._following = False
        remove_trigger_listener(self._on_trigger_registered)
        remove_workflow_listener(self._on_workflow_registered)

    def _on_trigger_registered(self, spec: TriggerSpec) -> None:
        if not self._following:
            return
        if spec.workflow is not None:
            self._ensure_on_schedule(spec)
        self._changed(spec.name)

    def _on_workflow_registered(self, wf: Workflow) -> None:
        # An @trigger(on=...) defined before its workflow gets its schedule now.
        if not self._following:
            return
        for spec in registered_triggers():
            if spec.workflow == wf.name:
                self._ensure_on_schedule(spec)

    def _ensure_on_schedule(self, spec: TriggerSpec) -> None:
        assert spec.workflow is not None
        try:
            self._shape(spec.workflow)
        except ValueError:
            log.debug(
                "trigger %r waits for workflow %r to be registered",
                spec.name,
                spec.workflow,
                extra={"trigger_name": spec.name, "workflow": spec.workflow},
            )
            return
        try:
            self._store.triggers.upsert_schedule(
                spec.name,
                spec.workflow,
                _interval_ms(spec.poll_interval),
                spec.allow_concurrent,
                self._clock.now(),
                spec.on_failed_run,
            )
        except Exception:
            log.exception(
                "creating the schedule of @trigger(on=...) failed",
                extra={"trigger_name": spec.name},
            )

    # -- schedules (SPEC 6.2 / 6.4) ---------------------------------------------------------

    def register_trigger(
        self,
        trigger_or_name: Trigger | Callable[..., Any] | str,
        workflow_name: str,
        poll_interval: timedelta | float | int | str | None = None,
        allow_concurrent: bool | None = None,
        on_failed_run: str | None = None,
    ) -> str:
        """Create or update the trigger schedule binding a trigger to ``workflow_name``.

        ``trigger_or_name`` is a :class:`~cloaca.Trigger` instance (registered in this
        process as a side effect), a function decorated with ``@cloaca.trigger``, or the
        name of a trigger registered in this process or already scheduled in the database.
        ``poll_interval`` / ``allow_concurrent`` / ``on_failed_run`` override the trigger's
        own. ``on_failed_run`` says what happens to a context whose last run failed or was
        cancelled: ``"refire"`` (fire it again at the next poll), ``"backoff"`` (the
        default: wait longer after each consecutive failure) or ``"hold"`` (wait for a
        manual :meth:`fire_trigger`). Re-registering keeps the schedule's id, enabled flag,
        cursor and history. Returns the schedule id.

        Raises ``ValueError`` for an unknown workflow ("not found"), an unknown trigger
        name, an invalid interval or an unknown ``on_failed_run``.
        """
        self._check_open()
        spec, existing = self._resolve_trigger(trigger_or_name)
        shape = self._shape(workflow_name)
        if poll_interval is not None:
            interval = parse_interval(poll_interval)
        elif spec is not None:
            interval = spec.poll_interval
        else:
            assert existing is not None
            interval = timedelta(milliseconds=existing.poll_interval_ms)
        if allow_concurrent is None:
            concurrent = (
                spec.allow_concurrent
                if spec is not None
                else bool(existing and existing.allow_concurrent)
            )
        elif isinstance(allow_concurrent, bool):
            concurrent = allow_concurrent
        else:
            raise ValidationError(
                f"allow_concurrent must be True, False or None, got {allow_concurrent!r}"
            )
        if on_failed_run is not None:
            policy = check_failed_run_policy(on_failed_run)
        elif spec is not None:
            policy = spec.on_failed_run
        else:
            policy = existing.on_failed_run if existing else DEFAULT_FAILED_RUN_POLICY
        name = spec.name if spec is not None else str(trigger_or_name)
        schedule_id = self._store.triggers.upsert_schedule(
            name, shape.name, _interval_ms(interval), concurrent, self._clock.now(), policy
        )
        self._changed(name)
        return schedule_id

    def _resolve_trigger(
        self, trigger_or_name: object
    ) -> tuple[TriggerSpec | None, TriggerScheduleRecord | None]:
        if isinstance(trigger_or_name, str):
            spec = get_trigger(trigger_or_name)
            if spec is not None:
                return spec, None
            try:
                # Checked before the database sees it (PostgreSQL refuses a NUL outright).
                check_name("trigger name", trigger_or_name)
            except ValueError as exc:
                raise ValidationError(
                    f"Trigger {trigger_or_name!r} is not registered and cannot be: {exc}"
                ) from None
            existing = self._store.triggers.get_schedule(trigger_or_name)
            if existing is None:
                raise ValidationError(
                    f"Trigger {trigger_or_name!r} is not registered in this process and has no "
                    f"schedule in the database; register it first (cloaca.register_trigger("
                    f"instance) or @cloaca.trigger) or pass the Trigger instance"
                )
            return None, existing
        if isinstance(trigger_or_name, Trigger) or callable(trigger_or_name):
            return register_trigger(trigger_or_name), None
        raise ValidationError(
            f"register_trigger() takes a Trigger instance, an @cloaca.trigger function or a "
            f"trigger name, got {type(trigger_or_name).__name__}: {trigger_or_name!r}"
        )

    def list_trigger_schedules(
        self,
        enabled_only: bool | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[dict[str, Any]]:
        """Trigger schedules ordered by trigger name, as dicts (see
        :meth:`get_trigger_schedule`). ``enabled_only=True`` lists only enabled ones."""
        self._check_open()
        check_count("limit", limit)
        check_count("offset", offset)
        if enabled_only is not None and not isinstance(enabled_only, bool):
            raise ValidationError(f"enabled_only must be True, False or None, got {enabled_only!r}")
        records = self._store.triggers.list_schedules(True if enabled_only else None, limit, offset)
        return [_schedule_dict(r) for r in records]

    def get_trigger_schedule(self, name: str) -> dict[str, Any] | None:
        """The schedule of trigger ``name`` as a dict, or ``None``.

        Keys: ``id, trigger_name, workflow_name, poll_interval_ms, allow_concurrent,
        enabled, last_poll_at, created_at, updated_at`` (SPEC 6.4) and ``next_poll_at,
        consecutive_errors, paused_reason, cursor, on_failed_run``. Times are RFC 3339
        strings.
        """
        self._check_open()
        record = self._store.triggers.get_schedule(_name(name))
        return _schedule_dict(record) if record else None

    def set_trigger_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable a trigger schedule, for every runner on the database.

        Disabling takes effect at the next claim (a poll already running finishes, but a
        fire it returns is discarded). Enabling clears an automatic pause and its error
        count and makes the trigger due at once. Unknown name → ``ValueError``.
        """
        self._check_open()
        if not isinstance(enabled, bool):
            raise ValidationError(f"enabled must be True or False, got {enabled!r}")
        if not self._store.triggers.set_enabled(_name(name), enabled, self._clock.now()):
            raise ValidationError(f"Trigger schedule {name!r} not found")
        self._changed(name)

    def get_trigger_execution_history(
        self, name: str, limit: int | None = None, offset: int | None = None
    ) -> list[dict[str, Any]]:
        """Fires of trigger ``name``, newest first: dicts with ``id, schedule_id,
        context_hash, workflow_execution_id, started_at, completed_at, created_at``
        (``completed_at`` is set when the execution ended). Unknown trigger → ``[]``."""
        self._check_open()
        check_count("limit", limit)
        check_count("offset", offset)
        return [
            _execution_dict(r)
            for r in self._store.triggers.execution_history(_name(name), limit, offset)
        ]

    def get_trigger_evaluations(
        self, name: str, limit: int = DEFAULT_EVALUATION_LIMIT
    ) -> list[dict[str, Any]]:
        """The newest polls (and manual fires) of trigger ``name``, newest first: dicts with
        ``id, trigger_name, runner_id, scheduled_at, evaluated_at, duration_ms, outcome,
        message, execution_ids``. ``outcome`` is ``skipped``, ``fired``, ``deduplicated``,
        ``backing_off``, ``held``, ``error`` or ``timeout``; ``message`` says why (the
        error, the dedup holder, the failed run a context waits after and until when).
        The newest ``trigger_evaluation_retention`` per trigger are kept."""
        self._check_open()
        check_count("limit", limit, optional=False)
        return [_evaluation_dict(r) for r in self._store.triggers.evaluations(_name(name), limit)]

    def fire_trigger(
        self, name: str, context: Context | Mapping[str, Any] | None = None
    ) -> str | None:
        """Fire trigger ``name``'s workflow now, as if its poll had returned
        ``TriggerResult.fire(context)``: same context metadata, same deduplication.

        Returns the new execution's id, or ``None`` when an execution with the same
        context is still active and the trigger does not allow concurrent fires (the
        evaluation log names it). The failed-run policy does not apply: this is how a
        context held by ``on_failed_run="hold"`` (or backing off) is run again now.
        Works on a disabled schedule too (it is an explicit request), does not touch its
        cursor or error count, and does not need the trigger's code in this process.
        Unknown trigger → ``ValueError``.
        """
        self._check_open()
        record = self._store.triggers.get_schedule(_name(name))
        if record is None:
            raise ValidationError(f"Trigger schedule {name!r} not found; register it first")
        if context is not None and not isinstance(context, Context | Mapping):
            raise ValidationError(
                f"context must be a Context, a dict or None, got {type(context).__name__}"
            )
        ctx = context if context is None or isinstance(context, Context) else Context(context)
        fire = self.recorder.fire_manual(record, ctx, self._clock.now())
        return fire.execution_ids[0] if fire.execution_ids else None


def _name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"trigger name {name!r} must be a non-empty string")
    return name


def _interval_ms(interval: timedelta) -> int:
    return max(1, round(interval.total_seconds() * 1000))


def _schedule_dict(r: TriggerScheduleRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "trigger_name": r.trigger_name,
        "workflow_name": r.workflow_name,
        "poll_interval_ms": r.poll_interval_ms,
        "allow_concurrent": r.allow_concurrent,
        "enabled": r.enabled,
        "last_poll_at": rfc3339(r.last_poll_at),
        "created_at": rfc3339(r.created_at),
        "updated_at": rfc3339(r.updated_at),
        "next_poll_at": rfc3339(r.next_poll_at),
        "consecutive_errors": r.consecutive_errors,
        "paused_reason": r.paused_reason,
        "cursor": r.cursor,
        "on_failed_run": r.on_failed_run,
    }


def _execution_dict(r: TriggerExecutionRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "schedule_id": r.schedule_id,
        "context_hash": r.context_hash,
        "workflow_execution_id": r.workflow_execution_id,
        "started_at": rfc3339(r.started_at),
        "completed_at": rfc3339(r.completed_at),
        "created_at": rfc3339(r.created_at),
    }


def _evaluation_dict(r: TriggerEvaluationRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "trigger_name": r.trigger_name,
        "runner_id": r.runner_id,
        "scheduled_at": rfc3339(r.scheduled_at),
        "evaluated_at": rfc3339(r.evaluated_at),
        "duration_ms": r.duration_ms,
        "outcome": str(r.outcome),
        "message": r.message,
        "execution_ids": list(r.execution_ids),
    }
