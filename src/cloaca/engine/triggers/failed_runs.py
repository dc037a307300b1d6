"""The failed-run policy of a trigger: may a context whose last run failed fire again now?

A fire of (trigger, context hash) looks at the earlier fires of the same hash, newest first
(``Store.triggers.context_runs``, read inside the fire transaction, which on PostgreSQL holds
the schedule row's lock, so two processes decide one after the other). A run "failed" when
its execution ended ``Failed`` or ``Cancelled``; a ``Completed`` run ends the streak. The
policy (``on_failed_run``) then says:

- ``refire``: fire again at once (what deduplication alone does).
- ``backoff``: after ``n`` consecutive failures, not before
  ``min(base * 2**(n-1), cap)`` has passed since the newest one ended.
- ``hold``: never again automatically; a manual ``fire_trigger`` runs it, and a success
  of that run releases the context.

The decision is pure: :func:`decide` takes the runs and the clock and returns ``None``
(fire) or a :class:`Suppressed` naming why and until when.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloaca.clock import rfc3339
from cloaca.errors import ValidationError
from cloaca.store.trigger_records import ContextRun, EvaluationOutcome

#: How many earlier fires of one context the fire transaction reads. A streak longer than
#: this counts as this long, which is past the cap for any sensible base and cap.
RUNS_READ = 32

_FAILED = ("Failed", "Cancelled")
_ACTIVE = ("Pending", "Running")


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A fire the policy refused: the evaluation outcome and the reason to record."""

    outcome: EvaluationOutcome
    message: str


def backoff_after_failures(failures: int, base: timedelta, cap: timedelta) -> timedelta:
    """The wait after ``failures`` (>= 1) consecutive failed runs: ``base * 2**(failures-1)``,
    capped at ``cap``."""
    if failures < 1:
        raise ValidationError(f"failures must be >= 1, got {failures!r}")
    # Past 2**40 the product overflows timedelta long after it passed any cap.
    if failures > 40:
        return cap
    return min(base * 2 ** (failures - 1), cap)


def decide(
    policy: str,
    runs: Sequence[ContextRun],
    now: datetime,
    *,
    allow_concurrent: bool,
    base: timedelta,
    cap: timedelta,
) -> Suppressed | None:
    """Whether a new fire of a context may start, given its earlier ``runs`` newest first.

    Active runs are passed over (deduplication deals with them), except that with
    ``allow_concurrent`` a run started after the newest failure is the refire that policy
    already allowed, so no second one starts while it runs. A run whose execution row is
    gone (pruned) ends the history.
    """
    if policy == "refire":
        return None
    failures: list[ContextRun] = []
    refire_running: ContextRun | None = None
    for run in runs:
        if run.status is None or run.status == "Completed":
            break
        if run.status in _ACTIVE:
            if not failures and refire_running is None:
                refire_running = run
            continue
        if run.status in _FAILED:
            failures.append(run)
    if not failures:
        return None
    if refire_running is not None and not allow_concurrent:
        return None  # the dedup hold refuses this fire and names the holder
    last = failures[0]
    count = len(failures)
    streak = f"{count}{'+' if count >= RUNS_READ else ''} failed run{'s' if count > 1 else ''}"
    what = f"previous run of this context ended {last.status} (execution {last.execution_id}"
    what += f"; {streak} in a row)"
    if refire_running is not None:
        outcome = EvaluationOutcome.HELD if policy == "hold" else EvaluationOutcome.BACKING_OFF
        return Suppressed(
            outcome,
            f"{what}; its refire {refire_running.execution_id} is still running",
        )
    if policy == "hold":
        return Suppressed(
            EvaluationOutcome.HELD,
            f"{what}; held until a manual fire (on_failed_run='hold')",
        )
    delay = backoff_after_failures(count, base, cap)
    ended = last.completed_at or now
    until = ended + delay
    if now >= until:
        return None
    return Suppressed(
        EvaluationOutcome.BACKING_OFF,
        f"{what}; next refire after {rfc3339(until)} "
        f"(backoff {_span(delay)}, at most {_span(cap)})",
    )


def _span(delta: timedelta) -> str:
    """``90s`` → ``1m30s``; whole units only, milliseconds for what is under a second."""
    total = delta.total_seconds()
    if total < 1:
        return f"{round(total * 1000)}ms"
    seconds = round(total)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"
