"""The dashboard's pages (GET): each reads through the ManagementClient and renders one
template. Unknown ids are 404 pages; bad filter values are 400 pages naming the value."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloaca.dashboard import views
from cloaca.dashboard.errors import as_http_errors, lookup
from cloaca.errors import ValidationError

if TYPE_CHECKING:
    from cloaca.dashboard.app import Dashboard

PAGE_SIZE = 50
STATUSES = ("Pending", "Running", "Completed", "Failed", "Cancelled")
STARTED_BY = ("trigger", "cron", "api")
EVALUATIONS_SHOWN = 100  # on the strip; the table lists the newest EVALUATION_ROWS
EVALUATION_ROWS = 40
HISTORY_SHOWN = 50


def routes(board: Dashboard) -> list[Route]:
    """The page routes, bound to ``board``."""

    def page(fn: Callable[[Dashboard, Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            with as_http_errors():
                return fn(board, request)

        return endpoint

    return [
        Route("/executions", page(executions)),
        Route("/executions/{execution_id}", page(execution)),
        Route("/workflows", page(workflows)),
        Route("/workflows/{name}", page(workflow)),
        Route("/triggers", page(triggers)),
        Route("/triggers/{name}", page(trigger)),
        Route("/cron", page(cron_schedules)),
        Route("/cron/{schedule_id}", page(cron_schedule)),
        Route("/runners", page(runners)),
    ]


def _choice(request: Request, name: str, accepted: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name) or None
    if value is not None and value not in accepted:
        raise ValidationError(f"{name} {value!r} is not one of {', '.join(accepted)}")
    return value


def executions(board: Dashboard, request: Request) -> Response:
    """Executions newest first, filtered, one keyset page at a time."""
    query = request.query_params
    filters = {
        "workflow_name": query.get("workflow") or None,
        "status": _choice(request, "status", STATUSES),
        "started_by": _choice(request, "started_by", STARTED_BY),
    }
    before = query.get("before") or None
    rows = board.client.list_executions_page(**filters, before=before, limit=PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    now = board.clock.now()
    for row in rows:
        row["duration"] = views.between(row["started_at"], row["completed_at"], now)
    kept = {k: v for k, v in query.items() if k not in ("before", "notice") and v}
    return board.render(
        request,
        "executions.html",
        rows=rows,
        filters=kept,
        workflows=[w["name"] for w in board.client.list_workflows()],
        statuses=STATUSES,
        origins=STARTED_BY,
        next_before=rows[-1]["id"] if more else None,
        paged=before is not None,
    )


def execution(board: Dashboard, request: Request) -> Response:
    """One execution: its tasks on a timeline, errors, input and final context."""
    execution_id = request.path_params["execution_id"]
    result = lookup(lambda: board.client.get_execution(execution_id), "execution")
    details = board.client.describe_execution(execution_id)
    now = board.clock.now()
    return board.render(
        request,
        "execution.html",
        result=result,
        details=details,
        took=views.between(result.start_time, result.end_time, now),
        bars=views.timeline(result.task_results, now),
        final_context=result.final_context.to_dict(),
        active=result.status in ("Pending", "Running"),
    )


def workflows(board: Dashboard, request: Request) -> Response:
    """Workflow definitions recorded in the database."""
    return board.render(request, "workflows.html", workflows=board.client.list_workflows())


def workflow(board: Dashboard, request: Request) -> Response:
    """One workflow: its tasks as a graph, its declared inputs, its latest executions."""
    name = request.path_params["name"]
    definition = lookup(
        lambda: next((w for w in board.client.list_workflows() if w["name"] == name), None),
        f"workflow {name!r}",
    )
    recent = board.client.list_executions_page(
        workflow_name=name, status=None, started_by=None, before=None, limit=10
    )
    return board.render(
        request,
        "workflow.html",
        workflow=definition,
        graph=views.graph(definition["tasks"]),
        node_size=(views.NODE_W, views.NODE_H),
        params=definition.get("params") or {},
        recent=recent,
    )


def triggers(board: Dashboard, request: Request) -> Response:
    """Every trigger schedule with its state and its latest evaluation."""
    schedules = board.client.list_trigger_schedules()
    now = board.clock.now()
    for schedule in schedules:
        latest = board.client.get_trigger_evaluations(schedule["trigger_name"], 20)
        schedule["last"] = latest[0] if latest else None
        schedule["strip"] = views.evaluation_strip(latest, now)
    return board.render(request, "triggers.html", schedules=schedules)


def trigger(board: Dashboard, request: Request) -> Response:
    """One trigger: state, the evaluation log as a timeline ("why didn't it fire?"), fires."""
    name = request.path_params["name"]
    schedule = lookup(lambda: board.client.get_trigger_schedule(name), f"trigger {name!r}")
    evaluations = board.client.get_trigger_evaluations(name, EVALUATIONS_SHOWN)
    outcomes: dict[str, int] = {}
    for e in evaluations:
        outcomes[e["outcome"]] = outcomes.get(e["outcome"], 0) + 1
    return board.render(
        request,
        "trigger.html",
        schedule=schedule,
        evaluations=evaluations,
        table_rows=EVALUATION_ROWS,
        outcomes=outcomes,
        strip=views.evaluation_strip(evaluations, board.clock.now()),
        fires=board.client.get_trigger_execution_history(name, HISTORY_SHOWN),
    )


def cron_schedules(board: Dashboard, request: Request) -> Response:
    """Every cron schedule with its next and last runs."""
    return board.render(request, "cron.html", schedules=board.client.list_cron_schedules())


def cron_schedule(board: Dashboard, request: Request) -> Response:
    """One cron schedule: the next runs, the history with lateness, a day's stats."""
    schedule_id = request.path_params["schedule_id"]
    schedule = lookup(lambda: board.client.get_cron_schedule(schedule_id), "cron schedule")
    now = board.clock.now()
    history = board.client.get_cron_execution_history(schedule["id"], HISTORY_SHOWN)
    for row in history:
        row["lateness"] = views.lateness(row)
    upcoming: list[str] = []
    if schedule["enabled"]:
        upcoming = views.next_runs(schedule["cron_expression"], schedule["timezone"], now)
    return board.render(
        request,
        "cron_schedule.html",
        schedule=schedule,
        history=history,
        upcoming=upcoming,
        stats=board.client.get_cron_execution_stats(now - timedelta(days=1)),
    )


def runners(board: Dashboard, request: Request) -> Response:
    """Live runners: heartbeats and what each holds."""
    now = board.clock.now()
    rows: list[dict[str, Any]] = board.client.list_runners()
    for row in rows:
        row["heartbeat_age"] = views.between(row["heartbeat_at"], None, now)
    return board.render(request, "runners.html", runners=rows)
