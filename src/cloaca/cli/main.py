"""The ``cloaca`` command: a thin shell over :class:`~cloaca.runner.default.DefaultRunner`
and :class:`~cloaca.runner.management.ManagementClient`.

``cloaca run APP`` is the worker process (:mod:`cloaca.cli.worker`), and ``cloaca execute
--app APP`` runs a workflow in a runner of its own. Every other command opens a management
client (no engine, no runner row; it never creates the database, except ``db migrate``),
reads or changes the database, prints a table (or JSON with ``--json``) and exits. User
errors exit 1 with one line; usage errors exit 2. ``--db`` and ``--schema`` are accepted
before the command or after it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click
from click.core import ParameterSource

from cloaca.cli.common import (
    DB_SOURCE_KEY,
    DEFAULT_DB,
    SCHEMA_KEY,
    TRACEBACK_KEY,
    CloacaGroup,
    UserError,
    current_schema,
    import_app,
    json_option,
    management_client,
    out,
    parse_context,
    show,
    user_errors,
)
from cloaca.cli.dashboard import dashboard
from cloaca.cli.formatting import elapsed, short_id, timestamp
from cloaca.cli.ids import execution_id_argument
from cloaca.cli.prune import prune
from cloaca.cli.schedules import cron, triggers
from cloaca.cli.worker import run
from cloaca.cli.workflows import workflows
from cloaca.config import DefaultRunnerConfig
from cloaca.runner.database import mask_url
from cloaca.runner.default import DefaultRunner
from cloaca.runner.facade import Services
from cloaca.runner.management import ManagementClient
from cloaca.store.records import ExecutionStatus

#: Execution statuses as ``--status`` accepts them (in any case).
STATUSES = [str(s) for s in ExecutionStatus]
#: ``--started-by`` values: "manual" is the API or the CLI (the store calls it "api").
STARTED_BY = {"trigger": "trigger", "cron": "cron", "manual": "api", "api": "api"}


@click.group(cls=CloacaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cloaca", prog_name="cloaca")
@click.option(
    "--db",
    envvar="CLOACA_DATABASE_URL",
    default=DEFAULT_DB,
    show_default=True,
    help="Database URL (default $CLOACA_DATABASE_URL, else sqlite://cloaca.db). Also "
    "accepted after the command.",
)
@click.option(
    "--schema",
    envvar="CLOACA_SCHEMA",
    help="PostgreSQL schema of cloaca's tables (default $CLOACA_SCHEMA, else the URL's).",
)
@click.option(
    "--traceback",
    is_flag=True,
    help="Print full tracebacks of app errors (also CLOACA_DEBUG=1).",
)
@click.pass_context
def main(ctx: click.Context, db: str, schema: str | None, traceback: bool) -> None:
    """cloaca: durable workflows, cron schedules and event triggers."""
    ctx.obj = db
    if ctx.get_parameter_source("db") == ParameterSource.COMMANDLINE:
        ctx.meta[DB_SOURCE_KEY] = "command line"
    if schema:
        ctx.meta[SCHEMA_KEY] = schema
    ctx.meta[TRACEBACK_KEY] = traceback


main.add_command(run)


@main.command()
@click.argument("workflow")
@click.option("--context", "context_text", help="Input context as a JSON object.")
@click.option("--app", help="Import this app first and run the workflow in this process.")
@click.option("--no-wait", is_flag=True, help="Print the execution id and return at once.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after SECONDS.")
@json_option
@click.pass_obj
def execute(
    db: str,
    workflow: str,
    context_text: str | None,
    app: str | None,
    no_wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    """Start an execution of WORKFLOW and (by default) wait for its result.

    With --app the workflow runs in this process; without, a worker (``cloaca run``) on the
    same database runs it and this command polls the database for the result (it warns when
    no worker is alive)."""
    context = parse_context(context_text)
    if app:
        import_app(app)
        config = DefaultRunnerConfig(enable_cron_scheduling=False, enable_trigger_scheduling=False)
        with user_errors():
            runner = DefaultRunner(db, config, schema=current_schema())
        try:
            _execute(runner, workflow, context, no_wait, timeout, as_json)
        finally:
            runner.shutdown()
        return
    with management_client(db) as client:
        _execute(client, workflow, context, no_wait, timeout, as_json)


def _execute(
    services: Services,
    workflow: str,
    context: dict[str, Any] | None,
    no_wait: bool,
    timeout: float | None,
    as_json: bool,
) -> None:
    with user_errors():
        execution_id = services.start(workflow, context)
        if isinstance(services, ManagementClient):
            _warn_without_workers(services)
        if no_wait:
            if as_json:
                show({"execution_id": execution_id}, True)
            else:
                click.echo(execution_id)
            return
        console = out()
        waiting = f"waiting for {execution_id}..."
        with console.status(waiting) if console.is_terminal else _null():
            result = services.wait(execution_id, timeout)
    show(_result_dict(result), as_json)
    if result.status != "Completed":
        sys.exit(1)


def live_runners(client: ManagementClient) -> list[dict[str, Any]]:
    """Runners whose heartbeat is younger than the stale-claim threshold."""
    now = datetime.now(UTC)
    threshold = client.config.stale_claim_threshold_seconds
    return [
        r
        for r in client.list_runners()
        if (now - datetime.fromisoformat(r["heartbeat_at"])).total_seconds() < threshold
    ]


def _warn_without_workers(client: ManagementClient) -> None:
    if not live_runners(client):
        click.echo(
            "Warning: no live worker on this database (no runner heartbeat in the last "
            f"{client.config.stale_claim_threshold_seconds:g}s); the execution is queued and "
            "will run when `cloaca run APP` starts",
            err=True,
        )


@contextmanager
def _null() -> Iterator[None]:
    yield


def _result_dict(result: Any) -> dict[str, Any]:
    return {
        "execution_id": result.execution_id,
        "workflow_name": result.workflow_name,
        "status": result.status,
        "start_time": result.start_time,
        "end_time": result.end_time,
        "error_message": result.error_message,
        "final_context": result.final_context.to_dict(),
    }


@main.group()
def executions() -> None:
    """List, inspect and cancel executions."""


@executions.command("list")
@click.option("--workflow", help="Only this workflow's executions.")
@click.option(
    "--status", type=click.Choice(STATUSES, case_sensitive=False), help="Only this status."
)
@click.option(
    "--started-by",
    type=click.Choice(sorted(STARTED_BY), case_sensitive=False),
    help="Only those a trigger, a cron schedule or a person (manual: the API or the CLI) started.",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def executions_list(
    db: str,
    workflow: str | None,
    status: str | None,
    started_by: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Executions, newest first, with what started each one."""
    origin = STARTED_BY[started_by.lower()] if started_by else None
    with management_client(db) as client, user_errors():
        rows = client.list_executions_page(workflow, status, origin, None, limit)
    if as_json:
        show(rows, True)
        return
    show(
        [
            {
                "id": r["id"],
                "workflow": r["workflow_name"],
                "status": r["status"],
                "started by": _origin(r),
                "started": r["started_at"] or r["created_at"],
                "took": elapsed(r["started_at"], r["completed_at"]),
                "error": r["error_message"],
            }
            for r in rows
        ],
        False,
        ["id", "workflow", "status", "started by", "started", "took", "error"],
    )


