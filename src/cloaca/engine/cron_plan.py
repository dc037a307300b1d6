"""Which cron slots fire in a round, and the context each one's execution gets (pure).

A slot is *on time* when it came due while the scheduler was running and knew the schedule;
every on-time slot fires, late or not. Earlier due slots were *missed* and follow the
schedule's catch-up policy. See ``engine/cron.py`` for the scheduler that applies this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cloaca.clock import rfc3339
from cloaca.config import DefaultRunnerConfig
from cloaca.cron.schedule import CronSchedule
from cloaca.engine.shape import Shape
from cloaca.store.cron_records import CatchupPolicy

_EPSILON = timedelta(microseconds=1)  # slots are whole seconds: this never skips one
RESERVED_KEYS = ("scheduled_time", "schedule_id", "schedule_timezone", "schedule_expression")
"""Context keys every cron-fired execution carries; instance params may not use them."""


def stall_threshold(config: DefaultRunnerConfig) -> timedelta:
    """A gap between two ticks longer than this counts as downtime (the loop ticks at least
    every ``scheduler_poll_interval_ms`` while it runs, and the scheduler asks for a tick
    at least every ``cron_poll_interval_seconds``)."""
    return timedelta(seconds=max(60, 2 * config.cron_poll_interval_seconds))


@dataclass(frozen=True)
class SlotPlan:
    """What one schedule does in one round: the slots to fire (ascending) and where it
    resumes. ``dropped`` is True when due slots were left out (skip policy or a cap)."""

    fire: tuple[datetime, ...]
    next_run_at: datetime
    dropped: bool = False


def plan_slots(
    cron: CronSchedule,
    next_run_at: datetime,
    now: datetime,
    on_time_since: datetime,
    policy: CatchupPolicy,
    cap: int,
) -> SlotPlan:
    """Decide which due slots of a schedule fire at ``now`` (pure).

    Slots at or after ``on_time_since`` (from when this scheduler was running and knew the
    schedule as it is) are on time, possibly a little late, and all fire; slots between
    ``next_run_at`` and ``on_time_since`` were missed and follow ``policy``.
    Each list is capped at ``cap`` slots, oldest first. ``next_run_at`` is taken to be a
    slot of ``cron`` (it was computed by it), which saves a search in the common case.
    """
    if next_run_at > now:
        return SlotPlan((), next_run_at)
    dropped = False
    if next_run_at >= on_time_since:
        on_time, cursor = [next_run_at], next_run_at
    else:
        on_time, cursor = [], on_time_since - _EPSILON
    # Walk the on-time slots; the first slot past ``now`` is where the schedule resumes.
    while True:
        following = cron.next_after(cursor)
        if following > now:
            break
        if len(on_time) >= cap:
            dropped = True
            following = cron.next_after(now)
            break
        on_time.append(following)
        cursor = following
    missed: list[datetime] = []
    if next_run_at < on_time_since:
        late_end = on_time_since - _EPSILON
        first = cron.next_after(next_run_at - _EPSILON)
        if first <= late_end:
            if policy is CatchupPolicy.RUN_ALL:
                missed = cron.slots_between(next_run_at - _EPSILON, late_end, limit=cap)
                dropped = dropped or cron.next_after(missed[-1]) <= late_end
            elif on_time:
                dropped = True
            else:
                latest = cron.latest_between(next_run_at - _EPSILON, late_end)
                assert latest is not None  # ``first`` is in the range
                missed = [latest]
                dropped = latest != first
    return SlotPlan(tuple(missed + on_time), following, dropped)


def slot_context(
    shape: Shape,
    schedule_id: str,
    expression: str,
    timezone: str,
    params: Mapping[str, Any] | None,
    slot: datetime,
) -> str:
    """The input context (JSON) of the execution fired for ``slot``: the instance params
    plus the four schedule keys, bound to the workflow's declared inputs (ParamsError when
    they do not fit)."""
    data = dict(params or {})
    data.update(
        scheduled_time=rfc3339(slot),
        schedule_id=schedule_id,
        schedule_timezone=timezone,
        schedule_expression=expression,
    )
    return json.dumps(shape.bind_params(data))
