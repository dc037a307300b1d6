"""Batched trigger statements of the scheduler's hot path, on every backend: pruning the
evaluation log of many triggers at once, and ending a fired poll without reading it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cloaca.store.core import Store
from cloaca.store.trigger_records import EvaluationOutcome, NewEvaluation
from cloaca.store.triggers import PollClaim, won_polls

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def _log(store: Store, name: str, count: int) -> None:
    with store.write() as tx:
        store.triggers.insert_evaluations(
            tx,
            "r1",
            [
                NewEvaluation(name, T0, T0 + i * SECOND, 0.1, EvaluationOutcome.SKIPPED, None, ())
                for i in range(count)
            ],
        )


def test_prune_evaluations_of_keeps_the_newest_of_each_trigger(store: Store) -> None:
    for name, count in (("a", 5), ("b", 2), ("c", 4)):
        _log(store, name, count)
    with store.write() as tx:
        store.triggers.prune_evaluations_of(tx, ["a", "b"], 3)
        store.triggers.prune_evaluations_of(tx, [], 3)  # nothing to send
    kept = {name: store.triggers.evaluations(name, 100) for name in ("a", "b", "c")}
    assert [e.evaluated_at for e in kept["a"]] == [T0 + i * SECOND for i in (4, 3, 2)]
    assert len(kept["b"]) == 2
    assert len(kept["c"]) == 4  # not named: untouched


def test_fire_state_and_end_polls_unread_leave_the_schedule_as_read(store: Store) -> None:
    sid = store.triggers.upsert_schedule("t", "wf", 1000, False, T0)
    claims = [PollClaim(sid, T0, T0 + SECOND)]
    with store.write() as tx:
        claiming = store.triggers.claim_polls_later(tx, claims, "r1", T0)
    assert list(won_polls(claiming)) == [sid]
    with store.write() as tx:
        assert store.triggers.fire_state(tx, sid) == (True, "r1", T0 + SECOND)
        store.triggers.end_fired_poll(tx, sid, "r1", True, "c1")
    record = store.triggers.get_schedule("t")
    assert record is not None
    assert (record.enabled, record.next_poll_at, record.cursor) == (True, T0 + SECOND, "c1")
    assert (record.lease_owner, record.consecutive_errors) == (None, 0)


def test_the_schedules_version_moves_with_schedule_changes_not_with_polls(store: Store) -> None:
    """What the scheduler's view compares to notice other processes' schedule changes:
    adding, changing, disabling and enabling move it; claiming and ending polls do not."""
    seen = [store.triggers.schedules_version()]

    def moved() -> bool:
        seen.append(store.triggers.schedules_version())
        return seen[-1] != seen[-2]

    sid = store.triggers.upsert_schedule("t", "wf", 1000, False, T0)
    assert moved()
    with store.write() as tx:
        store.triggers.claim_polls_later(tx, [PollClaim(sid, T0, T0 + SECOND)], "r1", T0)
    with store.write() as tx:
        store.triggers.end_fired_poll(tx, sid, "r1", True, "c1")
    assert not moved()
    store.triggers.upsert_schedule("t", "wf", 2000, False, T0 + SECOND)  # a new interval
    assert moved()
    assert store.triggers.set_enabled("t", False, T0 + 2 * SECOND)
    assert moved()
    assert store.triggers.set_enabled("t", True, T0 + 3 * SECOND)
    assert moved()
    store.triggers.upsert_schedule("u", "wf", 1000, False, T0)  # added, with an older stamp
    assert moved()
