"""``cloaca dashboard`` and a worker's ``--metrics-port``: served over a ManagementClient
from the optional extra ``cloaca[dashboard]`` (imported only when asked for)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import ExitStack

import click

from cloaca.cli.common import UserError, management_client, out


def _need_extra(what: str) -> None:
    """A clear error when the extra's packages are missing."""
    for name in ("starlette", "uvicorn", "jinja2", "prometheus_client"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UserError(
                f"{what} needs the optional extra: pip install 'cloaca[dashboard]' ({exc})"
            ) from exc


@click.command()
@click.option("--db", "db_url", help="Database URL (the same as `cloaca --db URL dashboard`).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option(
    "--refresh",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="Live-refresh period of the pages in seconds (0: off).",
)
@click.pass_obj
def dashboard(
    db: str, db_url: str | None, host: str, port: int, read_only: bool, refresh: float
) -> None:
    """Serve the web dashboard (executions, workflows, triggers, cron, runners, /metrics)."""
    db = db_url or db
    _need_extra("the dashboard")
    from cloaca.dashboard.app import create_app
    from cloaca.dashboard.server import serve
    from cloaca.runner.database import mask_url

    with management_client(db) as client:
        app = create_app(client, read_only=read_only, refresh_seconds=refresh)
        mode = " (read-only)" if read_only else ""
        out().print(f"cloaca dashboard on http://{host}:{port}/ for {mask_url(db)}{mode}")
        serve(app, host, port)


def serve_metrics(db: str, port: int) -> Callable[[], None]:
    """Start a worker's ``/metrics`` endpoint on 127.0.0.1:``port`` over its own
    ManagementClient; returns what stops it (and closes the client)."""
    _need_extra("--metrics-port")
    from cloaca import metrics

    with ExitStack() as stack:
        client = stack.enter_context(management_client(db))
        try:
            server = metrics.serve(client, port)
        except OSError as exc:
            raise UserError(f"--metrics-port {port}: {exc}") from exc
        stack.callback(server.shutdown)
        return stack.pop_all().close
