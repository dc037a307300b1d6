"""``cloaca dashboard``: serve the web UI over a ManagementClient (optional extra
``cloaca[dashboard]``; its packages are imported only when the command runs)."""

from __future__ import annotations

from collections.abc import Callable

import click

from cloaca.cli.common import UserError, out, user_errors

EXTRA_HINT = "the dashboard needs the optional extra: pip install 'cloaca[dashboard]'"


@click.command()
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
def dashboard(db: str, host: str, port: int, read_only: bool, refresh: float) -> None:
    """Serve the web dashboard (executions, workflows, triggers, cron, runners, /metrics)."""
    try:
        from cloaca.dashboard.app import create_app
        from cloaca.dashboard.server import serve
    except ImportError as exc:
        raise UserError(f"{EXTRA_HINT} ({exc})") from exc
    from cloaca.runner.database import mask_url
    from cloaca.runner.management import ManagementClient

    with user_errors():
        client = ManagementClient.open(db)
    try:
        app = create_app(client, read_only=read_only, refresh_seconds=refresh)
        mode = " (read-only)" if read_only else ""
        out().print(f"cloaca dashboard on http://{host}:{port}/ for {mask_url(db)}{mode}")
        serve(app, host, port)
    finally:
        client.close()


def serve_metrics(db: str, port: int) -> Callable[[], None]:
    """Start a worker's ``/metrics`` endpoint on 127.0.0.1:``port`` over its own
    ManagementClient; returns what stops it (and closes the client)."""
    try:
        from cloaca import metrics
    except ImportError as exc:
        raise UserError(f"--metrics-port: {EXTRA_HINT} ({exc})") from exc
    from cloaca.runner.management import ManagementClient

    with user_errors():
        client = ManagementClient.open(db)
    try:
        server = metrics.serve(client, port)
    except OSError as exc:
        client.close()
        raise UserError(f"--metrics-port {port}: {exc}") from exc

    def stop() -> None:
        server.shutdown()
        client.close()

    return stop
