"""``cloaca db prune``: delete old executions, fire and cron records and evaluations."""

from __future__ import annotations

import re
from datetime import timedelta

import click

from cloaca.cli.common import UserError, json_option, management_client, out, show, user_errors

_DURATION = re.compile(r"^\s*(\d+)\s*([dhms])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_FORMS = "a whole number with a unit: 30d (days), 12h (hours), 90m (minutes) or 3600s (seconds)"


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``3600s`` → a positive timedelta; anything else is a
    UserError naming the value and the accepted forms."""
    match = _DURATION.match(text)
    if match is None or int(match.group(1)) == 0:
        raise UserError(f"--older-than {text!r} is not a duration; expected {_FORMS}")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise UserError(f"--older-than {text!r} is too large; expected {_FORMS}") from None


@click.command("prune")
@click.option(
    "--older-than",
    "older_than",
    required=True,
    metavar="DURATION",
    help="Prune what ended before this long ago: 30d, 12h, 90m or 3600s.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@json_option
@click.pass_obj
def prune(db: str, older_than: str, dry_run: bool, as_json: bool) -> None:
    """Delete finished executions (with their tasks), trigger fire records, trigger
    evaluations and cron records older than --older-than. Nothing active is deleted."""
    age = parse_duration(older_than)
    with management_client(db) as client, user_errors():
        counts = client.prune(age, dry_run=dry_run)
    if as_json:
        show({"older_than": older_than, "dry_run": dry_run, "deleted": counts}, True)
        return
    verb = "would delete" if dry_run else "deleted"
    show([{"kind": kind, verb: n} for kind, n in counts.items()], False, ["kind", verb])
    if dry_run:
        out().print("dry run: nothing was deleted")
