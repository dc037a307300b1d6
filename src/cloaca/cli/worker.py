"""``cloaca run APP``: the worker process.

Configuration comes from flags, ``CLOACA_*`` variables, a TOML file and the app (see
:mod:`cloaca.cli.settings`). The app may define two functions:

- ``runner_config(config)``: called with the :class:`~cloaca.config.DefaultRunnerConfig`
  before the runner is built; what it sets is the app's default, which the operator's file,
  environment and flags override.
- ``configure(runner)``: called once the runner runs, to register cron and trigger
  schedules. A runner reads its config once, when it is built, so a change to
  ``runner.config`` made here is refused with an error saying where to set it instead.

The first Ctrl-C (or SIGTERM) stops taking new work and waits, up to ``--grace`` seconds,
for the tasks running here, saying how many; a second one exits at once. Tasks abandoned so
stay claimed by this runner until its heartbeat goes stale, when any worker's recovery
sweep (or this one's, restarted) re-queues them: nothing is lost.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import click

from cloaca.cli.common import (
    DB_SOURCE_KEY,
    SCHEMA_KEY,
    UserError,
    import_app,
    user_errors,
    where_raised,
)
from cloaca.cli.dashboard import serve_metrics
from cloaca.cli.formatting import duration, short_id
from cloaca.cli.logs import FORMATS, LEVELS, setup_logging
from cloaca.cli.settings import (
    Layer,
    WorkerSettings,
    environment,
    from_assignments,
    from_environment,
    from_file,
    resolve,
    settings_epilog,
)
from cloaca.config import DefaultRunnerConfig
from cloaca.runner.database import mask_url
from cloaca.runner.default import DefaultRunner
from cloaca.runner.management import ManagementClient

#: How often a shutdown that waits for tasks says so again.
REMIND_EVERY_S = 5.0


def say(message: str) -> None:
    """A status line on stdout, flushed at once (a pipe would hold it back otherwise)."""
    click.echo(message)
    sys.stdout.flush()


@click.command(epilog=settings_epilog())
@click.argument("app")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (see below).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    help="Tasks run at once by this worker (max_concurrent_tasks).",
)
@click.option("--schema", help="PostgreSQL schema of cloaca's tables.")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    help="Log records at this level and above (default info).",
)
@click.option(
    "--log-format",
    type=click.Choice(FORMATS, case_sensitive=False),
    help="Logs on stderr as text, or JSON one object per line "
    "(default: text on a terminal, else JSON).",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Set any setting below, e.g. --set heartbeat_interval_seconds=5.",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On Ctrl-C / SIGTERM, wait this long for running tasks.",
)
@click.option(
    "--for", "seconds", type=click.FloatRange(min=0), help="Stop after this many seconds."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve Prometheus /metrics on 127.0.0.1:PORT (needs cloaca[dashboard]).",
)
@click.pass_context
def run(
    ctx: click.Context,
    app: str,
    config_file: Path | None,
    concurrency: int | None,
    schema: str | None,
    log_level: str | None,
    log_format: str | None,
    assignments: tuple[str, ...],
    grace: float,
    seconds: float | None,
    metrics_port: int | None,
) -> None:
    """Import APP (a file.py or a module) and run a worker until Ctrl-C / SIGTERM."""
    flags = _flag_layer(ctx, concurrency, schema, log_level, log_format)
    layers = [
        flags,
        from_assignments(assignments),
        from_environment(environment()),
        from_file(config_file) if config_file else Layer(),
    ]
    settings = resolve(layers, DefaultRunnerConfig())
    undo_logging = setup_logging(settings.log_level, settings.log_format)
    try:
        import_app(app)
        module = _app_module(app)
        hook = getattr(module, "runner_config", None)
        if callable(hook):
            base = DefaultRunnerConfig()
            _call_app(hook, base, "runner_config(config)")
            settings = resolve(layers, base)
        ctx.meta[SCHEMA_KEY] = settings.schema
        _serve(settings, module, app, grace, seconds, metrics_port)
    finally:
        undo_logging()


def _flag_layer(
    ctx: click.Context,
    concurrency: int | None,
    schema: str | None,
    log_level: str | None,
    log_format: str | None,
) -> Layer:
    flags = Layer()
    if ctx.meta.get(DB_SOURCE_KEY) == "command line":
        flags.set("database_url", ctx.obj, "--db")
    schema = schema or ctx.meta.get(SCHEMA_KEY)
    for name, value in (
        ("max_concurrent_tasks", concurrency),
        ("schema", schema),
        ("log_level", log_level and log_level.lower()),
        ("log_format", log_format and log_format.lower()),
    ):
        if value is not None:
            flags.set(name, value, "--" + name.replace("_", "-"))
    return flags


def _app_module(app: str) -> ModuleType | None:
    return sys.modules.get(Path(app).stem if app.endswith(".py") else app)


def _call_app(hook: Callable[[Any], Any], argument: Any, what: str) -> None:
    """Call a function of the app; what it raises is one line naming where."""
    try:
        hook(argument)
    except Exception as exc:
        raise UserError(f"{what} failed: {where_raised(exc)}") from exc


def _serve(
    settings: WorkerSettings,
    module: ModuleType | None,
    app: str,
    grace: float,
    seconds: float | None,
    metrics_port: int | None,
) -> None:
    shutdown = Shutdown(settings.schema)
    with shutdown.signals_caught():
        with user_errors():
            runner = DefaultRunner(settings.database_url, settings.config, schema=settings.schema)
        shutdown.runner = runner
        try:
            configure = getattr(module, "configure", None)
            if callable(configure):
                before = runner.config.to_dict()
                _call_app(configure, runner, "configure(runner)")
                _refuse_late_config(app, before, runner.config.to_dict())
            where = mask_url(settings.database_url)
            if settings.schema:
                where += f" (schema {settings.schema})"
            say(
                f"cloaca worker {short_id(runner.runner_id)} running on {where} with "
                f"{runner.config.max_concurrent_tasks} task slots (Ctrl-C to stop)"
            )
            stop_metrics = (
                serve_metrics(settings.database_url, metrics_port) if metrics_port else None
            )
            try:
                shutdown.requested.wait(seconds)
                shutdown.graceful(grace)
            finally:
                if stop_metrics:
                    stop_metrics()
        finally:
            runner.shutdown(timeout=grace)  # a no-op after a graceful shutdown


def _refuse_late_config(app: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    changed = [f"{k} {before[k]!r} -> {after[k]!r}" for k in before if before[k] != after[k]]
    if changed:
        raise UserError(
            f"configure(runner) in {app} changed runner.config ({', '.join(changed)}) after "
            f"the runner started; a runner reads its config once, when it is built. Set it "
            f"in `def runner_config(config):` in the app (called before the runner is built) "
            f"or with a flag, a CLOACA_* variable or --config (see `cloaca run --help`)"
        )


class Shutdown:
    """Ctrl-C and SIGTERM: the first asks for a graceful shutdown, a second stops now."""

    def __init__(self, schema: str | None) -> None:
        self.requested = threading.Event()
        self._schema = schema
        self.runner: DefaultRunner | None = None
        self._count = 0

    def signals_caught(self) -> _Signals:
        return _Signals(self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._count += 1
        if self._count == 1 and self.runner is not None:
            self.requested.set()
            return
        # A second signal, or one before the runner exists: stop at once.
        self._stop_now(signum)

    def graceful(self, grace: float) -> None:
        """Stop taking work, wait up to ``grace`` seconds for running tasks, saying so."""
        runner = self.runner
        assert runner is not None
        running = self._running_tasks()
        if running:
            say(
                f"shutting down: waiting up to {duration(grace)} for {_tasks(running)} "
                f"(Ctrl-C again to stop now: their claims are then taken over by another "
                f"worker, nothing is lost)"
            )
        else:
            say("shutting down...")
        done = threading.Event()
        threading.Thread(target=self._remind, args=(done,), daemon=True).start()
        try:
            runner.shutdown(timeout=grace)
        finally:
            done.set()
        say("stopped")

    def _remind(self, done: threading.Event) -> None:
        while not done.wait(REMIND_EVERY_S):
            running = self._running_tasks()
            if running and not done.is_set():
                say(f"still waiting for {_tasks(running)} (Ctrl-C again to stop now)")

    def _running_tasks(self) -> int | None:
        """Tasks this runner holds, as its row in the database says (None: unknown)."""
        runner = self.runner
        if runner is None:
            return None
        try:
            with closing(ManagementClient.open(runner.database_url, self._schema)) as client:
                rows = client.list_runners()
        except Exception:
            return None
        return next((r["running_tasks"] for r in rows if r["id"] == runner.runner_id), 0)

    def _stop_now(self, signum: int) -> None:
        runner = self.runner
        if runner is not None:
            threshold = duration(runner.config.stale_claim_threshold_seconds)
            say(
                f"stopping now: tasks still running here stay claimed by runner "
                f"{short_id(runner.runner_id)} until its heartbeat is {threshold} old; then "
                f"another worker (or this one, restarted) re-queues them, the abandoned "
                f"attempt counting as one of the task's attempts. Nothing is lost."
            )
        else:
            say("stopping now")
        sys.stderr.flush()
        os._exit(128 + signum)


def _tasks(count: int | None) -> str:
    if count is None:
        return "running tasks"
    return f"{count} running task" + ("" if count == 1 else "s")


class _Signals:
    """Route SIGINT and SIGTERM to a handler while inside the block (main thread only)."""

    def __init__(self, handler: Callable[[int, FrameType | None], None]) -> None:
        self._handler = handler
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handler)

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
