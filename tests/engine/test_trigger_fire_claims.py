"""A fire on a runner with free task slots claims its execution's roots in the fire
transaction, as a ``start()`` does (real threads, bounded waits): the task starts at the
instant the fire was recorded, with no claim of the executor's own."""

from __future__ import annotations

import cloaca
from cloaca import Context, DefaultRunnerConfig
from waiting import wait_for

CONFIG = DefaultRunnerConfig(trigger_base_poll_interval=0.05)


def test_a_fire_starts_its_root_task_in_its_own_transaction(db_url: str) -> None:
    ran: list[str] = []

    @cloaca.task(id="root")
    def root(context: Context) -> None:
        ran.append(context.get("item"))

    @cloaca.task(id="after", dependencies=["root"])
    def after(context: Context) -> None:
        ran.append("after")

    cloaca.workflow("fired", [root, after])
    fired = [False]

    @cloaca.trigger(name="once", poll_interval=0.05)
    def once() -> cloaca.TriggerResult:
        if fired[0]:
            return cloaca.TriggerResult.skip()
        fired[0] = True
        return cloaca.TriggerResult.fire({"item": "a"})

    with cloaca.DefaultRunner(db_url, CONFIG) as runner:
        runner.register_trigger("once", "fired")
        wait_for(lambda: ran == ["a", "after"])
        [evaluation] = [e for e in runner.get_trigger_evaluations("once") if e["execution_ids"]]
        [execution_id] = evaluation["execution_ids"]
        # The last body has run; its outcome may still be on its way to the database.
        wait_for(lambda: runner.get_execution(execution_id).status == "Completed")
        store = runner._store
        execution, tasks = store.executions.get_with_tasks(execution_id)
    assert execution is not None and execution.status == "Completed"
    by_id = {t.task_id: t for t in tasks}
    # Claimed by the fire transaction: started at the instant it created the execution.
    assert by_id["root"].started_at == execution.created_at == execution.started_at
    # Its successor was planned later, by the root's outcome, and claimed by the executor.
    assert by_id["after"].started_at is not None
    assert by_id["after"].started_at > execution.created_at
