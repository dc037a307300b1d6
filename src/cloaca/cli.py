"""The ``cloaca`` command: a thin shell over :class:`~cloaca.runner.DefaultRunner`.

``cloaca run APP`` is the worker process; every other command opens a management runner
that executes nothing and fires nothing (scheduling and recovery off), reads or changes the
database, prints a table (or JSON with ``--json``) and exits. User errors exit 1 with one
line; usage errors exit 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cloaca.config import DefaultRunnerConfig
from cloaca.runner import DefaultRunner

DEFAULT_DB = "sqlite://cloaca.db"


def out() -> Console:
    """A console for stdout as it is now: colours and width only on a terminal; piped
    output is never truncated."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=10_000)


class UserError(click.ClickException):
    """A user mistake: one line on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", err=True)


def import_app(app: str) -> None:
    """Import a ``.py`` file or a dotted module so its workflows and triggers register."""
    try:
        if app.endswith(".py"):
            path = Path(app).resolve()
            if not path.is_file():
                raise UserError(f"app file {app!r} does not exist")
            sys.path.insert(0, str(path.parent))
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise UserError(f"cannot import app file {app!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            # Like `python -m`: a module in the current directory is importable.
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            importlib.import_module(app)
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        raise UserError(f"cannot import app {app!r}: {exc}") from exc
    except Exception as exc:
        raise UserError(f"importing app {app!r} failed: {type(exc).__name__}: {exc}") from exc


@contextmanager
def management_runner(db: str) -> Iterator[DefaultRunner]:
    """A runner that only reads and manages: no scheduling, no recovery sweeps."""
    config = DefaultRunnerConfig(
        enable_cron_scheduling=False, enable_trigger_scheduling=False, enable_recovery=False
    )
    with user_errors():
        runner = DefaultRunner(db, config)
    try:
        yield runner
    finally:
        runner.shutdown()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's ValueError/TypeError/TimeoutError into a one-line exit 1."""
    try:
        yield
    except (ValueError, TypeError, TimeoutError, KeyError) as exc:
        # A KeyError's str() is the repr of its message: use the message itself.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UserError(str(message)) from exc


def parse_context(text: str | None) -> dict[str, Any] | None:
    """Parse ``--context`` JSON (must be an object)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--context {text!r} is not valid JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise UserError(f"--context {text!r} must be a JSON object")
    return value


def show(
    rows: Sequence[dict[str, Any]] | dict[str, Any] | None,
    as_json: bool,
    columns: Sequence[str] = (),
) -> None:
    """Print rows as a table (or one record as key/value pairs), or as JSON."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if rows is None:
        out().print("(none)")
        return
    if isinstance(rows, dict):
        table = Table(show_header=False, box=None)
        for key, value in rows.items():
            table.add_row(f"[bold]{key}[/bold]", _cell(value))
        out().print(table)
        return
    if not rows:
        out().print("(none)")
        return
    cols = list(columns) or list(rows[0])
    table = Table(*cols)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    out().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


json_option: Callable[[Callable[..., Any]], Callable[..., Any]] = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
)


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
@click.pass_obj
def run(db: str, app: str, seconds: float | None) -> None:
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
        try:
            stop.wait(seconds)
        except KeyboardInterrupt:
            pass
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
    """Start an execution of WORKFLOW and (by default) wait for its result."""
    context = parse_context(context_text)
    if app:
        import_app(app)
    config = DefaultRunnerConfig(enable_cron_scheduling=False, enable_trigger_scheduling=False)
    with user_errors():
        runner = DefaultRunner(db, config)
    try:
        with user_errors():
            execution_id = runner.start(workflow, context)
            if no_wait:
                if as_json:
                    show({"execution_id": execution_id}, True)
                else:
                    click.echo(execution_id)
                return
            console = out()
            waiting = f"waiting for {execution_id}..."
            with console.status(waiting) if console.is_terminal else _null():
                result = runner.wait(execution_id, timeout)
        show(_result_dict(result), as_json)
        if result.status != "Completed":
            sys.exit(1)
    finally:
        runner.shutdown()


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
    with management_runner(db) as runner, user_errors():
        rows = runner.list_executions(workflow_name=workflow, status=status, limit=limit)
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
    with management_runner(db) as runner, user_errors():
        result = runner.get_execution(execution_id)
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
    from cloaca.runner import open_store

    with user_errors():
        store = open_store(url)
        try:
            version = store.migrate()
        finally:
            store.close()
    out().print(f"schema at version {version}")


@db.command("status")
@json_option
@click.pass_obj
def db_status(url: str, as_json: bool) -> None:
    """Schema version in the database and the latest this cloaca knows."""
    from cloaca.runner import open_store
    from cloaca.store.migrate import current_version, latest_version

    with user_errors():
        store = open_store(url)
        try:
            current = current_version(store.db)
            latest = latest_version(store.db.dialect)
        finally:
            store.close()
    show(
        {
            "database": url,
            "schema_version": current,
            "latest_version": latest,
            "up_to_date": current == latest,
        },
        as_json,
    )


# The schedule commands live in their own module; it imports the helpers above.
from cloaca.cli_schedules import cron, triggers  # noqa: E402

main.add_command(triggers)
main.add_command(cron)
