"""The ``cloaca`` command: a thin shell over :class:`~cloaca.runner.default.DefaultRunner`
and :class:`~cloaca.runner.management.ManagementClient`.

``cloaca run APP`` is the worker process, and ``cloaca execute --app APP`` runs a workflow
in a runner of its own. Every other command opens a management client (no engine, no
runner row; it never creates the database, except ``db migrate``), reads or changes the
database, prints a table (or JSON with ``--json``) and exits. User errors exit 1 with one
line; usage errors exit 2.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from cloaca.cli.common import (
    DEFAULT_DB,
    import_app,
    json_option,
    management_client,
    out,
    parse_context,
    show,
    user_errors,
)
from cloaca.cli.dashboard import dashboard, serve_metrics
from cloaca.cli.prune import prune
from cloaca.cli.schedules import cron, triggers
from cloaca.cli.workflows import workflows
from cloaca.config import DefaultRunnerConfig
from cloaca.runner.database import mask_url
from cloaca.runner.default import DefaultRunner
from cloaca.runner.facade import Services


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--db",
    envvar="CLOACA_DATABASE_URL",
    default=DEFAULT_DB,
    show_default=True,
    help="Database URL (default $CLOACA_DATABASE_URL, else sqlite://cloaca.db).",
)
@click.pass_context
def main(ctx: click.Context, db: str) -> None:
    """cloaca: durable workflows, cron schedules and event triggers."""
    ctx.obj = db


@main.command()
@click.argument("app")
@click.option(
    "--for", "seconds", type=click.FloatRange(min=0), help="Stop after this many seconds."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus /metrics on 127.0.0.1:PORT (needs cloaca[dashboard]).",
)
@click.pass_obj
def run(db: str, app: str, seconds: float | None, metrics_port: int | None) -> None:
    """Import APP and run a worker until Ctrl-C / SIGTERM (or --for SECONDS)."""
    import_app(app)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with user_errors():
        runner = DefaultRunner(db)
    try:
        configure: Callable[[DefaultRunner], Any] | None = getattr(
            sys.modules.get(Path(app).stem if app.endswith(".py") else app), "configure", None
        )
        if callable(configure):
            with user_errors():
                configure(runner)
        out().print(f"cloaca worker {runner.runner_id} running on {db} (Ctrl-C to stop)")
        stop_metrics = serve_metrics(db, metrics_port) if metrics_port else None
        try:
            stop.wait(seconds)
        except KeyboardInterrupt:
            pass
        finally:
            if stop_metrics:
                stop_metrics()
    finally:
        signal.signal(signal.SIGTERM, previous)
        out().print("shutting down...")
        runner.shutdown()


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
    same database runs it and this command polls the database for the result."""
    context = parse_context(context_text)
    if app:
        import_app(app)
        config = DefaultRunnerConfig(enable_cron_scheduling=False, enable_trigger_scheduling=False)
        with user_errors():
            runner = DefaultRunner(db, config)
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
    """List and inspect executions."""


@executions.command("list")
@click.option("--workflow")
@click.option("--status")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def executions_list(
    db: str, workflow: str | None, status: str | None, limit: int, as_json: bool
) -> None:
    """Executions, newest first."""
    with management_client(db) as client, user_errors():
        rows = client.list_executions(workflow_name=workflow, status=status, limit=limit)
    show(
        rows,
        as_json,
        ["id", "workflow_name", "status", "started_at", "completed_at", "error_message"],
    )


@executions.command("show")
@click.argument("execution_id")
@json_option
@click.pass_obj
def executions_show(db: str, execution_id: str, as_json: bool) -> None:
    """One execution with its tasks (status, attempts, timings, errors)."""
    with management_client(db) as client, user_errors():
        result = client.get_execution(execution_id)
    tasks = [
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
        show({**_result_dict(result), "tasks": tasks}, True)
        return
    show(_result_dict(result), False)
    show(tasks, False)


@main.group()
def db() -> None:
    """Schema migrations."""


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
