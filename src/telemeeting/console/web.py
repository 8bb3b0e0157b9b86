"""The console's request plumbing: who is asking (session cookie), in which language, whether a
change carries its CSRF token, and turning every outcome into a page, never a traceback.

Handlers are plain `async def handler(request, ctx) -> Response`; `Guard` wraps them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from telemeeting.console import i18n
from telemeeting.console.actions import ConsoleActions, ConsoleError
from telemeeting.console.sessions import (
    COOKIE_NAME,
    CSRF_FIELD,
    CSRF_HEADER,
    Principal,
    Session,
    SessionStore,
    csrf_matches,
)

log = structlog.get_logger(__name__)

#: Bodies of console forms are small; a larger one is refused before it is parsed.
MAX_FORM_BYTES = 64 * 1024
_CHANGE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Context:
    """One request's user, session and language, and the page-rendering helpers."""

    session: Session | None
    language: str
    renderer: Renderer

    @property
    def user(self) -> Principal:
        assert self.session is not None, "a guarded page always has a session"
        return self.session.principal

    def _(self, text: str) -> str:
        return i18n.translator(self.language)(text)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.renderer.render(template, self, **values)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def fragment(self, template: str, **values: Any) -> str:
        return self.renderer.render(template, self, **values)

    def error(self, message: str, status: int, detail: str = "") -> HTMLResponse:
        return self.render("error.html", status=status, message=message, detail=detail)


#: No framing (clickjacking), no sniffing, scripts and styles only from the console itself.
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
}


class Renderer:
    """Jinja2 templates shipped in the package; autoescaping on for every template, so that a
    meeting or party name such as `<script>` shows as text."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._env = Environment(
            loader=PackageLoader("telemeeting.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["when"] = self.when
        self._env.filters["money"] = money

    def when(self, epoch: float | None) -> str:
        if epoch is None or not math.isfinite(epoch):
            return ""
        return datetime.fromtimestamp(epoch, self._zone).strftime("%Y-%m-%d %H:%M:%S")

    def render(self, template: str, ctx: Context, **values: Any) -> str:
        session = ctx.session
        return self._env.get_template(template).render(
            _=ctx._,
            language=ctx.language,
            languages=i18n.LANGUAGES,
            user=session.principal if session else None,
            csrf=session.csrf if session else "",
            csrf_field=CSRF_FIELD,
            zone=self._zone.key,
            **values,
        )


def money(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


Handler = Callable[[Request, Context], Awaitable[Response]]


class Guard:
    """Wraps handlers: resolves the session and language, refuses what must be refused."""

    def __init__(
        self, sessions: SessionStore, actions: ConsoleActions, renderer: Renderer, secure: bool
    ) -> None:
        self.sessions = sessions
        self.actions = actions
        self.renderer = renderer
        self.secure_cookies = secure

    def page(
        self, handler: Handler, *, login: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            ctx = Context(None, self.language_of(request), self.renderer)
            try:
                session = await self.sessions.find(request.cookies.get(COOKIE_NAME))
                if session is not None and not await self.actions.still_allowed(session.principal):
                    await self.sessions.close(request.cookies.get(COOKIE_NAME, ""))
                    session = None
                ctx = Context(session, self.language_of(request), self.renderer)
                if login and session is None:
                    return self._to_login(request, ctx)
                if login and request.method in _CHANGE_METHODS:
                    refusal = await self._check_change(request, ctx)
                    if refusal is not None:
                        return refusal
                return await handler(request, ctx)
            except ConsoleError as exc:
                return ctx.error(exc.message, exc.status, exc.detail)
            except Exception:
                log.exception("console.internal_error", path=request.url.path)
                return ctx.error("Something went wrong; the change was not made.", 500)

        return endpoint

    @staticmethod
    def language_of(request: Request) -> str:
        """The switch's cookie, else the browser's Accept-Language."""
        return i18n.choose(
            request.cookies.get(i18n.LANGUAGE_COOKIE), request.headers.get("accept-language")
        )

    def _to_login(self, request: Request, ctx: Context) -> Response:
        if request.method != "GET" or request.url.path.endswith("/live"):
            return ctx.error("Your session has ended; please log in again.", 401)
        return RedirectResponse("/login", status_code=303)

    async def _check_change(self, request: Request, ctx: Context) -> Response | None:
        """A change needs the session's CSRF token (form field or header) and a small body."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_FORM_BYTES):
            return ctx.error("Something went wrong; the change was not made.", 413)
        submitted = request.headers.get(CSRF_HEADER)
        if submitted is None:
            submitted = (await read_form(request)).get(CSRF_FIELD)
        assert ctx.session is not None
        if not csrf_matches(ctx.session, submitted):
            log.info("console.csrf_refused", path=request.url.path)
            return ctx.error(
                "The form has expired (CSRF token missing or wrong); reload the page and try "
                "again.",
                403,
            )
        return None

    def login_cookie(self, response: Response, secret: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            secret,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
            path="/",
        )


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded form of a request, parsed once and kept on the request. A body over
    MAX_FORM_BYTES is refused (read in chunks, so an unannounced large body is cut too)."""
    cached = getattr(request.state, "console_form", None)
    if cached is not None:
        return cast(dict[str, str], cached)
    form: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise ConsoleError("Something went wrong; the change was not made.", "too large")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ConsoleError("Something went wrong; the change was not made.") from exc
        for key, value in pairs:
            form.setdefault(key, value)
    request.state.console_form = form
    return form


def text(form: Mapping[str, Any], name: str, max_length: int = 2000) -> str:
    """A form field as text ('' when absent); too long is the user's error, not a crash."""
    value = form.get(name, "")
    if not isinstance(value, str):
        raise ConsoleError(f"{name}: not text")
    if len(value) > max_length:
        raise ConsoleError(f"{name}: at most {max_length} characters")
    return value
