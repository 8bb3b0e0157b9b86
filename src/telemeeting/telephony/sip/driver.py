"""SipDriver: the `Driver` the API process uses for real calls, backed by media node processes.

Each node is a child process (node.py) with its own SIP port (local_port + index) and its own
slice of the RTP range. A meeting starts on the least busy node (its home) and its legs fill
that node up to `max_legs_per_node`; the next leg is dialled from the least loaded other node,
which is linked first to every node of the meeting (cascade links, issue 16; placement.py). Each
order goes where it acts: a leg's to the node that carries the leg, the meeting's settings and
prompts to every node of the meeting, recording to the home (which records the full mix, the
links' audio included), EndMeeting to all (closing the links). Reports come back over the node's
Pipe, in order.

A dial-in caller (issue 15) is admitted by the service through `set_admitter`; a meeting not yet
carried by the node the call came in on is extended to it (linked) before the caller joins.

Across servers (issue 16, the block at the end): a meeting another server owns is linked into
this server's worker through the orders table (service/spans.py), for a dial-in caller admitted
here or a dial the owner handed over because its workers were full.
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
from typing import Any, Protocol

import structlog

from telemeeting.domain.model import EndReason
from telemeeting.telephony.dialin import REFUSED, Admission, AdmitRequest
from telemeeting.telephony.driver import (
    DialOrder,
    DriverError,
    HomeMoved,
    LegReport,
    Progress,
    Report,
    ReportSink,
    SpeakersReport,
    combine_media_stats,
)
from telemeeting.telephony.ivr.machine import Verdict
from telemeeting.telephony.media.cascade_control import (
    CascadeEndpoint,
    CascadeError,
    CloseCascade,
    OpenCascade,
)
from telemeeting.telephony.media.room import BEEP_ON_JOIN, BEEP_ON_LEAVE
from telemeeting.telephony.orders import (
    ConfigureMeeting,
    EndMeeting,
    HangUp,
    HoldMember,
    MediaOrder,
    PlayPrompt,
    ServerLinkOrder,
    SetMuted,
    StartRecording,
    StopPrompt,
    StopRecording,
    to_message,
)
from telemeeting.telephony.sip import placement
from telemeeting.telephony.sip.node import cascade_message, node_main
from telemeeting.telephony.sip.placement import Span
from telemeeting.telephony.sip.routes import RouteConfig
from telemeeting.wire.environments import PRODUCTION

log = structlog.get_logger(__name__)

_START_SECONDS = 30.0
_CLOSE_SECONDS = 10.0
#: How long one step of opening a link may take (a node answers in milliseconds).
_CASCADE_SECONDS = 10.0


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
    alive: bool = True
    #: Cascade orders waiting for the node's answer, by token.
    opening: dict[int, asyncio.Future[CascadeEndpoint]] = field(default_factory=dict)
    #: The SIP dialogs of its answered calls (Dialog fields), for a BYE from another node if
    #: it dies (with several nodes only).
    dialogs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The node's name on its links (peer_node)."""
        return f"worker-{self.index}"


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
        max_legs_per_node: int = placement.DEFAULT_MAX_LEGS_PER_NODE,
        **engine_options: Any,
    ) -> None:
        """`settings` is config.SipSettings (or anything with its attributes); `engine_options`
        go to each node's SipEngine (ring_timeout_seconds, rtp_timeout_seconds, …)."""
        if nodes < 1:
            raise ValueError("need at least one media node")
        if max_legs_per_node < 1:
            raise ValueError("max_legs_per_node must be at least 1")
        self.max_legs_per_node = max_legs_per_node
        self._settings = settings
        self._count = nodes
        self._engine_options = engine_options
        self._nodes: list[_Node] = []
        #: Where each meeting is: its nodes (home first) and its live legs.
        self._spans: dict[str, Span] = {}
        #: One placement at a time per meeting (a dial and a dial-in may race to extend it).
        self._placing: dict[str, asyncio.Lock] = {}
        #: The meeting's settings, for each node it is extended to.
        self._configs: dict[str, ConfigureMeeting] = {}
        #: The recording running on each meeting's home (its id): the home dying moves it.
        self._recording: dict[str, str] = {}
        self._tokens = 0
        self._sink: ReportSink | None = None
        self._reports: asyncio.Queue[Report] = asyncio.Queue()
        self._delivery: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()
        #: Renders the IVR's prompts (service/dialin.py) before the nodes start.
        self._prompts = prompts
        self._admitter: NodeAdmitter | None = None
        self._admissions: set[asyncio.Task[None]] = set()
        #: Links to other servers (issue 16): see "across servers" below.
        self._server_links: ServerLinkHooks | None = None
        self._server_peers: dict[str, set[str]] = {}

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
            "dialin": [{"number": d.number, "meid": d.meid} for d in getattr(s, "dialin", ())],
            "trusted_sources": list(getattr(s, "trusted_sources", ())),
            "report_dialogs": self._count > 1,
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
        """Dial from the node placement picks for the meeting's next leg (linking it first)."""
        await self.start()
        if await self._dial_across_servers(order):
            return
        async with self._lock(order.meeting_id):
            span = self._span(order.meeting_id)
            try:
                node = self._nodes[self._choose(span)]
            except MediaNodeError:  # every media process has died: the call cannot be made
                log.error("sip_driver.no_node", meeting_id=order.meeting_id)
                self._report_failed(order.meeting_id, order.leg_id)
                return
            try:
                await self._extend(order.meeting_id, span, node)
            except MediaNodeError:
                log.exception("sip_driver.extend_failed", meeting_id=order.meeting_id)
                node = self._nodes[span.nodes[0]]  # still heard by the home's members
            span.add_leg(order.leg_id, node.index)
            node.legs[order.leg_id] = order.meeting_id
            self._send(node, to_message(order))

    async def media(self, order: MediaOrder) -> None:
        """In-call media: a member's to the node that carries the member, recording to the
        meeting's home, settings and prompts to every node of the meeting."""
        await self.start()
        meeting_id = order.meeting_id
        async with self._lock(meeting_id):
            span = self._span(meeting_id)
            if not span.nodes:  # before the first leg (createMeeting's settings, recording)
                try:
                    home = self._nodes[self._choose(span)]
                except MediaNodeError:
                    log.error("sip_driver.no_node", meeting_id=meeting_id)
                    return
                await self._extend(meeting_id, span, home)
        if isinstance(order, ConfigureMeeting):
            self._configs[meeting_id] = order
        elif isinstance(order, StartRecording):
            self._recording[meeting_id] = order.recording_id
        elif (
            isinstance(order, StopRecording)
            and self._recording.get(meeting_id) == order.recording_id
        ):
            del self._recording[meeting_id]
        leg_id = order.leg_id if isinstance(order, HoldMember | PlayPrompt | StopPrompt) else ""
        if isinstance(order, StartRecording | StopRecording):
            targets = span.nodes[:1]
        elif leg_id and leg_id in span.legs:
            targets = [span.legs[leg_id]]
        else:
            targets = list(span.nodes)
        for index in targets:
            self._send(self._nodes[index], to_message(order))

    def _lock(self, meeting_id: str) -> asyncio.Lock:
        lock = self._placing.get(meeting_id)
        if lock is None:
            lock = self._placing[meeting_id] = asyncio.Lock()
        return lock

    def _span(self, meeting_id: str) -> Span:
        span = self._spans.get(meeting_id)
        if span is None:
            span = self._spans[meeting_id] = Span()
        return span

    def _choose(self, span: Span) -> int:
        alive = [node.index for node in self._nodes if node.alive]
        if not alive:
            raise MediaNodeError("no media node is alive")
        load = {node.index: len(node.legs) for node in self._nodes}
        return placement.choose(span.nodes, span.per_node, load, alive, self.max_legs_per_node)

    async def _extend(self, meeting_id: str, span: Span, node: _Node) -> None:
        """`node` carries the meeting from now on: linked to each node that already does, and
        given the meeting's settings."""
        if node.index in span.nodes:
            return
        for index in list(span.nodes):
            await self._link(meeting_id, self._nodes[index], node)
        span.nodes.append(node.index)
        node.meetings.add(meeting_id)
        if (config := self._configs.get(meeting_id)) is not None:
            self._send(node, to_message(config))
        if len(span.nodes) > 1:
            log.info("sip_driver.meeting_extended", meeting_id=meeting_id, nodes=span.nodes)

    async def _link(self, meeting_id: str, a: _Node, b: _Node) -> None:
        """Open the link of a meeting between two nodes, in the two steps cascade_control.py
        describes (each end learns the other's port)."""
        mine = await self._open(a, OpenCascade(meeting_id, b.name, PRODUCTION))
        theirs = await self._open(
            b, OpenCascade(meeting_id, a.name, PRODUCTION, mine.host, mine.port)
        )
        await self._open(a, OpenCascade(meeting_id, b.name, PRODUCTION, theirs.host, theirs.port))

    async def _open(self, node: _Node, order: OpenCascade) -> CascadeEndpoint:
        if not node.alive:
            raise MediaNodeError(f"media node {node.index} is gone")
        self._tokens += 1
        token = self._tokens
        answer = node.opening[token] = asyncio.get_running_loop().create_future()
        try:
            self._send(node, cascade_message(order, token))
            return await asyncio.wait_for(answer, _CASCADE_SECONDS)
        except (CascadeError, TimeoutError) as exc:
            raise MediaNodeError(f"media node {node.index}: {exc}") from exc
        finally:
            node.opening.pop(token, None)

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        span = self._spans.get(meeting_id)
        if span is None:
            return
        index = span.legs.get(leg_id, span.home)
        if index is None:
            return
        node = self._nodes[index]
        node.legs.pop(leg_id, None)
        node.dialogs.pop(leg_id, None)
        self._send(node, to_message(HangUp(meeting_id, leg_id, PRODUCTION)))
        span.end_leg(leg_id)
        if span.empty:
            self._finish(meeting_id)

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        span = self._spans.get(meeting_id)
        index = span.legs.get(leg_id, span.home) if span is not None else None
        if index is not None:
            self._send(
                self._nodes[index], to_message(SetMuted(meeting_id, leg_id, muted, PRODUCTION))
            )

    async def end_meeting(self, meeting_id: str) -> None:
        self._end_everywhere(meeting_id)

    def _end_everywhere(self, meeting_id: str) -> None:
        """EndMeeting to every node of the meeting (its links closed, its recording finished)."""
        span = self._spans.pop(meeting_id, None)
        self._server_ended(meeting_id)
        self._configs.pop(meeting_id, None)
        self._recording.pop(meeting_id, None)
        self._placing.pop(meeting_id, None)
        if span is None:
            return
        for index in span.nodes:
            node = self._nodes[index]
            node.meetings.discard(meeting_id)
            node.legs = {leg: m for leg, m in node.legs.items() if m != meeting_id}
            node.dialogs = {leg: d for leg, d in node.dialogs.items() if leg in node.legs}
            self._send(node, to_message(EndMeeting(meeting_id, PRODUCTION)))

    def _finish(self, meeting_id: str) -> None:
        """The meeting's last leg anywhere is over. A meeting on one node has ended there by
        itself (the EndMeeting changes nothing); a linked one is kept by its nodes until now.
        The home of a meeting other servers are linked to keeps it until they leave."""
        if self._server_peers.get(meeting_id):
            return
        self._end_everywhere(meeting_id)

    def nodes_of(self, meeting_id: str) -> list[int]:
        """The nodes that carry a meeting, home first (introspection for tests and health)."""
        span = self._spans.get(meeting_id)
        return list(span.nodes) if span is not None else []

    def node_of_leg(self, meeting_id: str, leg_id: str) -> int | None:
        span = self._spans.get(meeting_id)
        return span.legs.get(leg_id) if span is not None else None

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
        self._spans = {}
        self._configs = {}
        self._recording = {}
        self._placing = {}

    @property
    def alive_nodes(self) -> list[int]:
        """The indexes of the media processes still running (as far as the driver knows)."""
        return [node.index for node in self._nodes if node.alive]

    def node_stats(self) -> list[dict[str, float]]:
        """Each media process's last figures (legs, cascade_links, …), by node index; {} for
        a process that has died (its last figures no longer describe anything)."""
        return [dict(node.stats) for node in self._nodes]

    def media_stats(self) -> dict[str, float]:
        """The live media processes' mixer figures as they last reported them, combined, and
        how many have died (`workers_down`, for /metrics)."""
        down = sum(1 for node in self._nodes if not node.alive)
        return combine_media_stats([*(node.stats for node in self._nodes), {"workers_down": down}])

    # plumbing -----------------------------------------------------------------------------
    def _send(self, node: _Node, message: tuple[Any, ...]) -> None:
        if not node.alive:
            return
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
            report = LegReport(
                meeting_id, leg_id, Progress(progress), at, EndReason[reason] if reason else None
            )
            self._reports.put_nowait(report)
            self._on_report(node, report)
        elif kind == "speakers":
            _, meeting_id, leg_ids, at = message
            self._on_speakers(node, meeting_id, tuple(leg_ids), at)
        elif kind == "presence":
            _, meeting_id, leg_id, joined = message
            self._tell_presence(node.index, meeting_id, leg_id, joined)
        elif kind == "dialog":
            _, _, leg_id, fields = message
            if leg_id in node.legs:  # not ended meanwhile
                node.dialogs[leg_id] = fields
        elif kind in ("cascade_opened", "cascade_failed"):
            waiting = node.opening.get(message[1])
            if waiting is not None and not waiting.done():
                if kind == "cascade_opened":
                    _, _, host, port, codec = message
                    waiting.set_result(CascadeEndpoint("", "", host, port, codec))
                else:
                    waiting.set_exception(CascadeError(message[2]))
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

    def _on_report(self, node: _Node, report: LegReport) -> None:
        """Keep the meeting's placement up to date with what its legs do."""
        span = self._spans.get(report.meeting_id)
        if report.progress is Progress.ANSWERED and span is not None:
            span.joined = True
            span.answered.add(report.leg_id)
        if report.progress is not Progress.ENDED:
            return
        node.legs.pop(report.leg_id, None)
        node.dialogs.pop(report.leg_id, None)
        if span is None:
            return
        self._stopped_talking(node, span, report)
        was_answered = report.leg_id in span.answered
        if span.end_leg(report.leg_id) is None:
            return
        config = self._configs.get(report.meeting_id)
        if (
            was_answered
            and config is not None
            and config.end_on_creator_leave
            and config.creator_leg == report.leg_id
        ):
            # The creator's own node ended its legs (engine); the other nodes end theirs.
            for index in span.nodes:
                if index != node.index:
                    self._send(self._nodes[index], ("end_with_creator", report.meeting_id))
        if span.empty:
            self._finish(report.meeting_id)

    def _report_failed(self, meeting_id: str, leg_id: str, at: float | None = None) -> None:
        """The leg is over, failed (呼叫失败): its call could not be made or kept here."""
        when = time.time() if at is None else at
        report = LegReport(meeting_id, leg_id, Progress.ENDED, when, EndReason.FAILED)
        self._reports.put_nowait(report)

    def _tell_presence(
        self, source: int, meeting_id: str, leg_id: str, joined: bool, *, across: bool = True
    ) -> None:
        """A member joined or left on node `source`: the meeting's other nodes beep to their
        own members (the links carry voices only; each node knows the meeting's `beep`), and,
        `across`, so do the other servers of a meeting that spans servers."""
        span = self._spans.get(meeting_id)
        for index in span.nodes if span is not None else ():
            if index != source:
                self._send(self._nodes[index], ("presence", meeting_id, leg_id, joined))
        if across and self._server_links is not None:
            config = self._configs.get(meeting_id)
            wanted = BEEP_ON_JOIN if joined else BEEP_ON_LEAVE
            if config is not None and config.beep & wanted:
                home = bool(self._server_peers.get(meeting_id))
                self._server_links.presence(meeting_id, leg_id, joined, home=home)

    def _on_speakers(
        self, node: _Node, meeting_id: str, leg_ids: tuple[str, ...], at: float
    ) -> None:
        """Each node detects its own members' talking; a meeting on several nodes reports them
        all (the union of the last set each node sent, kept from the first: the home's
        talkers from before the meeting spread are still talking after it)."""
        span = self._spans.get(meeting_id)
        if span is not None:
            span.talkers[node.index] = leg_ids
            if len(span.nodes) > 1:
                leg_ids = tuple(leg for i in span.nodes for leg in span.talkers.get(i, ()))
        self._reports.put_nowait(SpeakersReport(meeting_id, leg_ids, at))

    def _stopped_talking(self, node: _Node, span: Span, report: LegReport) -> None:
        """A talker's leg ended: report the meeting's talkers without it now. Its worker's
        detector would, but not once the worker's room closed with its last member (a meeting
        kept here for its links to other servers or workers reports nothing more)."""
        talkers = span.talkers.get(node.index, ())
        if report.leg_id in talkers:
            left = tuple(leg for leg in talkers if leg != report.leg_id)
            self._on_speakers(node, report.meeting_id, left, report.at)

    # dial-in --------------------------------------------------------------------------------
    def set_admitter(self, admitter: NodeAdmitter) -> None:
        self._admitter = admitter

    async def _admit(self, node: _Node, token: int, request: AdmitRequest) -> None:
        def here(meeting_id: str) -> bool:
            # Within one server any node can carry any meeting: one not yet here is extended
            # to this node (linked) once the caller is admitted.
            return node.alive

        admission = REFUSED
        try:
            if self._admitter is not None:
                admission = await self._admitter(request, here)
        except Exception:
            log.exception("sip_driver.admit_failed")
        if admission.verdict is Verdict.ADMITTED:
            meeting_id, leg_id = admission.meeting_id, admission.leg_id
            async with self._lock(meeting_id):
                span = self._span(meeting_id)
                try:
                    await self._extend(meeting_id, span, node)
                except MediaNodeError:
                    log.exception("sip_driver.extend_failed", meeting_id=meeting_id)
                    # The service has the caller as a leg already: end it, refuse the call.
                    self._report_failed(meeting_id, leg_id)
                    admission = REFUSED
                else:
                    span.add_leg(leg_id, node.index)
                    node.legs[leg_id] = meeting_id
            if admission.verdict is Verdict.ADMITTED and not await self._join_servers(node, leg_id):
                admission = REFUSED
        self._send(node, ("admitted", token, *admission.message()))

    def _on_node_gone(self, node: _Node) -> None:
        self._forget(node)
        node.alive = False
        node.stats = {}  # its mixer is gone: its last figures must not stay in /metrics
        if node.ready is not None and not node.ready.done():
            node.ready.set_exception(MediaNodeError(f"media node {node.index} exited"))
        if node.closed is not None and not node.closed.done():
            node.closed.set_result(None)
        for waiting in node.opening.values():
            if not waiting.done():
                waiting.set_exception(CascadeError(f"media node {node.index} exited"))
        now = time.time()
        self._release_calls(node)
        if node.legs:  # it died with calls up: they are over, say so
            log.error("sip_driver.node_died", node=node.index, legs=len(node.legs))
            for leg_id, meeting_id in node.legs.items():
                self._report_failed(meeting_id, leg_id, now)
            node.legs.clear()
        # The meetings it carried go on without it: the survivors close their links to it.
        for meeting_id, span in list(self._spans.items()):
            if node.index not in span.nodes:
                continue
            heard = [leg for leg in span.answered if span.legs.get(leg) == node.index]
            was_home = span.home == node.index
            span.drop_node(node.index)
            node.meetings.discard(meeting_id)
            for index in span.nodes:
                close = CloseCascade(meeting_id, node.name, PRODUCTION)
                self._send(self._nodes[index], cascade_message(close))
            for leg_id in heard:  # its members left: the others hear it, as for a hang-up
                self._tell_presence(node.index, meeting_id, leg_id, False)
            if span.empty or not span.nodes:
                self._finish(meeting_id)
            elif was_home and meeting_id in self._recording:
                # The recording died with it: the service starts a new segment on the new home
                # (after the lost calls above, whose CDRs link to the segment that heard them).
                log.warning("sip_driver.home_moved", meeting_id=meeting_id, home=span.home)
                self._reports.put_nowait(HomeMoved(meeting_id, now))

    def _release_calls(self, node: _Node) -> None:
        """The answered calls of a dead node: a live node sends each a BYE from the dialog the
        dead one reported, so the phones are released too, not only the legs."""
        dialogs, node.dialogs = node.dialogs, {}
        alive = [other for other in self._nodes if other.alive]
        if not alive:
            return
        for fields in dialogs.values():
            self._send(alive[0], ("release", fields))

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

    # ---- across servers (issue 16) -----------------------------------------------------------
    # A meeting another server owns is linked into this one through the store
    # (service/spans.py): the meeting's home worker here carries the link's end, named
    # "srv:<server id>" among its cascade links. A member's join or leave here is told to the
    # meeting's other servers (ServerLinks.presence, when the meeting's `beep` wants it) and
    # theirs to this server's workers (`peer_presence`); the link reply gives a joining server
    # the home's settings (`meeting_settings`). The home keeps a meeting whose local legs have
    # all left while other servers are linked to it; the other side ends its part with its last
    # leg, as for any meeting.
    def set_server_links(self, links: ServerLinkHooks) -> None:
        self._server_links = links

    async def link(self, order: ServerLinkOrder) -> None:
        """A link order (`LinkServer`, `UnlinkServer`, `RelinkServer`, `ServerPresence`)
        claimed by this server (orders.carry_out)."""
        if self._server_links is None:
            log.warning("sip_driver.server_link_ignored", meeting_id=order.meeting_id)
            return
        await self.start()
        await self._server_links.on_order(order)

    async def open_server_end(
        self, meeting_id: str, server: str, host: str = "", port: int = 0, *, home: bool
    ) -> CascadeEndpoint:
        """Open (without `port`: reserve) the meeting's end of its link to `server` on the
        meeting's home worker here; `home`: this server is the meeting's home, which keeps the
        meeting while the link is up. Raises MediaNodeError."""
        await self.start()
        async with self._lock(meeting_id):
            span = self._span(meeting_id)
            if not span.nodes:
                await self._extend(meeting_id, span, self._nodes[self._choose(span)])
            order = OpenCascade(meeting_id, server_peer(server), PRODUCTION, host, port)
            endpoint = await self._open(self._nodes[span.nodes[0]], order)
            if home:
                self._server_peers.setdefault(meeting_id, set()).add(server)
            return endpoint

    def meeting_settings(self, meeting_id: str) -> ConfigureMeeting | None:
        """The meeting's in-call settings as its workers here run them (for a server that
        links to this home later)."""
        return self._configs.get(meeting_id)

    def peer_presence(self, meeting_id: str, leg_id: str, joined: bool) -> None:
        """A member joined or left on another server: this server's workers of the meeting
        beep to their members."""
        self._tell_presence(-1, meeting_id, leg_id, joined, across=False)

    def close_server_end(self, meeting_id: str, server: str) -> None:
        """Close the meeting's link to `server`; a home left with neither local legs nor linked
        servers ends the meeting here."""
        peers = self._server_peers.get(meeting_id)
        if peers is not None:
            peers.discard(server)
            if not peers:
                del self._server_peers[meeting_id]
        span = self._spans.get(meeting_id)
        if span is None or not span.nodes:
            return
        close = CloseCascade(meeting_id, server_peer(server), PRODUCTION)
        self._send(self._nodes[span.nodes[0]], cascade_message(close))
        if span.empty and not self._server_peers.get(meeting_id):
            self._finish(meeting_id)

    async def _dial_across_servers(self, order: DialOrder) -> bool:
        """A dial the home handed over is linked to the home first; a dial of a meeting full on
        every worker here is handed to another server. True: nothing more to do here (handed
        over, or reported failed)."""
        links = self._server_links
        if links is None:
            return False
        if order.home:
            try:
                await links.join(order.meeting_id)
                return False
            except Exception as exc:
                meeting_id = order.meeting_id
                log.warning("sip_driver.server_link_failed", meeting_id=meeting_id, error=str(exc))
                self._report_failed(meeting_id, order.leg_id)
                return True
        span = self._spans.get(order.meeting_id)
        if span is None or not full_everywhere(span, self.alive_nodes, self.max_legs_per_node):
            return False
        try:
            return await links.overflow(order)
        except Exception:
            log.exception("sip_driver.overflow_failed", meeting_id=order.meeting_id)
            return False

    async def _join_servers(self, node: _Node, leg_id: str) -> bool:
        """After a dial-in caller's admission: link the meeting to its home server if another
        server owns it. False (the leg reported ended, the caller refused) when that fails."""
        meeting_id = node.legs.get(leg_id)
        if self._server_links is None or meeting_id is None:
            return True
        try:
            await self._server_links.join(meeting_id)
            return True
        except Exception as exc:
            log.warning("sip_driver.server_link_failed", meeting_id=meeting_id, error=str(exc))
        node.legs.pop(leg_id, None)
        self._report_failed(meeting_id, leg_id)
        span = self._spans.get(meeting_id)
        if span is not None and span.end_leg(leg_id) is not None and span.empty:
            self._finish(meeting_id)
        return False

    def _server_ended(self, meeting_id: str) -> None:
        """The meeting ended here (its links are closed with it)."""
        self._server_peers.pop(meeting_id, None)
        if self._server_links is not None:
            self._server_links.ended_here(meeting_id)


def full_everywhere(span: Span, alive: list[int], limit: int) -> bool:
    """Every live worker here carries the meeting and has `limit` of its legs: the next leg
    goes to another server (issue 16) rather than over the limit here."""
    return bool(alive) and all(
        index in span.nodes and span.per_node.get(index, 0) >= limit for index in alive
    )


def server_peer(server: str) -> str:
    """A server's name among a worker's cascade links (worker links are "worker-<n>")."""
    return f"srv:{server}"


class ServerLinkHooks(Protocol):
    """service/spans.py's ServerLinks, as the driver calls it."""

    async def join(self, meeting_id: str) -> None: ...

    def ended_here(self, meeting_id: str) -> None: ...

    async def on_order(self, order: ServerLinkOrder) -> None: ...

    async def overflow(self, order: DialOrder) -> bool: ...

    def presence(self, meeting_id: str, leg_id: str, joined: bool, *, home: bool) -> None: ...
