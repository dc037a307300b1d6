"""The dashboard's ASGI application: pages and actions over one ManagementClient.

Every read and every action goes through the client (the same surface as DefaultRunner's
management methods). Actions are POSTs carrying a CSRF token (double submit: a random
cookie, echoed in each form; a cross-site page can read neither) and are refused in
read-only mode. Pages are rendered on the server; a few lines of JavaScript refresh the
live part of a page.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cloaca import metrics
from cloaca.clock import SystemClock
from cloaca.dashboard import actions, pages, views

if TYPE_CHECKING:
    from cloaca.clock import Clock
    from cloaca.runner.management import ManagementClient

HERE = Path(__file__).parent
CSRF_COOKIE = "cloaca_csrf"
CSRF_FIELD = "csrf"


class Dashboard:
    """What the handlers share: the client, the template environment, the settings."""

    def __init__(
        self,
        client: ManagementClient,
        *,
        read_only: bool,
        refresh_seconds: float,
        clock: Clock,
    ) -> None:
        self.client = client
        self.read_only = read_only
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            short_time=views.short_time, duration=views.duration, read_only=read_only
        )

    def render(self, request: Request, template: str, **values: Any) -> HTMLResponse:
        """Render a page; sets the CSRF cookie on first sight."""
        token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
        now = self.clock.now()
        html = self.env.get_template(template).render(
            request=request,
            csrf=token,
            now=now,
            ago=lambda value: views.ago(value, now),
            refresh=self.refresh_seconds,
            notice=request.query_params.get("notice"),
            **values,
        )
        response = HTMLResponse(html)
        if CSRF_COOKIE not in request.cookies:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict")
        return response

    async def check_action(self, request: Request) -> dict[str, str]:
        """The posted form of an action, after the read-only and CSRF checks."""
        if self.read_only:
            raise HTTPException(403, "the dashboard is read-only (--read-only)")
        form = await request.form()
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get(CSRF_FIELD, "")
        if not cookie or not isinstance(sent, str) or not hmac.compare_digest(cookie, sent):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page and retry")
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def redirect(self, path: str, notice: str) -> RedirectResponse:
        """Back to a page after an action, with a one-line notice."""
        return RedirectResponse(f"{path}?{urlencode({'notice': notice})}", status_code=303)


def create_app(
    client: ManagementClient,
    *,
    read_only: bool = False,
    refresh_seconds: float = 5.0,
    clock: Clock | None = None,
) -> Starlette:
    """The dashboard over ``client`` (which the caller closes). ``read_only`` hides and
    refuses every action; ``refresh_seconds`` is the live-refresh period (0: off)."""
    board = Dashboard(
        client, read_only=read_only, refresh_seconds=refresh_seconds, clock=clock or SystemClock()
    )

    async def error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        page = board.render(request, "error.html", status=exc.status_code, message=exc.detail)
        page.status_code = exc.status_code
        return page

    metrics_registry = metrics.registry(client, board.clock)

    def scrape(request: Request) -> Response:
        return Response(metrics.render(metrics_registry), media_type=metrics.CONTENT_TYPE)

    routes = [
        Route("/", lambda request: RedirectResponse("/executions")),
        Route("/metrics", scrape),
        *pages.routes(board),
        *actions.routes(board),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: error})
