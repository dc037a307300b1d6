"""Retention: the ``Store.retention`` query group, deleting what is older than a cutoff.

Queries live in ``sql/<dialect>/retention.sql``. Every delete handles one batch inside the
caller's transaction, so the engine (``engine/retention.py``) decides how many batches and
transactions a prune takes. What is never deleted: a Pending or Running execution, a fire
that holds a dedup hold, a cron slot record recovery may still hand off again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cloaca.clock import to_db_time
from cloaca.store.db import Tx
from cloaca.store.group import QueryGroup

#: The kinds of rows a prune counts, in the order it reports them.
KINDS = (
    "executions",
    "task_executions",
    "task_attempts",
    "trigger_executions",
    "trigger_evaluations",
    "cron_executions",
)


@dataclass(frozen=True, slots=True)
class Cutoff:
    """What to prune: rows older than ``before``; unlinked cron records only when also
    older than ``recovery_horizon`` (the oldest slot cron recovery still looks at)."""

    before: datetime
    recovery_horizon: datetime

    def params(self) -> dict[str, str]:
        return {
            "cutoff": to_db_time(self.before),
            "recovery_horizon": to_db_time(self.recovery_horizon),
        }


class RetentionQueries(QueryGroup):
    """``Store.retention``: batched deletes of old rows, and counts for a dry run."""

    def delete_executions(self, tx: Tx, cutoff: Cutoff, limit: int) -> dict[str, int]:
        """Delete up to ``limit`` terminal executions that ended before the cutoff, with
        their task executions, attempts, fire records and cron slot records. Returns the
        rows deleted per kind (only the kinds this touches)."""
        picked = tx.all("prune_pick_executions", {**cutoff.params(), "limit": limit})
        if not picked:
            return {"executions": 0}
        ids = {"ids": json.dumps([row["id"] for row in picked])}
        counts = {
            "cron_executions": tx.run("prune_cron_of_executions", ids),
            "trigger_executions": tx.run("prune_fires_of_executions", ids),
            "task_attempts": tx.run("prune_attempts_of_executions", ids),
            "task_executions": tx.run("prune_tasks_of_executions", ids),
            "executions": tx.run("prune_executions", ids),
        }
        return counts

    def delete_orphan_fires(self, tx: Tx, cutoff: Cutoff, limit: int) -> int:
        """Delete up to ``limit`` fire records older than the cutoff whose execution is gone
        (none that holds a dedup hold)."""
        return tx.run("prune_orphan_fires", {"cutoff": cutoff.params()["cutoff"], "limit": limit})

    def delete_orphan_cron_records(self, tx: Tx, cutoff: Cutoff, limit: int) -> int:
        """Delete up to ``limit`` cron slot records with no execution, older than both the
        cutoff and the recovery horizon."""
        return tx.run("prune_orphan_cron_records", {**cutoff.params(), "limit": limit})

    def delete_evaluations(self, tx: Tx, cutoff: Cutoff, limit: int) -> int:
        """Delete up to ``limit`` trigger evaluations recorded before the cutoff."""
        return tx.run("prune_evaluations", {"cutoff": cutoff.params()["cutoff"], "limit": limit})

    def count(self, cutoff: Cutoff) -> dict[str, int]:
        """How many rows of each kind a prune with ``cutoff`` would delete now."""
        params = cutoff.params()
        only_cutoff = {"cutoff": params["cutoff"]}
        with self.db.read() as tx:

            def n(query: str, args: dict[str, str]) -> int:
                row = tx.one(query, args)
                return int(row["n"]) if row else 0

            return {
                "executions": n("prune_count_executions", only_cutoff),
                "task_executions": n("prune_count_tasks", only_cutoff),
                "task_attempts": n("prune_count_attempts", only_cutoff),
                "trigger_executions": n("prune_count_fires", only_cutoff),
                "trigger_evaluations": n("prune_count_evaluations", only_cutoff),
                "cron_executions": n("prune_count_cron_records", params),
            }
