"""The baselines of bench/api_throughput.py: the cheapest endpoints that still do the wire work.

Two apps answer exactly what every request needs and nothing else: read the body, check the
account SID of the path, `Authorization` and `Sign` with telemeeting.wire.auth, and answer the
success envelope with a fresh request id. They touch no database, so the gap between them and
the real server is the cost of the platform itself.

* `starlette`: a Starlette route, as the real app is built;
* `asgi`: the same work as a bare ASGI callable, without Starlette (what the framework costs).

Both run on the server's own stack, one process: the uvicorn options and the event loop that
`telemeeting serve` takes from telemeeting.api.server (uvloop and httptools when installed). By
default the listening socket is made by `telemeeting.cli._listen`, the very function
`telemeeting serve` uses, and handed to `uvicorn.Server.serve(sockets=…)` as serve does, so that
socket options (such as whether accepted connections get TCP_NODELAY) are the server's.
`--bind uvicorn` lets uvicorn bind host and port itself instead.

Run as `python bench/_baseline_app.py --app starlette|asgi --port PORT [--bind serve|uvicorn]`;
the account is taken from BENCH_BASELINE_SID and BENCH_BASELINE_TOKEN.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from telemeeting.api.app import FUNC, VERSION
from telemeeting.wire.auth import parse_authorization, sign_matches, timestamp_in_window
from telemeeting.wire.endpoints import PATH_PATTERN, path
from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.request_id import RequestIdGenerator
from telemeeting.wire.status import Status

ZONE = ZoneInfo("Asia/Shanghai")
WINDOW_SECONDS = 86400.0  # the server's default (spec §3)
SID = os.environ.get("BENCH_BASELINE_SID", "")
TOKEN = os.environ.get("BENCH_BASELINE_TOKEN", "")
_request_ids = RequestIdGenerator(ZONE)
_HEADERS = {"Content-Type": CONTENT_TYPE}
_RAW_CONTENT_TYPE = CONTENT_TYPE.encode()

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def answer(sid: str, authorization: str | None, sign: str | None) -> bytes:
    """Steps 2-3 of spec §3 against one in-memory account, then the envelope (encoded)."""
    now = datetime.now(UTC)
    parsed = parse_authorization(authorization)
    if sid != SID:
        status = Status.UNKNOWN_ACCOUNT
    elif (
        parsed is None
        or parsed.account_sid != sid
        or not timestamp_in_window(parsed.timestamp, now, ZONE, WINDOW_SECONDS)
    ):
        status = Status.BAD_AUTHORIZATION
    elif not sign_matches(sign, SID, TOKEN, parsed.timestamp):
        status = Status.BAD_SIGN
    else:
        return dump(envelope(Status.OK, _request_ids.next(now)))
    return dump(envelope(status))


# ---- Starlette ----------------------------------------------------------------------------------


async def endpoint(request: Request) -> Response:
    await request.body()
    body = answer(
        request.path_params["sid"],
        request.headers.get("authorization"),
        request.query_params.get("Sign"),
    )
    return Response(body, headers=_HEADERS)


starlette_app = Starlette(
    routes=[Route(path(VERSION, "{sid}", FUNC, "{func_url}"), endpoint, methods=["POST"])]
)


# ---- bare ASGI ----------------------------------------------------------------------------------


async def asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The same answer without a framework: one regex, one header scan, two sends."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    match = PATH_PATTERN.fullmatch(scope["path"])
    ours = match is not None and (match["version"], match["func"]) == (VERSION, FUNC)
    if match is None or not ours or scope["method"] != "POST":
        body, status = dump(envelope(Status.INVALID_ACTION)), 404
    else:
        authorization = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None
        )
        query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
        body, status = answer(match["sid"], authorization, query.get("Sign")), 200
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _RAW_CONTENT_TYPE),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ---- serving ------------------------------------------------------------------------------------


def server_stack() -> tuple[dict[str, Any], Any]:
    """uvicorn's options and the event loop factory, from the code `telemeeting serve` uses
    (telemeeting.api.server); for older revisions without that module, the options serve gave
    uvicorn inline then, on the standard asyncio loop."""
    try:
        from telemeeting.api.server import loop_factory, uvicorn_options
        from telemeeting.config import ServerSettings
    except ImportError:
        options = {
            "lifespan": "on",
            "access_log": False,
            "log_level": "warning",
            "proxy_headers": False,
            "timeout_graceful_shutdown": 5,
        }
        return options, None
    settings = ServerSettings()
    return uvicorn_options(settings), loop_factory(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", choices=("starlette", "asgi"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--bind", choices=("serve", "uvicorn"), default="serve")
    args = parser.parse_args()
    if not SID or not TOKEN:
        sys.exit("BENCH_BASELINE_SID and BENCH_BASELINE_TOKEN must be set")
    app = starlette_app if args.app == "starlette" else asgi_app
    options, factory = server_stack()  # only the app differs from `telemeeting serve`
    if args.bind == "uvicorn":
        config = uvicorn.Config(app, host=args.host, port=args.port, **options)
        sockets = None
    else:
        from telemeeting.cli import _listen  # the socket exactly as `telemeeting serve` makes it

        config = uvicorn.Config(app, **options)
        sockets = [_listen(args.host, args.port)]
    loop = "uvloop" if factory is not None else "asyncio"
    print(f"{args.app} baseline: {loop} loop, http={options.get('http', 'auto')}", flush=True)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(uvicorn.Server(config).serve(sockets=sockets))


if __name__ == "__main__":
    main()
