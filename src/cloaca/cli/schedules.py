"""``cloaca triggers ...`` and ``cloaca cron ...``: manage schedules from any process."""

from __future__ import annotations

import click

from cloaca.cli.common import (
    UserError,
    json_option,
    management_client,
    parse_context,
    show,
    user_errors,
)
from cloaca.cli.ids import schedule_id_argument
from cloaca.runner.database import mask_url

TRIGGER_COLUMNS = [
    "trigger_name",
    "workflow_name",
    "poll_interval_ms",
    "allow_concurrent",
    "on_failed_run",
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
    with management_client(db) as client, user_errors():
        rows = client.list_trigger_schedules(enabled_only=enabled_only or None)
    show(rows, as_json, TRIGGER_COLUMNS)


@triggers.command("show")
@click.argument("name")
@json_option
@click.pass_obj
def triggers_show(db: str, name: str, as_json: bool) -> None:
    """One trigger schedule."""
    with management_client(db) as client, user_errors():
        row = client.get_trigger_schedule(name)
        if row is None:
            raise UserError(f"trigger {name!r} has no schedule in {mask_url(db)}")
    show(row, as_json)


@triggers.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def triggers_history(db: str, name: str, limit: int, as_json: bool) -> None:
    """The fires of a trigger, newest first."""
    with management_client(db) as client, user_errors():
        rows = client.get_trigger_execution_history(name, limit=limit)
    show(rows, as_json, ["started_at", "completed_at", "context_hash", "workflow_execution_id"])


@triggers.command("evaluations")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def triggers_evaluations(db: str, name: str, limit: int, as_json: bool) -> None:
    """Every recent poll of a trigger and its outcome ("why didn't it fire?")."""
    with management_client(db) as client, user_errors():
        rows = client.get_trigger_evaluations(name, limit=limit)
    if as_json:
        show(rows, True)
        return
    show(
        [{**r, "executions": " ".join(r["execution_ids"]) or None} for r in rows],
        False,
        ["evaluated_at", "outcome", "duration_ms", "executions", "message"],
    )


@triggers.command("fire")
@click.argument("name")
@click.option("--context", "context_text", help="Context as a JSON object.")
@click.pass_obj
def triggers_fire(db: str, name: str, context_text: str | None) -> None:
    """Fire a trigger's workflow now (deduplicated like a poll's fire)."""
    context = parse_context(context_text)
    with management_client(db) as client, user_errors():
        execution_id = client.fire_trigger(name, context)
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
    with management_client(db) as client, user_errors():
        rows = client.list_cron_schedules(enabled_only=enabled_only or None)
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
    with management_client(db) as client, user_errors():
        schedule_id = client.register_cron_workflow(
            workflow, expression, tz, catchup_policy=catchup
        )
    click.echo(schedule_id)


@cron.command("delete")
@schedule_id_argument()
@click.pass_obj
def cron_delete(db: str, schedule_id: str) -> None:
    """Delete a cron schedule."""
    with management_client(db) as client, user_errors():
        client.delete_cron_schedule(schedule_id)
    click.echo(f"cron schedule {schedule_id} deleted")


@cron.command("history")
@schedule_id_argument()
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@click.pass_obj
def cron_history(db: str, schedule_id: str, limit: int, as_json: bool) -> None:
    """The fires of a cron schedule, newest first."""
    with management_client(db) as client, user_errors():
        rows = client.get_cron_execution_history(schedule_id, limit=limit)
    show(rows, as_json)


def _add_toggles(group: click.Group, noun: str, argument: str, setter: str) -> None:
    """``enable`` / ``disable`` subcommands calling ``client.<setter>(key, enabled)``."""
    for verb, enabled in (("enable", True), ("disable", False)):

        def toggle(db: str, key: str, enabled: bool = enabled, verb: str = verb) -> None:
            with management_client(db) as client, user_errors():
                getattr(client, setter)(key, enabled)
            click.echo(f"{noun} {key} {verb}d")

        help_text = f"{verb.capitalize()} a {noun} (seen by every process)."
        arg = (
            schedule_id_argument("key", metavar=argument.upper())
            if group is cron
            else click.argument("key", metavar=argument.upper())
        )
        group.command(verb, help=help_text)(arg(click.pass_obj(toggle)))


_add_toggles(triggers, "trigger", "name", "set_trigger_enabled")
_add_toggles(cron, "cron schedule", "schedule_id", "set_cron_schedule_enabled")
