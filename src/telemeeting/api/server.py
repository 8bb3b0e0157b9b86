"""How `telemeeting serve` runs the ASGI app: uvicorn on uvloop with the httptools parser.

Both are chosen by `[server] loop` and `[server] http` ("auto" takes uvloop and httptools when they
are installed, as `uvicorn[standard]` installs them, and falls back to asyncio and h11). What
`serve` runs is uvicorn's protocol subclassed for connection caps and read timeouts
(`api.connections`), under the edge and pre-authentication layers (`api.edge`, `api.preauth`).
"""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from telemeeting.config import ServerSettings
from telemeeting.network import Network

if TYPE_CHECKING:
    import uvicorn

    from telemeeting.api.admission import AdmissionControl

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(settings: ServerSettings) -> LoopFactory | None:
    """The event loop factory for `asyncio.Runner`; None is the standard asyncio loop."""
    if settings.loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if settings.loop == "uvloop":
            raise
        return None
    return uvloop.new_event_loop


def http_implementation(settings: ServerSettings) -> str:
    """uvicorn's `http` option: "httptools" or "h11" (never uvicorn's own "auto", so that what
    runs is what `[server] http` and the installed packages say)."""
    if settings.http == "auto":
        return "httptools" if importlib.util.find_spec("httptools") else "h11"
    return settings.http


def uvicorn_options(settings: ServerSettings) -> dict[str, Any]:
    """The options `telemeeting serve` gives `uvicorn.Config` besides the app."""
    return {
        "http": http_implementation(settings),
        "lifespan": "on",
        "access_log": False,
        "log_level": "warning",
        "proxy_headers": False,  # X-Forwarded-For counts only from [server] trusted_proxies
        "timeout_graceful_shutdown": 5,
        "timeout_keep_alive": settings.keepalive_seconds,
        "ws": "none",  # no route is a WebSocket: an Upgrade header is an ordinary request
    }


def api_layers(app: ASGIApp, settings: ServerSettings, trusted: list[Network]) -> ASGIApp:
    """The API app under the edge and pre-authentication layers (not the console's: its
    answers are pages, not envelopes)."""
    from telemeeting.api.app import is_api_request
    from telemeeting.api.edge import HttpEdge
    from telemeeting.api.preauth import PreAuthLimit

    limited = PreAuthLimit(
        app,
        settings.preauth_rate_per_address,
        settings.preauth_burst_per_address,
        trusted,
        is_api_request,
    )
    return HttpEdge(limited)


def http_config(
    app: ASGIApp,
    settings: ServerSettings,
    trusted: list[Network],
    admission: AdmissionControl | None = None,
) -> uvicorn.Config:
    """uvicorn's config for `serve`: `app` on the protocol with this process's connection caps
    and timeouts (on every listener), refusing what `admission` refuses before `app` runs."""
    import uvicorn

    from telemeeting.api.connections import protocol_class

    options = uvicorn_options(settings)
    options["http"] = protocol_class(settings, options["http"], trusted, admission)
    return uvicorn.Config(app, **options)


async def serve_http(config: uvicorn.Config, sockets: list[socket.socket]) -> None:
    """Serve `config` on `sockets` until a signal, accept() failures backed off and logged
    rate-limited, and uvicorn's own repeated warnings too."""
    import uvicorn

    from telemeeting.api.connections import guard_accepts
    from telemeeting.logs import limit_stdlib_repeats

    guard_accepts(asyncio.get_running_loop())
    limit_stdlib_repeats("uvicorn.error", "asyncio")
    await uvicorn.Server(config).serve(sockets=sockets)
