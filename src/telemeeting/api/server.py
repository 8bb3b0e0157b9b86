"""How `telemeeting serve` runs the ASGI app: uvicorn on uvloop with the httptools parser.

Both are chosen by `[server] loop` and `[server] http` ("auto" takes uvloop and httptools when they
are installed, as `uvicorn[standard]` installs them, and falls back to asyncio and h11).
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Any

from telemeeting.config import ServerSettings

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
    }
