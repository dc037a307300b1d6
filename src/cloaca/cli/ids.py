"""Ids as arguments: tables show the first 8 characters of an id, and any unique prefix is
accepted back wherever an id is expected. An ambiguous prefix is an error listing the
candidates; a full id, or a value that cannot be a prefix, is passed on unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from cloaca.cli.common import UserError, management_client, user_errors
from cloaca.cli.formatting import SHORT_ID
from cloaca.runner.management import ManagementClient

#: The length of a full id (a UUID as text).
FULL_ID = 36
_CANDIDATES_SHOWN = 10


def _could_be_prefix(value: str) -> bool:
    return 0 < len(value) < FULL_ID and not value.lower().strip("0123456789abcdef-")


def resolve_prefix(noun: str, value: str, matches: list[str]) -> str:
    """The one id of ``matches`` (the ids starting with ``value``), or a ``UserError``."""
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(f"no {noun} id starts with {value!r}")
    shown = ", ".join(matches[:_CANDIDATES_SHOWN])
    more = " ..." if len(matches) > _CANDIDATES_SHOWN else ""
    raise UserError(
        f"{noun} id prefix {value!r} is ambiguous: it starts {shown}{more}; "
        f"give more characters (tables show {SHORT_ID})"
    )


def _resolver(
    noun: str, find: Callable[[ManagementClient, str], list[str]]
) -> Callable[[click.Context, click.Parameter, str], str]:
    def callback(ctx: click.Context, param: click.Parameter, value: str) -> str:
        if not _could_be_prefix(value):
            return value
        with management_client(ctx.obj) as client, user_errors():
            matches = find(client, value.lower())
        return resolve_prefix(noun, value, matches)

    return callback


def _executions(client: ManagementClient, prefix: str) -> list[str]:
    return client.find_execution_ids(prefix, limit=_CANDIDATES_SHOWN + 1)


def _cron_schedules(client: ManagementClient, prefix: str) -> list[str]:
    return sorted(s["id"] for s in client.list_cron_schedules() if s["id"].startswith(prefix))


def execution_id_argument(name: str = "execution_id") -> Callable[[Any], Any]:
    """A click argument for an execution id that accepts a unique prefix."""
    return click.argument(name, callback=_resolver("execution", _executions))


def schedule_id_argument(name: str = "schedule_id", **kwargs: Any) -> Callable[[Any], Any]:
    """A click argument for a cron schedule id that accepts a unique prefix."""
    return click.argument(name, callback=_resolver("cron schedule", _cron_schedules), **kwargs)
