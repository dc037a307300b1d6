"""Helpers shared by the ``cloaca`` commands: output, errors, app import, JSON input."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cloaca.errors import CloacaError
from cloaca.runner.management import ManagementClient

DEFAULT_DB = "sqlite://cloaca.db"


def out() -> Console:
    """A console for stdout as it is now: colours and width only on a terminal; piped
    output is never truncated."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=10_000)


class UserError(CloacaError, click.ClickException):
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
def management_client(db: str, create: bool = False) -> Iterator[ManagementClient]:
    """A client that reads and manages the database: no engine, no runner row. It never
    creates the database unless ``create`` (``db migrate``)."""
    with user_errors():
        client = ManagementClient.open(db, create=create)
    try:
        yield client
    finally:
        client.close()


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
