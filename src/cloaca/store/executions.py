"""Executions: creating one with its task executions, the per-execution lock and counters
the planner works with, ending one, and reads for the API and the engine's checks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from cloaca.clock import from_db_time, to_db_time
from cloaca.store.contexts import ContextCache, KnownOutputs
from cloaca.store.db import Database, Later, Row, Tx
from cloaca.store.expected import ExpectedResults
from cloaca.store.group import Notices, QueryGroup
from cloaca.store.records import (
    ClaimedTask,
    ExecutionRecord,
    ExecutionStatus,
    FinalOutcome,
    FinishedTask,
    FinishInputs,
    NewTask,
    TaskExecutionRecord,
    TaskStatus,
)
from cloaca.store.retry import read_retrying
from cloaca.store.tasks import finish_params, with_history

#: Dialects whose SQL records a task's final outcome and counts it in one statement
#: (``task_finish_counting``, a data-modifying CTE); the others run the three statements.
_ONE_STATEMENT_FINISH = frozenset({"postgres"})


def _final_params(
    runner_id: str, final: FinalOutcome, dependants: Sequence[str] = (), claim: bool = False
) -> dict[str, object]:
    """The parameters of the statements that record and count a final outcome (with the
    dependants ``task_finish_counting`` makes Ready, or claims for ``runner_id``)."""
    params = finish_params(
        final.claimed,
        runner_id,
        final.status,
        final.now,
        final.output_json,
        final.error,
        final.traceback,
    )
    params["execution_id"] = final.claimed.execution_id
    params["dependants"] = [*dependants]
    params["claim_by"] = runner_id if claim else None
    return params


def _with_tasks(rows: list[Row]) -> tuple[ExecutionRecord | None, list[TaskExecutionRecord]]:
    """The execution and its task executions from the rows of ``execution_with_tasks``."""
    if not rows:
        return None, []
    tasks = [
        TaskExecutionRecord.from_row({k[2:]: r[k] for k in r.keys() if k[:2] == "t_"})  # noqa: SIM118 (sqlite3.Row iterates values)
        for r in rows
        if r["t_id"] is not None
    ]
    return ExecutionRecord.from_row(rows[0]), tasks


def handed_on(rows: Sequence[Row], finishing: ClaimedTask) -> list[ClaimedTask]:
    """The dependants a committed ``task_finish_counting`` with ``claim_by`` claimed for
    the runner whose attempt ``finishing`` it recorded (tasks of the same execution)."""
    return [
        ClaimedTask(
            int(r["claimed_id"]),
            finishing.execution_id,
            finishing.workflow_name,
            finishing.workflow_version,
            r["task_id"],
            int(r["attempt"]),
            int(r["max_attempts"]),
        )
        for r in rows
        if r["claimed_id"] is not None
    ]


class ExecutionQueries(QueryGroup):
    """``Store.executions``: workflow executions."""

    def __init__(self, db: Database, notices: Notices) -> None:
        super().__init__(db, notices)
        #: Executions a thread of this process waits for (see :meth:`finished_result`).
        self.expected = ExpectedResults()
        self._contexts = ContextCache()
        self._outputs = KnownOutputs()

    # -- the engine's write path --------------------------------------------------------------

    def insert(
        self,
        tx: Tx,
        *,
        execution_id: str,
        workflow_name: str,
        version: str,
        context_json: str,
        tasks: Sequence[NewTask],
        now: datetime,
        remaining: int | None = None,
        notify_ready: bool = True,
        running: bool = False,
    ) -> None:
        """Create a Pending execution and its task executions in the given initial statuses
        (Ready ones become claimable at ``now``). ``remaining`` is how many tasks are not
        yet finished (default: all)."""
        stamp = to_db_time(now)
        tx.send(
            "execution_insert",
            {
                "id": execution_id,
                "workflow_name": workflow_name,
                "version": version,
                "context": context_json,
                "remaining": len(tasks) if remaining is None else remaining,
                "now": stamp,
                # Running from the start when the creating transaction claims its roots.
                "status": str(ExecutionStatus.RUNNING if running else ExecutionStatus.PENDING),
                "started_at": stamp if running else None,
            },
        )
        tx.run_many(
            "task_insert",
            [
                {
                    "execution_id": execution_id,
                    "workflow_name": workflow_name,
                    "version": version,
                    "task_id": t.task_id,
                    "position": t.position,
                    "status": str(t.status),
                    "max_attempts": t.max_attempts,
                    "ready_at": stamp if t.status is TaskStatus.READY else None,
                    "completed_at": stamp if t.status.is_terminal else None,
                    "error": t.error,
                }
                for t in tasks
            ],
        )
        if notify_ready and any(t.status is TaskStatus.READY for t in tasks):
            self.notices.ready(tx)
        # Its input never changes: whoever runs or ends it here needs no read of it (an id
        # whose transaction rolls back is never used again).
        self._contexts.put(execution_id, context_json)

    def known_context(self, execution_id: str) -> str | None:
        """The input context JSON of an execution if one was read here already."""
        return self._contexts.get(execution_id)

    def completed_here(self, execution_id: str, task_id: str, output: str | None) -> None:
        """A committed transaction of this process recorded ``task_id`` Completed with
        ``output`` (kept where :attr:`finishes_with_commit`: see :meth:`known_outputs`)."""
        if self.finishes_with_commit:
            self._outputs.add(execution_id, task_id, output)

    def known_outputs(
        self, execution_id: str, task_id: str, tasks: int
    ) -> dict[str, str | None] | None:
        """Task id -> output of every task but ``task_id`` of an execution of ``tasks``
        tasks, when this process recorded all of them Completed; else None."""
        return self._outputs.others(execution_id, task_id, tasks)

    def completed_outputs(
        self, execution_id: str, task_ids: Iterable[str]
    ) -> dict[str, str | None] | None:
        """Task id -> output of ``task_ids``, when this process recorded all of them
        Completed; else None."""
        return self._outputs.get(execution_id, task_ids)

    def ended_here(self, execution_id: str) -> None:
        """The execution ended: what is kept of its tasks is no longer needed."""
        self._outputs.drop(execution_id)

    def context(self, tx: Tx, execution_id: str) -> str:
        """The input context JSON of an execution (it never changes: read once here)."""
        known = self._contexts.get(execution_id)
        if known is not None:
            return known
        row = tx.one("execution_context", {"id": execution_id})
        if row is None:
            return "{}"
        self._contexts.put(execution_id, row["context"])
        return str(row["context"])

    def contexts(self, tx: Tx, execution_ids: Iterable[str]) -> dict[str, str]:
        """Execution id -> input context JSON, for several executions in one statement
        (none for those read before)."""
        found: dict[str, str] = {}
        unknown: set[str] = set()
        for execution_id in execution_ids:
            known = self._contexts.get(execution_id)
            if known is None:
                unknown.add(execution_id)
            else:
                found[execution_id] = known
        if unknown:
            rows = tx.all("execution_contexts", {"ids": json.dumps(sorted(unknown))})
            for r in rows:
                found[r["id"]] = r["context"]
                self._contexts.put(r["id"], r["context"])
        return found

    def finish_inputs(self, tx: Tx, execution_id: str) -> FinishInputs:
        """What ending an execution needs, in one statement: its input context JSON, and
        task id -> (status, output JSON, error) for each of its task executions."""
        context = "{}"
        results: dict[str, tuple[TaskStatus, str | None, str | None]] = {}
        for r in tx.all("execution_finish_inputs", {"execution_id": execution_id}):
            if r["task_id"] is None:
                context = r["context"]
            else:
                results[r["task_id"]] = (TaskStatus(r["status"]), r["output"], r["error"])
        return context, results

    def finish_tasks(
        self, tx: Tx, runner_id: str, finals: Sequence[FinalOutcome]
    ) -> list[FinishedTask]:
        """Record attempts' final outcomes (Completed or Failed), in order, each as
        ``TaskQueries.finish_attempt`` does and, if this runner still owned it, with
        :meth:`lock_counting_finished` of its execution, and :meth:`finish_inputs` when no
        task is left unfinished. PostgreSQL does each in one statement and sends them all
        in one round trip; what each found is what it would have found run alone at that
        point of the transaction."""
        params = [_final_params(runner_id, f) for f in finals]
        if self.db.dialect not in _ONE_STATEMENT_FINISH:
            return [self._finish_apart(tx, p) for p in params]
        found = tx.all_each("task_finish_counting", params)
        return [self._counted(tx, final, rows) for final, rows in zip(finals, found, strict=True)]

    @property
    def finishes_with_commit(self) -> bool:
        """Whether the dialect can record a final outcome together with what follows from
        it in statements sent with the COMMIT (:meth:`finish_counting_later`,
        :meth:`finish_last_later`): PostgreSQL, where each read costs a round trip."""
        return self.db.dialect in _ONE_STATEMENT_FINISH

    def finish_counting_later(
        self,
        tx: Tx,
        runner_id: str,
        final: FinalOutcome,
        dependants: Sequence[str] = (),
        *,
        claim: bool = False,
    ) -> Later:
        """Record a final outcome and count it, as :meth:`finish_tasks` does, in a statement
        sent with the COMMIT (only where :attr:`finishes_with_commit`); the rows are
        ``task_finish_counting``'s (``owned``: nothing was written if not).

        ``dependants``: tasks a Completed one decides alone (each waits for it only, under
        the default rule); they are made Ready in the same statement while the execution is
        active, as planning after it would, or with ``claim`` claimed by ``runner_id`` at
        once (:func:`~cloaca.store.tasks.claimed_from` reads them from the rows). Without
        any, the outcome plans nothing: if its rows show the count reached zero, the caller
        ends the execution in a transaction of its own."""
        params = _final_params(runner_id, final, dependants, claim)
        later = tx.later("task_finish_counting", params)
        if dependants and not claim:
            self.notices.ready(tx)
        return later

    def finish_last_later(
        self,
        tx: Tx,
        runner_id: str,
        final: FinalOutcome,
        ending: tuple[ExecutionStatus, str, str | None],
    ) -> Later:
        """Record the final outcome of an execution's last unfinished task and end the
        execution as ``ending`` says (status, final context JSON, error), when this runner
        still owned the attempt, the count left no task unfinished and the execution is
        active: what :meth:`finish_tasks` and then :meth:`finish` would do, in statements
        sent with the COMMIT (only where :attr:`finishes_with_commit`). The rows are
        ``task_finish_counting``'s."""
        execution_id = final.claimed.execution_id
        counted = self.finish_counting_later(tx, runner_id, final)
        status, final_context, error = ending
        now = to_db_time(final.now)
        tx.send(
            "execution_finish_counted",
            {
                "id": execution_id,
                "status": str(status),
                "final_context": final_context,
                "error": error,
                "now": now,
            },
        )
        tx.send("trigger_release_holds_ended", {"execution_id": execution_id, "now": now})
        # A claim lost meanwhile makes this notice one without an ending: its listeners
        # read the execution and find it still running (or ended before).
        self.notices.finished(tx, execution_id)
        self.expected.read_in(tx, execution_id)
        return counted

    def _finish_apart(self, tx: Tx, params: dict[str, Any]) -> FinishedTask:
        """One final outcome, its execution's lock and count in separate statements."""
        if tx.run("task_finish_attempt", params) == 0:
            return FinishedTask(False)
        execution_id = str(params["execution_id"])
        locked = self.lock_counting_finished(tx, execution_id, 1)
        if locked is None:
            return FinishedTask(True)
        state, remaining = locked
        ending = remaining <= 0 and not state.is_terminal
        inputs = self.finish_inputs(tx, execution_id) if ending else None
        return FinishedTask(True, state, remaining, inputs)

    def _counted(self, tx: Tx, final: FinalOutcome, rows: list[Row]) -> FinishedTask:
        """What one ``task_finish_counting`` statement found."""
        head = next(r for r in rows if r["task_id"] is None)
        if not head["owned"]:
            return FinishedTask(False)
        if head["status"] is None:
            return FinishedTask(True)
        state, remaining = ExecutionStatus(head["status"]), int(head["remaining_tasks"])
        if remaining > 0 or state.is_terminal:
            return FinishedTask(True, state, remaining)
        results = {
            r["task_id"]: (TaskStatus(r["task_status"]), r["output"], r["error"])
            for r in rows
            if r["task_id"] is not None and r["claimed_id"] is None
        }
        context = head["context"]
        if any(not s.is_terminal for s, _, _ in results.values()):
            # The statement's snapshot predates the lock: a task that finished while it
            # waited for the lock is missing. Read them again, after the lock.
            context, results = self.finish_inputs(tx, final.claimed.execution_id)
        results[final.claimed.task_id] = (final.status, final.output_json, final.error)
        return FinishedTask(True, state, remaining, (context, results))

    def lock(self, tx: Tx, execution_id: str) -> ExecutionStatus | None:
        """Lock an execution's row until ``tx`` ends and return its status (None if it does
        not exist). Every planning step takes this lock first, so two tasks of one execution
        finishing at the same moment are planned one after the other, each seeing the
        other's outcome."""
        row = tx.one("execution_lock", {"id": execution_id})
        return ExecutionStatus(row["status"]) if row else None

    def lock_counting_finished(
        self, tx: Tx, execution_id: str, finished: int
    ) -> tuple[ExecutionStatus, int] | None:
        """:meth:`lock` and :meth:`count_finished` in one statement: returns the execution's
        status and how many tasks remain unfinished (None if it does not exist). The count
        of a terminal execution no longer matters."""
        row = tx.one("execution_lock_count_finished", {"id": execution_id, "finished": finished})
        return (ExecutionStatus(row["status"]), int(row["remaining_tasks"])) if row else None

    def count_finished(self, tx: Tx, execution_id: str, finished: int) -> int:
        """Record that ``finished`` more tasks reached a final status; returns how many remain."""
        row = tx.one("execution_count_finished", {"id": execution_id, "finished": finished})
        return int(row["remaining_tasks"]) if row else 0

    def recount_remaining(self, tx: Tx, execution_id: str) -> int:
        """Reset an execution's count of unfinished tasks from its task executions' actual
        statuses; returns it."""
        row = tx.one("execution_recount_remaining", {"id": execution_id})
        return int(row["remaining_tasks"]) if row else 0

    def status(self, tx: Tx, execution_id: str) -> ExecutionStatus | None:
        """Current status of an execution, or None if it does not exist."""
        row = tx.one("execution_status", {"id": execution_id})
        return ExecutionStatus(row["status"]) if row else None

    def finish(
        self,
        tx: Tx,
        execution_id: str,
        status: ExecutionStatus,
        now: datetime,
        final_context_json: str | None = None,
        error: str | None = None,
        *,
        active: bool = False,
    ) -> bool:
        """Make an execution terminal and, in the same transaction, release the trigger dedup
        hold it carried. Returns False if it was already terminal. ``active``: the caller
        holds the execution's lock and saw it active, so the change is certain and nobody
        waits for its row count."""
        params = {
            "id": execution_id,
            "status": str(status),
            "final_context": final_context_json,
            "error": error,
            "now": to_db_time(now),
        }
        if active:
            tx.send("execution_finish", params)
            changed = True
        else:
            changed = tx.run("execution_finish", params) > 0
        if changed:
            tx.send("trigger_release_holds", {"execution_id": execution_id, "now": to_db_time(now)})
            self.notices.finished(tx, execution_id)
            if active:  # every task is final: the execution is as its waiters will see it
                self.expected.read_in(tx, execution_id)
        return changed

    # -- reads (each in its own read transaction) -----------------------------------------------

    def statuses(self, execution_ids: Iterable[str]) -> dict[str, ExecutionStatus]:
        """execution id → status for the given executions (unknown ids are left out)."""
        with self.db.read() as tx:
            rows = tx.all("execution_statuses", {"ids": json.dumps(list(execution_ids))})
        return {r["id"]: ExecutionStatus(r["status"]) for r in rows}

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One execution, or None (transient database errors are retried)."""
        row = read_retrying(
            self.db,
            lambda tx: tx.one("execution_get", {"id": execution_id}),
            "reading an execution",
        )
        return ExecutionRecord.from_row(row) if row else None

    def get_with_tasks(
        self, execution_id: str, tasks_unless_active: bool = False
    ) -> tuple[ExecutionRecord | None, list[TaskExecutionRecord]]:
        """One execution and its task executions (topological order), read in ONE
        statement (plus the attempt history, only if some task failed before); with
        ``tasks_unless_active`` the tasks are read only once the execution is terminal (a
        waiter needs them only then). Transient errors are retried."""

        def read(tx: Tx) -> tuple[ExecutionRecord | None, list[TaskExecutionRecord]]:
            rows = tx.all(
                "execution_with_tasks",
                {"id": execution_id, "with_tasks": 0 if tasks_unless_active else 1},
            )
            record, tasks = _with_tasks(rows)
            return record, with_history(tx, execution_id, tasks) if record else []

        return read_retrying(self.db, read, "reading an execution")

    def finished_result(
        self, execution_id: str, wait: float = 0.0
    ) -> tuple[ExecutionRecord, list[TaskExecutionRecord]] | None:
        """:meth:`get_with_tasks` of an execution :attr:`expected` here, as the
        transaction that ended it (in this process) read it with its COMMIT; None when
        there is none, or when the attempt history would need a read of its own.
        ``wait``: seconds at most for that transaction to end (see ExpectedResults.rows)."""
        rows = self.expected.rows(execution_id, wait)
        record, tasks = _with_tasks(rows or [])
        if record is None or not record.status.is_terminal:
            return None  # read by a transaction that meant to end it, and did not
        if any(t.may_have_history for t in tasks):
            return None
        return record, [t.with_history([]) for t in tasks]

    def list_newest(
        self, workflow_name: str | None, status: str | None, limit: int, offset: int
    ) -> list[ExecutionRecord]:
        """Executions newest first, optionally filtered."""
        with self.db.read() as tx:
            rows = tx.all(
                "execution_list",
                {
                    "workflow_name": workflow_name,
                    "status": status,
                    "limit": limit,
                    "offset": offset,
                },
            )
        return [ExecutionRecord.from_row(r) for r in rows]

    def older_than(self, threshold: datetime) -> list[str]:
        """Ids of non-terminal executions created before ``threshold`` (workflow timeout)."""
        with self.db.read() as tx:
            return [
                r["id"]
                for r in tx.all("execution_list_timed_out", {"threshold": to_db_time(threshold)})
            ]

    def oldest_active_created_at(self) -> datetime | None:
        """Creation time of the oldest Pending/Running execution, or None."""
        with self.db.read() as tx:
            row = tx.one("execution_oldest_active")
        return from_db_time(row["created_at"]) if row else None

    def stalled(self, quiet_since: datetime, limit: int) -> list[tuple[str, str, str]]:
        """``(id, workflow name, version)`` of up to ``limit`` active executions created
        before ``quiet_since`` with no Running or Ready task execution and no task started
        or finished since then: nothing will move them on by itself (the last-resort
        repair re-plans them)."""
        with self.db.read() as tx:
            rows = tx.all(
                "execution_stalled", {"threshold": to_db_time(quiet_since), "limit": limit}
            )
        return [(r["id"], r["workflow_name"], r["workflow_version"]) for r in rows]
