"""``cloaca workflows ...``: the workflow definitions runners recorded, with declared inputs."""

from __future__ import annotations

from typing import Any

import click

from cloaca.cli.common import UserError, json_option, management_client, show, user_errors


@click.group()
def workflows() -> None:
    """Workflow definitions recorded in the database, with their declared inputs."""


@workflows.command("list")
@json_option
@click.pass_obj
def workflows_list(db: str, as_json: bool) -> None:
    """Every recorded workflow, by name."""
    with management_client(db) as client, user_errors():
        rows = client.list_workflows()
    if as_json:
        show(rows, True)
        return
    show(
        [
            {
                "name": w["name"],
                "version": w["version"],
                "tasks": len(w["tasks"]),
                "params": ", ".join(sorted(w["params"])) or "-",
                "updated_at": w["updated_at"],
            }
            for w in rows
        ],
        False,
        ["name", "version", "tasks", "params", "updated_at"],
    )


@workflows.command("show")
@click.argument("name")
@json_option
@click.pass_obj
def workflows_show(db: str, name: str, as_json: bool) -> None:
    """One workflow: its tasks with their dependencies, and the inputs it declares."""
    with management_client(db) as client, user_errors():
        found = next((w for w in client.list_workflows() if w["name"] == name), None)
    if found is None:
        raise UserError(f"workflow {name!r} is not recorded in this database")
    if as_json:
        show(found, True)
        return
    show({k: found[k] for k in ("name", "version", "description", "updated_at")}, False)
    show(
        [
            {
                "task": t["id"],
                "depends on": ", ".join(t["dependencies"]) or "-",
                "max_attempts": t["max_attempts"],
            }
            for t in found["tasks"]
        ],
        False,
        ["task", "depends on", "max_attempts"],
    )
    show(_params_rows(found["params"]), False, ["param", "type", "required", "default"])


def _params_rows(params: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "param": name,
            "type": spec.get("type", "-"),
            "required": "no" if "default" in spec else "yes",
            "default": spec.get("default", "-"),
        }
        for name, spec in sorted(params.items())
    ]
