"""``cloaca triggers ...`` and ``cloaca cron ...``: manage schedules from any process."""

from __future__ import annotations

import click

from cloaca.cli import json_option, management_runner, parse_context, show, user_errors

TRIGGER_COLUMNS = [
    "trigger_name",
    "workflow_name",
    "poll_interval_ms",
    "allow_concurrent",
    "enabled",
    "last_poll_at",
]
CRON_COLUMNS = [
    "id",
    "workflow_name",
    "cron_expression",
    "timezone",
    "enabled",
    "catchup_policy",
    "next_run_at",
    "last_run_at",
]


@click.group()
def triggers() -> None:
    """Event trigger schedules: list, inspect, enable/disable, history, fire."""


@triggers.command("list")
@click.option("--enabled-only", is_flag=True)
@json_option
@click.pass_obj
def triggers_list(db: str, enabled_only: bool, as_json: bool) -> None:
    """Every trigger schedule."""
    with management_runner(db) as runner, user_errors():
        rows = runner.list_trigger_schedules(enabled_only=enabled_only or None)
    show(rows, as_json, TRIGGER_COLUMNS)


@triggers.command("show")
@click.argument("name")
@json_option
@click.pass_obj
def triggers_show(db: str, name: str, as_json: bool) -> None:
    """One trigger schedule."""
    with management_runner(db) as runner, user_errors():
        row = runner.get_trigger_schedule(name)
        if row is None:
            raise ValueError(f"trigger {name!r} has no schedule in {db}")
    show(row, as_json)


def _set_trigger(db: str, name: str, enabled: bool) -> None:
    with management_runner(db) as runner, user_errors():
        runner.set_trigger_enabled(name, enabled)
    click.echo(f"trigger {name} {'enabled' if enabled else 'disabled'}")


@triggers.command("enable")
@click.argument("name")
@click.pass_obj
def triggers_enable(db: str, name: str) -> None:
    """Resume polling a trigger."""
    _set_trigger(db, name, True)


@triggers.command("disable")
@click.argument("name")
@click.pass_obj
def triggers_disable(db: str, name: str) -> None:
    """Stop polling a trigger (every process, within one base interval)."""
    _set_trigger(db, name, False)


@triggers.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def triggers_history(db: str, name: str, limit: int, as_json: bool) -> None:
    """The fires of a trigger, newest first."""
    with management_runner(db) as runner, user_errors():
        rows = runner.get_trigger_execution_history(name, limit=limit)
    show(rows, as_json, ["started_at", "completed_at", "context_hash", "workflow_execution_id"])


@triggers.command("evaluations")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def triggers_evaluations(db: str, name: str, limit: int, as_json: bool) -> None:
    """Every recent poll of a trigger and its outcome ("why didn't it fire?")."""
    with management_runner(db) as runner, user_errors():
        rows = runner.get_trigger_evaluations(name, limit=limit)
    show(rows, as_json)


@triggers.command("fire")
@click.argument("name")
@click.option("--context", "context_text", help="Context as a JSON object.")
@click.pass_obj
def triggers_fire(db: str, name: str, context_text: str | None) -> None:
    """Fire a trigger's workflow now (deduplicated like a poll's fire)."""
    context = parse_context(context_text)
    with management_runner(db) as runner, user_errors():
        execution_id = runner.fire_trigger(name, context)
    click.echo(execution_id if execution_id else "deduplicated: an identical fire is still running")


@click.group()
def cron() -> None:
    """Cron schedules: list, add, enable/disable, delete, history."""


@cron.command("list")
@click.option("--enabled-only", is_flag=True)
@json_option
@click.pass_obj
def cron_list(db: str, enabled_only: bool, as_json: bool) -> None:
    """Every cron schedule."""
    with management_runner(db) as runner, user_errors():
        rows = runner.list_cron_schedules(enabled_only=enabled_only or None)
    show(rows, as_json, CRON_COLUMNS)


@cron.command("add")
@click.argument("workflow")
@click.argument("expression")
@click.option("--tz", default="UTC", show_default=True, help="IANA timezone, e.g. Europe/Berlin.")
@click.option(
    "--catchup", type=click.Choice(["skip", "run_all"]), default="skip", show_default=True
)
@click.pass_obj
def cron_add(db: str, workflow: str, expression: str, tz: str, catchup: str) -> None:
    """Schedule WORKFLOW on a cron EXPRESSION (5 fields, or 6 with leading seconds)."""
    with management_runner(db) as runner, user_errors():
        schedule_id = runner.register_cron_workflow(
            workflow, expression, tz, catchup_policy=catchup
        )
    click.echo(schedule_id)


def _set_cron(db: str, schedule_id: str, enabled: bool) -> None:
    with management_runner(db) as runner, user_errors():
        runner.set_cron_schedule_enabled(schedule_id, enabled)
    click.echo(f"cron schedule {schedule_id} {'enabled' if enabled else 'disabled'}")


@cron.command("enable")
@click.argument("schedule_id")
@click.pass_obj
def cron_enable(db: str, schedule_id: str) -> None:
    """Enable a cron schedule."""
    _set_cron(db, schedule_id, True)


@cron.command("disable")
@click.argument("schedule_id")
@click.pass_obj
def cron_disable(db: str, schedule_id: str) -> None:
    """Disable a cron schedule."""
    _set_cron(db, schedule_id, False)


@cron.command("delete")
@click.argument("schedule_id")
@click.pass_obj
def cron_delete(db: str, schedule_id: str) -> None:
    """Delete a cron schedule."""
    with management_runner(db) as runner, user_errors():
        runner.delete_cron_schedule(schedule_id)
    click.echo(f"cron schedule {schedule_id} deleted")


@cron.command("history")
@click.argument("schedule_id")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def cron_history(db: str, schedule_id: str, limit: int, as_json: bool) -> None:
    """The fires of a cron schedule, newest first."""
    with management_runner(db) as runner, user_errors():
        rows = runner.get_cron_execution_history(schedule_id, limit=limit)
    show(rows, as_json)
