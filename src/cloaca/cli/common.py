"""Helpers shared by the ``cloaca`` commands: output, errors, app import, JSON input, and the
database options every command accepts."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from cloaca.cli.formatting import cell
from cloaca.errors import CloacaError
from cloaca.runner.management import ManagementClient

DEFAULT_DB = "sqlite://cloaca.db"

#: Keys of ``click.Context.meta`` (shared by every context of one command line).
SCHEMA_KEY = "cloaca.schema"
DB_SOURCE_KEY = "cloaca.db_source"
WIDE_KEY = "cloaca.wide"
TRACEBACK_KEY = "cloaca.traceback"


def out(table: bool = False) -> Console:
    """A console for stdout as it is now: colours and width only on a terminal. Piped
    output is never truncated, except tables when ``$COLUMNS`` sets a width."""
    console = Console(highlight=False)
    if console.is_terminal or (table and os.environ.get("COLUMNS", "").isdigit()):
        return console
    return Console(highlight=False, width=10_000)


class UserError(CloacaError, click.ClickException):
    """A user mistake: one line on stderr, exit status 1."""

    exit_code = 1

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.message}", err=True)


def debugging() -> bool:
    """Full tracebacks wanted: ``cloaca --traceback`` or ``CLOACA_DEBUG=1``."""
    ctx = click.get_current_context(silent=True)
    flag = bool(ctx and ctx.meta.get(TRACEBACK_KEY))
    return flag or os.environ.get("CLOACA_DEBUG", "") not in ("", "0")


def import_app(app: str) -> None:
    """Import a ``.py`` file or a dotted module so its workflows and triggers register.

    A failure is one line naming the file and line where it happened (``app.py:12:
    NameError: ...``); with :func:`debugging` the whole traceback is printed first."""
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
        if exc.name and (app == exc.name or app.startswith(exc.name + ".")):
            raise UserError(f"cannot import app {app!r}: {exc}") from exc
        raise UserError(f"importing app {app!r} failed: {where_raised(exc)}") from exc
    except Exception as exc:
        raise UserError(f"importing app {app!r} failed: {where_raised(exc)}") from exc


def where_raised(exc: BaseException) -> str:
    """``file.py:LINE: Type: message`` for an exception from user code, on one line: the
    line of a SyntaxError, else the innermost frame outside the import machinery. With
    :func:`debugging`, the full traceback goes to stderr first."""
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    message = " ".join(str(exc).split())
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_short_path(exc.filename)}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "<frozen" not in f.filename]
    if not frames:
        return f"{type(exc).__name__}: {message}"
    last = frames[-1]
    return f"{_short_path(last.filename)}:{last.lineno}: {type(exc).__name__}: {message}"


def _short_path(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


@contextmanager
def management_client(db: str, create: bool = False) -> Iterator[ManagementClient]:
    """A client that reads and manages the database (in the ``--schema`` given, if any):
    no engine, no runner row. It never creates the database unless ``create``."""
    with user_errors():
        client = ManagementClient.open(db, schema=current_schema(), create=create)
    try:
        yield client
    finally:
        client.close()


def current_schema() -> str | None:
    """The ``--schema`` (or ``$CLOACA_SCHEMA``) of this command line, if any."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(SCHEMA_KEY) if ctx else None


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the engine's ValueError/TypeError/TimeoutError into a one-line exit 1."""
    try:
        yield
    except (ValueError, TypeError, TimeoutError, KeyError) as exc:
        # A KeyError's str() is the repr of its message: use the message itself.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise UserError(" ".join(str(message).split())) from exc


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
    """Print rows as a table (or one record as key/value pairs), or as JSON.

    Tables shorten ids to 8 characters and times to seconds, unless ``--wide``; a single
    record and JSON show every value whole."""
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if rows is None:
        out().print("(none)")
        return
    if isinstance(rows, dict):
        table = Table(show_header=False, box=None)
        for key, value in rows.items():
            table.add_row(f"[bold]{key}[/bold]", cell(value, key, short_ids=False))
        out().print(table)
        return
    if not rows:
        out().print("(none)")
        return
    cols = list(columns) or list(rows[0])
    wide = _wide()
    cells = [[cell(row.get(c), c, short_ids=not wide) for c in cols] for row in rows]
    table = Table()
    for i, col in enumerate(cols):
        # Short values (ids, statuses, times) keep their width; long text gives way.
        longest = max(len(col), *(len(r[i]) for r in cells))
        table.add_column(
            col,
            overflow="fold" if wide else "ellipsis",
            no_wrap=not wide,
            min_width=longest if longest <= _KEEP_WIDTH else None,
        )
    for r in cells:
        table.add_row(*r)
    out(table=True).print(table)


#: Table columns whose values are all at most this long are never narrowed.
_KEEP_WIDTH = 24


def _wide() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(WIDE_KEY))


def _set_wide(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta[WIDE_KEY] = True


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` (passed as ``as_json``) and ``--wide`` (full ids in tables)."""
    f = click.option(
        "--wide",
        is_flag=True,
        expose_value=False,
        callback=_set_wide,
        help="Show full ids and values in tables.",
    )(f)
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(f)


# -- --db and --schema after the subcommand ------------------------------------------------


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj = value
        ctx.meta[DB_SOURCE_KEY] = "command line"


def _set_schema(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta[SCHEMA_KEY] = value


#: The options every command accepts after its name too (``cloaca executions list --db
#: URL``). Eager, so they are known before any argument is resolved against the database.
_COMMAND_OPTIONS = (
    click.Option(
        ["--db"],
        metavar="URL",
        expose_value=False,
        is_eager=True,
        callback=_set_db,
        help="Database URL (as `cloaca --db URL ...`).",
    ),
    click.Option(
        ["--schema"],
        expose_value=False,
        is_eager=True,
        callback=_set_schema,
        help="PostgreSQL schema of cloaca's tables (as `cloaca --schema NAME ...`).",
    ),
)


def add_database_options(command: click.Command) -> None:
    """Give ``command`` (and every command under it) the ``--db`` and ``--schema`` options,
    unless it has options of those names already."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_database_options(sub)
        return
    taken = {opt for p in command.params for opt in getattr(p, "opts", ())}
    for option in _COMMAND_OPTIONS:
        if not taken & set(option.opts):
            command.params.append(option)


class CloacaGroup(click.Group):
    """The root group: whatever command it resolves gets the database options, including
    commands other modules add to its subgroups later."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            add_database_options(command)
        return name, command, rest
