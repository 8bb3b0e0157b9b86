"""SipDriver: the `Driver` the API process uses for real calls, backed by media node processes.

Each node is a child process (node.py) with its own SIP port (local_port + index) and its own
slice of the RTP range. A meeting is placed whole on the least busy node and stays there, so its
N-1 mix never crosses processes. Reports come back over the node's Pipe, in order.

A dial-in caller (issue 15) is admitted by the service through `set_admitter`; the meeting is
then placed on the node the call came in on, unless another node mixes it already (refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.dialin import REFUSED, Admission, AdmitRequest
from telemeeting.telephony.driver import (
    DialOrder,
    DriverError,
    LegReport,
    Progress,
    Report,
    ReportSink,
    SpeakersReport,
    combine_media_stats,
)
from telemeeting.telephony.ivr.machine import Verdict
from telemeeting.telephony.orders import EndMeeting, HangUp, MediaOrder, SetMuted, to_message
from telemeeting.telephony.sip.node import node_main
from telemeeting.telephony.sip.routes import RouteConfig
from telemeeting.wire.environments import PRODUCTION

log = structlog.get_logger(__name__)

_START_SECONDS = 30.0
_CLOSE_SECONDS = 10.0


class MediaNodeError(DriverError):
    """A media node could not start or has died."""


@dataclass(eq=False)
class _Node:
    index: int
    process: BaseProcess
    conn: Connection
    sip_port: int = 0
    meetings: set[str] = field(default_factory=set)
    legs: dict[str, str] = field(default_factory=dict)  # live leg → meeting, for a node's death
    ready: asyncio.Future[int] | None = None
    closed: asyncio.Future[None] | None = None
    #: The last mixer figures the process sent (SipEngine.media_stats).
    stats: dict[str, float] = field(default_factory=dict)


#: The service's admission of a dial-in caller; the check says whether a meeting may be mixed
#: on the node the call is on (and claims it there).
NodeAdmitter = Callable[[AdmitRequest, Callable[[str], bool]], Awaitable[Admission]]


class SipDriver:
    def __init__(
        self,
        settings: Any,
        *,
        nodes: int = 1,
        prompts: Callable[[], Awaitable[dict[str, str]]] | None = None,
        **engine_options: Any,
    ) -> None:
        """`settings` is config.SipSettings (or anything with its attributes); `engine_options`
        go to each node's SipEngine (ring_timeout_seconds, rtp_timeout_seconds, …)."""
        if nodes < 1:
            raise ValueError("need at least one media node")
        self._settings = settings
        self._count = nodes
        self._engine_options = engine_options
        self._nodes: list[_Node] = []
        self._owner: dict[str, _Node] = {}
        self._sink: ReportSink | None = None
        self._reports: asyncio.Queue[Report] = asyncio.Queue()
        self._delivery: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        #: Renders the IVR's prompts (service/dialin.py) before the nodes start.
        self._prompts = prompts
        self._admitter: NodeAdmitter | None = None
        self._admissions: set[asyncio.Task[None]] = set()

    def _options_for(self, index: int) -> dict[str, Any]:
        s = self._settings
        span = (s.rtp_port_max - s.rtp_port_min + 1) // self._count
        low = s.rtp_port_min + index * span
        return {
            "local_host": s.local_host,
            "local_port": s.local_port + index if s.local_port else 0,
            "rtp_port_min": low,
            "rtp_port_max": low + span - 1,
            "routes": [vars(RouteConfig.of(r)) for r in s.routes],
            "dialin": [
                {"number": d.number, "meid": d.meid} for d in getattr(s, "dialin", ())
            ],
            "trusted_sources": list(getattr(s, "trusted_sources", ())),
            **self._engine_options,
        }

    @property
    def sip_ports(self) -> list[int]:
        return [node.sip_port for node in self._nodes]

    @property
    def node_pids(self) -> list[int | None]:
        return [node.process.pid for node in self._nodes]

    async def start(self) -> None:
        async with self._start_lock:
            if self._nodes:
                return
            if self._prompts is not None:
                self._engine_options["ivr_prompts"] = await self._prompts()
            context = multiprocessing.get_context("spawn")  # no forking a running event loop
            loop = asyncio.get_running_loop()
            for index in range(self._count):
                parent, child = context.Pipe()
                process = context.Process(
                    target=node_main,
                    args=(child, self._options_for(index)),
                    name=f"telemeeting-media-{index}",
                    daemon=True,
                )
                process.start()
                child.close()
                node = _Node(index, process, parent, ready=loop.create_future())
                node.closed = loop.create_future()
                loop.add_reader(parent.fileno(), self._on_readable, node)
                self._nodes.append(node)
            self._delivery = asyncio.create_task(self._deliver(), name="sip-driver-reports")
            for node in self._nodes:
                assert node.ready is not None
                node.sip_port = await asyncio.wait_for(node.ready, _START_SECONDS)
            log.info("sip_driver.started", nodes=self._count, sip_ports=self.sip_ports)

    # Driver -------------------------------------------------------------------------------
    def attach(self, sink: ReportSink) -> None:
        self._sink = sink

    async def dial(self, order: DialOrder) -> None:
        node = await self._node_for(order.meeting_id)
        node.legs[order.leg_id] = order.meeting_id
        self._send(node, to_message(order))

    async def media(self, order: MediaOrder) -> None:
        """In-call media (settings, recording): to the node that mixes the meeting."""
        node = await self._node_for(order.meeting_id)
        self._send(node, to_message(order))

    async def _node_for(self, meeting_id: str) -> _Node:
        """The meeting's node; a new meeting goes to the least busy one."""
        await self.start()
        node = self._owner.get(meeting_id)
        if node is None:
            node = min(self._nodes, key=lambda n: len(n.meetings))
            self._owner[meeting_id] = node
            node.meetings.add(meeting_id)
        return node

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        if node := self._owner.get(meeting_id):
            node.legs.pop(leg_id, None)
            self._send(node, to_message(HangUp(meeting_id, leg_id, PRODUCTION)))

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        if node := self._owner.get(meeting_id):
            self._send(node, to_message(SetMuted(meeting_id, leg_id, muted, PRODUCTION)))

    async def end_meeting(self, meeting_id: str) -> None:
        if node := self._owner.pop(meeting_id, None):
            node.meetings.discard(meeting_id)
            node.legs = {leg: m for leg, m in node.legs.items() if m != meeting_id}
            self._send(node, to_message(EndMeeting(meeting_id, PRODUCTION)))

    async def close(self) -> None:
        for node in self._nodes:
            node.legs.clear()  # hung up by the node as it closes; no reports after close
            self._send(node, ("close",))
        for node in self._nodes:
            if node.closed is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(node.closed), _CLOSE_SECONDS)
            await asyncio.to_thread(node.process.join, 2.0)
            if node.process.is_alive():
                node.process.kill()
            self._forget(node)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._reports.join(), 2.0)
        if self._delivery is not None:
            self._delivery.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery
        self._nodes = []
        self._owner = {}

    def media_stats(self) -> dict[str, float]:
        """The media processes' mixer figures as they last reported them, combined."""
        return combine_media_stats(node.stats for node in self._nodes)

    # plumbing -----------------------------------------------------------------------------
    def _send(self, node: _Node, message: tuple[Any, ...]) -> None:
        try:
            node.conn.send(message)
        except (OSError, ValueError) as exc:
            log.error("sip_driver.node_unreachable", node=node.index, error=str(exc))

    def _on_readable(self, node: _Node) -> None:
        try:
            message = node.conn.recv()
        except (EOFError, OSError):
            self._on_node_gone(node)
            return
        kind = message[0]
        if kind == "report":
            _, meeting_id, leg_id, progress, at, reason = message
            if progress == Progress.ENDED.value:
                node.legs.pop(leg_id, None)
            self._reports.put_nowait(
                LegReport(
                    meeting_id,
                    leg_id,
                    Progress(progress),
                    at,
                    EndReason[reason] if reason else None,
                )
            )
        elif kind == "speakers":
            _, meeting_id, leg_ids, at = message
            self._reports.put_nowait(SpeakersReport(meeting_id, tuple(leg_ids), at))
        elif kind == "ready" and node.ready is not None and not node.ready.done():
            node.ready.set_result(message[1])
        elif kind == "error" and node.ready is not None and not node.ready.done():
            node.ready.set_exception(MediaNodeError(message[1]))
        elif kind == "closed" and node.closed is not None and not node.closed.done():
            node.closed.set_result(None)
        elif kind == "stats":
            node.stats = dict(message[1])
        elif kind == "admit":
            _, token, meid, pin, caller, called = message
            task = asyncio.create_task(
                self._admit(node, token, AdmitRequest(meid, pin, caller, called)),
                name="sip-driver-admit",
            )
            self._admissions.add(task)
            task.add_done_callback(self._admissions.discard)

    # dial-in --------------------------------------------------------------------------------
    def set_admitter(self, admitter: NodeAdmitter) -> None:
        self._admitter = admitter

    async def _admit(self, node: _Node, token: int, request: AdmitRequest) -> None:
        def here(meeting_id: str) -> bool:
            owner = self._owner.setdefault(meeting_id, node)
            if owner is node:
                node.meetings.add(meeting_id)
            return owner is node

        admission = REFUSED
        try:
            if self._admitter is not None:
                admission = await self._admitter(request, here)
        except Exception:
            log.exception("sip_driver.admit_failed")
        if admission.verdict is Verdict.ADMITTED:
            node.legs[admission.leg_id] = admission.meeting_id
        self._send(node, ("admitted", token, *admission.message()))

    def _on_node_gone(self, node: _Node) -> None:
        self._forget(node)
        if node.ready is not None and not node.ready.done():
            node.ready.set_exception(MediaNodeError(f"media node {node.index} exited"))
        if node.closed is not None and not node.closed.done():
            node.closed.set_result(None)
        if node.legs:  # it died with calls up: they are over, say so
            log.error("sip_driver.node_died", node=node.index, legs=len(node.legs))
            now = time.time()
            for leg_id, meeting_id in node.legs.items():
                self._reports.put_nowait(
                    LegReport(meeting_id, leg_id, Progress.ENDED, now, EndReason.FAILED)
                )
            node.legs.clear()

    def _forget(self, node: _Node) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(node.conn.fileno())
        with contextlib.suppress(Exception):
            node.conn.close()

    async def _deliver(self) -> None:
        while True:
            report = await self._reports.get()
            try:
                if self._sink is not None:
                    await self._sink(report)
            except Exception:
                log.exception("sip_driver.report_failed", meeting_id=report.meeting_id)
            finally:
                self._reports.task_done()
