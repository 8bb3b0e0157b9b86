"""The console's ASGI app: an explicit routing table over `Pages`, static files from the package.

It is served on its own listener (`[console] host/port`), never on the API's: `on_listener`
sends each connection to the console or the API by the local address it arrived on.
"""

from __future__ import annotations

import socket

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from telemeeting.bootstrap import Platform
from telemeeting.console.actions import ConsoleActions
from telemeeting.console.admin_pages import AdminPages
from telemeeting.console.delivery import DeliveryPages
from telemeeting.console.live import LiveMeeting
from telemeeting.console.pages import Pages
from telemeeting.console.sessions import LoginThrottle, SessionStore
from telemeeting.console.web import Context, Guard, Renderer


def create_console_app(platform: Platform) -> Starlette:
    settings = platform.settings
    console = settings.console
    actions = ConsoleActions(platform)
    renderer = Renderer(settings.zone)
    sessions = SessionStore(platform.db, console.idle_minutes * 60)
    guard = Guard(sessions, actions, renderer, console.secure_cookies)
    throttle = LoginThrottle(console.login_attempts, console.login_window_seconds)
    pages = Pages(platform.db, actions, guard, throttle, settings.zone)
    delivery = DeliveryPages(platform.db, actions, renderer, settings.zone)
    admin = AdminPages(platform.db, actions)
    live = LiveMeeting(actions, pages.meeting_events)
    page = guard.page

    async def not_found(request: Request, ctx: Context) -> Response:
        return ctx.error("page not found", 404)

    routes = [
        Route("/login", page(pages.login_form, login=False), methods=["GET"]),
        Route("/login", page(pages.login, login=False), methods=["POST"]),
        Route("/logout", page(pages.logout), methods=["POST"]),
        Route("/language", page(pages.language, login=False), methods=["GET"]),
        Route("/", page(pages.overview), methods=["GET"]),
        Route("/meetings", page(pages.meetings), methods=["GET"]),
        Route("/meetings", page(pages.create_meeting), methods=["POST"]),
        Route("/meetings/{meeting_id}", page(pages.meeting), methods=["GET"]),
        Route("/meetings/{meeting_id}/live", page(live.stream), methods=["GET"]),
        Route("/meetings/{meeting_id}/{action}", page(pages.meeting_change), methods=["POST"]),
        Route("/pushes", page(delivery.pushes), methods=["GET"]),
        Route("/pushes/redeliver-dead", page(delivery.redeliver_dead), methods=["POST"]),
        Route("/pushes/{event_id}", page(delivery.push), methods=["GET"]),
        Route("/pushes/{event_id}/redeliver", page(delivery.redeliver), methods=["POST"]),
        Route("/cdrs", page(delivery.cdrs), methods=["GET"]),
        Route("/cdrs.csv", page(delivery.cdrs_csv), methods=["GET"]),
        Route("/apps", page(admin.apps), methods=["GET"]),
        Route("/apps", page(admin.create_app), methods=["POST"]),
        Route("/apps/{app_id}", page(admin.update_app), methods=["POST"]),
        Route("/accounts", page(admin.accounts), methods=["GET"]),
        Route("/accounts", page(admin.create_account), methods=["POST"]),
        Route("/accounts/{sid}/{action}", page(admin.account_change), methods=["POST"]),
        Route("/audit", page(pages.audit), methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("telemeeting.console", "static")]), name="static"),
        Route("/{path:path}", page(not_found, login=False), methods=["GET", "POST"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (a method a route does not take) as console pages too."""
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        ctx = Context(None, Guard.language_of(request), renderer)
        return ctx.error(
            "page not found" if status == 404 else "Something went wrong; the change was not made.",
            status,
        )

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


def on_listener(api: ASGIApp, console: ASGIApp, console_port: int) -> ASGIApp:
    """One ASGI app for uvicorn: connections accepted on the console's port go to the console,
    every other one (and the lifespan) to the API. `serve` refuses a console port equal to
    an API port, so the local port alone tells them apart."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] != "lifespan" and server and server[1] == console_port:
            await console(scope, receive, send)
            return
        await api(scope, receive, send)

    return route


def is_console_socket(sock: socket.socket, console_port: int) -> bool:
    return bool(console_port) and sock.getsockname()[1] == console_port
