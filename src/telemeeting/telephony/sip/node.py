"""A media node: a child process that runs one SipEngine and obeys orders from a Pipe.

The audio clock must not share an event loop (or a GIL) with HTTP and database work, so each
node is its own process. Messages are small tuples: orders in, ("report", …) events out, in the
order the engine produced them. A dial-in caller's meeting number and PIN go up as ("admit",
token, …) and the service's verdict comes down as ("admitted", token, …) (issue 15).

Cascade links (issue 16) ride the same pipe: ("cascade_open", token, <OpenCascade as JSON>) is
answered ("cascade_opened", token, host, port, codec) or ("cascade_failed", token, why);
("cascade_close", <CloseCascade as JSON>) and ("end_with_creator", meeting_id) (the creator of a
meeting that spans nodes left from another node) need no answer. A member of a linked meeting
joining or leaving goes up as ("presence", meeting_id, leg_id, joined), and the driver passes it
down, the same, to the meeting's other nodes, which beep to their members. With several
workers an answered call's dialog goes up as ("dialog", meeting_id, leg_id, fields); if its
worker dies, another gets ("release", fields) and ends the call with a BYE. They are not
`orders.Order`s: the orders table never carries them. Across servers the orders table carries
`LinkServer` steps instead (service/spans.py), and the driver turns each into these messages to
the meeting's home worker (peer "srv:<server id>").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from multiprocessing.connection import Connection
from typing import Any

import structlog

from telemeeting.telephony.dialin import Admission, AdmitRequest
from telemeeting.telephony.driver import LegReport, Report, SpeakersReport
from telemeeting.telephony.media.cascade_control import CascadeError, CloseCascade, OpenCascade
from telemeeting.telephony.orders import UnknownOrder, carry_out, from_message
from telemeeting.telephony.sip.engine import SipEngine
from telemeeting.telephony.sip.routes import RouteConfig

log = structlog.get_logger(__name__)


def report_message(report: Report) -> tuple[Any, ...]:
    if isinstance(report, SpeakersReport):
        return ("speakers", report.meeting_id, list(report.leg_ids), report.at)
    assert isinstance(report, LegReport)  # an engine reports nothing else
    reason = report.reason.name if report.reason is not None else None
    return ("report", report.meeting_id, report.leg_id, report.progress.value, report.at, reason)


#: How often a media process tells its parent how its mixer is doing (for /metrics).
STATS_SECONDS = 2.0
#: How long a dial-in caller waits for the service's verdict before hearing "unavailable".
ADMIT_SECONDS = 10.0


async def _send_stats(conn: Connection, engine: SipEngine, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        with contextlib.suppress(OSError, ValueError):
            conn.send(("stats", engine.media_stats()))


def node_main(conn: Connection, options: dict[str, Any]) -> None:
    """The child process's entry point (must be importable: the spawn start method)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, options))


async def _serve(conn: Connection, options: dict[str, Any]) -> None:
    options = dict(options)
    stats_seconds = float(options.pop("stats_seconds", STATS_SECONDS))
    report_dialogs = bool(options.pop("report_dialogs", False))
    options["routes"] = [RouteConfig(**route) for route in options.get("routes", [])]
    engine = SipEngine(**options)

    async def sink(report: Report) -> None:
        conn.send(report_message(report))

    engine.attach(sink)
    engine.on_presence = lambda meeting_id, leg_id, joined: _tell(
        conn, ("presence", meeting_id, leg_id, joined)
    )
    if report_dialogs:  # another worker can end this one's calls if it dies
        engine.on_dialog = lambda meeting_id, leg_id, fields: _tell(
            conn, ("dialog", meeting_id, leg_id, fields)
        )
    loop = asyncio.get_running_loop()
    asked: dict[int, asyncio.Future[Admission]] = {}
    tokens = itertools.count(1)

    async def admit(request: AdmitRequest) -> Admission:
        token = next(tokens)
        answer = asked[token] = loop.create_future()
        try:
            conn.send(("admit", token, request.meid, request.pin, request.caller, request.called))
            return await asyncio.wait_for(answer, ADMIT_SECONDS)
        finally:
            asked.pop(token, None)

    engine.set_admitter(admit)
    try:
        await engine.start()
    except OSError as exc:
        conn.send(("error", f"cannot bind SIP {options.get('local_port')}: {exc}"))
        return
    conn.send(("ready", engine.sip_port))
    stats = asyncio.create_task(_send_stats(conn, engine, stats_seconds), name="media-stats")

    orders: asyncio.Queue[tuple[Any, ...] | None] = asyncio.Queue()

    def readable() -> None:
        try:
            message = conn.recv()
            if message and message[0] == "admitted":
                waiting = asked.get(message[1])
                if waiting is not None and not waiting.done():
                    waiting.set_result(Admission.from_message(tuple(message[2:])))
                return
            orders.put_nowait(message)
        except (EOFError, OSError):  # the API process is gone: shut down
            loop.remove_reader(conn.fileno())
            orders.put_nowait(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        while (order := await orders.get()) is not None and order[0] != "close":
            try:
                await _obey(engine, order, conn)
            except Exception:
                log.exception("media_node.order_failed", order=order[0])
    finally:
        stats.cancel()
        with contextlib.suppress(Exception):
            loop.remove_reader(conn.fileno())
        await engine.close()
        with contextlib.suppress(OSError):
            conn.send(("closed",))


def _tell(conn: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, ValueError):  # the API process is gone: nobody to tell
        conn.send(message)


def cascade_message(order: OpenCascade | CloseCascade, token: int = 0) -> tuple[Any, ...]:
    """A cascade order as the driver sends it down the pipe."""
    body = json.dumps(vars(order))
    return (
        ("cascade_open", token, body) if isinstance(order, OpenCascade) else ("cascade_close", body)
    )


async def _cascade(engine: SipEngine, message: tuple[Any, ...], conn: Connection) -> None:
    kind = message[0]
    if kind == "end_with_creator":
        engine.end_with_creator(str(message[1]))
    elif kind == "presence":
        engine.peer_presence(str(message[1]), str(message[2]), bool(message[3]))
    elif kind == "release":
        engine.release_dialog(dict(message[1]))
    elif kind == "cascade_close":
        await engine.close_cascade(CloseCascade(**json.loads(message[1])))
    else:
        token = message[1]
        try:
            endpoint = await engine.open_cascade(OpenCascade(**json.loads(message[2])))
        except Exception as exc:  # the driver waits for an answer either way
            if not isinstance(exc, CascadeError):
                log.exception("media_node.cascade_failed")
            conn.send(("cascade_failed", token, str(exc) or type(exc).__name__))
            return
        conn.send(("cascade_opened", token, endpoint.host, endpoint.port, endpoint.codec))


_CASCADE = frozenset({"cascade_open", "cascade_close", "end_with_creator", "presence", "release"})


async def _obey(engine: SipEngine, message: tuple[Any, ...], conn: Connection) -> None:
    if message and message[0] in _CASCADE:
        await _cascade(engine, message, conn)
        return
    try:
        order = from_message(message)
    except UnknownOrder as exc:
        log.warning("media_node.unknown_order", error=str(exc))
        return
    await carry_out(engine, order)
