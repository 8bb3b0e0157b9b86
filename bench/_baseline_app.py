"""The baseline for bench/api_throughput.py: the cheapest endpoint that still does the wire work.

It runs on the same stack as `telemeeting serve` (uvicorn with the same options, Starlette, one
process) and does what no request can skip: read the body, check Authorization and Sign with
telemeeting.wire.auth, and answer the envelope with a request id. It touches no database, so the
gap between it and the real server is the cost of the platform itself (lookups, the invite
transaction, logging, the simulated carrier's follow-up writes).

Run as `python bench/_baseline_app.py PORT`; the account is taken from BENCH_BASELINE_SID and
BENCH_BASELINE_TOKEN.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from telemeeting.wire.auth import parse_authorization, sign_matches, timestamp_in_window
from telemeeting.wire.envelope import CONTENT_TYPE, dump, envelope
from telemeeting.wire.request_id import RequestIdGenerator
from telemeeting.wire.status import Status

ZONE = ZoneInfo("Asia/Shanghai")
WINDOW_SECONDS = 86400.0  # the server's default (spec §3)
SID = os.environ.get("BENCH_BASELINE_SID", "")
TOKEN = os.environ.get("BENCH_BASELINE_TOKEN", "")
_request_ids = RequestIdGenerator(ZONE)


def _respond(status: Status, request_id: str = "") -> Response:
    return Response(dump(envelope(status, request_id)), headers={"Content-Type": CONTENT_TYPE})


async def endpoint(request: Request) -> Response:
    """Steps 2-3 of spec §3 against one in-memory account, then the success envelope."""
    now = datetime.now(UTC)
    await request.body()
    sid = request.path_params["sid"]
    parsed = parse_authorization(request.headers.get("authorization"))
    if sid != SID:
        return _respond(Status.UNKNOWN_ACCOUNT)
    if parsed is None or parsed.account_sid != sid:
        return _respond(Status.BAD_AUTHORIZATION)
    if not timestamp_in_window(parsed.timestamp, now, ZONE, WINDOW_SECONDS):
        return _respond(Status.BAD_AUTHORIZATION)
    if not sign_matches(request.query_params.get("Sign"), SID, TOKEN, parsed.timestamp):
        return _respond(Status.BAD_SIGN)
    return _respond(Status.OK, _request_ids.next(now))


app = Starlette(routes=[Route("/201612/sid/{sid}/call/{func_url}", endpoint, methods=["POST"])])


def main() -> None:
    """Serve with the options `telemeeting serve` gives uvicorn, so only the app differs."""
    if not SID or not TOKEN:
        sys.exit("BENCH_BASELINE_SID and BENCH_BASELINE_TOKEN must be set")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
