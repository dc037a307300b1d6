"""The dashboard's actions (POST, CSRF-checked, refused in read-only mode): cancel an
execution, enable/disable/fire a trigger, enable/disable a cron schedule. Each goes
through the ManagementClient and redirects back with a notice."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloaca.dashboard.errors import as_http_errors
from cloaca.errors import ValidationError

if TYPE_CHECKING:
    from cloaca.dashboard.app import Dashboard

Action = Callable[["Dashboard", Request, dict[str, str]], Response]


def routes(board: Dashboard) -> list[Route]:
    """The action routes, bound to ``board``."""

    def action(fn: Action) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            form = await board.check_action(request)
            with as_http_errors():
                return await run_in_threadpool(fn, board, request, form)

        return endpoint

    return [
        Route("/executions/{execution_id}/cancel", action(cancel), methods=["POST"]),
        Route("/triggers/{name}/enabled", action(trigger_enabled), methods=["POST"]),
        Route("/triggers/{name}/fire", action(fire), methods=["POST"]),
        Route("/cron/{schedule_id}/enabled", action(cron_enabled), methods=["POST"]),
    ]


def _flag(form: dict[str, str]) -> bool:
    value = form.get("enabled")
    if value not in ("true", "false"):
        raise ValidationError(f"enabled {value!r} must be 'true' or 'false'")
    return value == "true"


def cancel(board: Dashboard, request: Request, form: dict[str, str]) -> Response:
    """Cancel a Pending/Running execution."""
    execution_id = request.path_params["execution_id"]
    done = board.client.cancel_execution(execution_id)
    notice = "cancelled" if done else "already finished: nothing to cancel"
    return board.redirect(f"/executions/{execution_id}", notice)


def trigger_enabled(board: Dashboard, request: Request, form: dict[str, str]) -> Response:
    """Enable or disable a trigger schedule."""
    name = request.path_params["name"]
    enabled = _flag(form)
    board.client.set_trigger_enabled(name, enabled)
    return board.redirect(f"/triggers/{name}", "enabled" if enabled else "disabled")


def fire(board: Dashboard, request: Request, form: dict[str, str]) -> Response:
    """Fire a trigger's workflow now, with an optional JSON object as its context."""
    name = request.path_params["name"]
    text = form.get("context", "").strip()
    try:
        context = json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        raise ValidationError(f"context {text!r} is not valid JSON: {exc.msg}") from exc
    if context is not None and not isinstance(context, dict):
        raise ValidationError(f"context {text!r} must be a JSON object")
    execution_id = board.client.fire_trigger(name, context)
    if execution_id is None:
        return board.redirect(f"/triggers/{name}", "deduplicated: the same fire is still active")
    return board.redirect(f"/triggers/{name}", f"fired execution {execution_id}")


def cron_enabled(board: Dashboard, request: Request, form: dict[str, str]) -> Response:
    """Enable or disable a cron schedule."""
    schedule_id = request.path_params["schedule_id"]
    enabled = _flag(form)
    board.client.set_cron_schedule_enabled(schedule_id, enabled)
    return board.redirect(f"/cron/{schedule_id}", "enabled" if enabled else "disabled")