def _origin(row: dict[str, Any]) -> str:
    if row["started_by"] == "trigger":
        return f"trigger {row['trigger_name']}"
    if row["started_by"] == "cron":
        return f"cron {short_id(row['cron_schedule_id'])}"
    return "manual"


@executions.command("cancel")
@execution_id_argument()
@click.pass_obj
def executions_cancel(db: str, execution_id: str) -> None:
    """Cancel a Pending or Running execution: nothing new starts; tasks running now finish
    but nothing is planned on their results."""
    with management_client(db) as client, user_errors():
        cancelled = client.cancel_execution(execution_id)
        status = client.get_execution(execution_id).status
    if not cancelled:
        raise UserError(f"execution {execution_id} is already {status}: nothing to cancel")
    click.echo(f"execution {execution_id} cancelled")


@executions.command("show")
@execution_id_argument()
@json_option
@click.pass_obj
def executions_show(db: str, execution_id: str, as_json: bool) -> None:
    """One execution with its tasks (status, attempts, timings, errors), then the
    traceback of every failed attempt (--json: each task's attempt history too)."""
    with management_client(db) as client, user_errors():
        result = client.get_execution(execution_id)
    tasks: list[dict[str, Any]] = [
        {
            "task": tid,
            "status": t.status,
            "sub_status": t.sub_status,
            "attempts": t.attempts,
            "started_at": t.started_at,
            "completed_at": t.completed_at,
            "error": t.error,
        }
        for tid, t in result.task_results.items()
    ]
    if as_json:
        for row, t in zip(tasks, result.task_results.values(), strict=True):
            row["traceback"] = t.traceback
            row["attempts_history"] = [a.to_dict() for a in t.attempts_history]
        show({**_result_dict(result), "tasks": tasks}, True)
        return
    show(_result_dict(result), False)
    show(
        [
            {
                "task": tid,
                "status": f"{t.status} ({t.sub_status})" if t.sub_status else t.status,
                "attempts": t.attempts,
                "started": t.started_at,
                "took": elapsed(t.started_at, t.completed_at) if t.completed_at else None,
                "error": t.error,
            }
            for tid, t in result.task_results.items()
        ],
        False,
    )
    for tid, t in result.task_results.items():
        for a in t.attempts_history:
            if a.error is None:
                continue
            ended = timestamp(a.completed_at) if a.completed_at else "-"
            runner = short_id(a.runner_id) if a.runner_id else "-"
            click.echo(f"\n--- task {tid}, attempt {a.attempt}: {a.outcome} at {ended} on {runner}")
            click.echo((a.traceback or a.error).rstrip("\n"))


@main.group()
def db() -> None:
    """Schema migrations and retention."""


@db.command("migrate")
@click.pass_obj
def db_migrate(url: str) -> None:
    """Create or upgrade the schema."""
    with management_client(url, create=True) as client, user_errors():
        version = client.migrate()
    out().print(f"schema at version {version}")


@db.command("status")
@json_option
@click.pass_obj
def db_status(url: str, as_json: bool) -> None:
    """Schema version in the database and the latest this cloaca knows."""
    with management_client(url) as client, user_errors():
        current, latest = client.schema_version()
    show(
        {
            "database": mask_url(url),
            "schema_version": current,
            "latest_version": latest,
            "up_to_date": current == latest,
        },
        as_json,
    )


db.add_command(prune)
main.add_command(triggers)
main.add_command(cron)
main.add_command(dashboard)
main.add_command(workflows)
