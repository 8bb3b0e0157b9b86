"""Opening and closing a media node's cascade links: the interface placement drives.

A link joins one meeting on two nodes. Neither node can pick the other's port, so opening takes
two steps, each an `OpenCascade` to one node:

1. `OpenCascade(meeting, peer_node="B")` to node A binds a port on A and answers with A's
   `CascadeEndpoint` (host, port). Nothing is sent or accepted yet.
2. `OpenCascade(meeting, peer_node="A", peer_host=A.host, peer_port=A.port)` to node B binds
   B's port and starts B sending to A; B answers with its endpoint.
3. `OpenCascade(meeting, peer_node="B", peer_host=B.host, peer_port=B.port)` to node A again
   points A's end at B: audio flows both ways.

Orders are idempotent (the same order twice changes nothing) and shaped like the orders of
telephony/orders.py (frozen dataclasses of plain fields with `meeting_id` and `env`). Within one
server SipDriver sends them over the node pipe and the endpoint comes back as its answer
(telephony/sip/node.py); across servers the two ends are exchanged through the orders table
as `LinkServer` orders (service/spans.py), and each server's driver turns them into these.
`CloseCascade` (or the meeting's end) frees the port.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from telemeeting.telephony.media.cascade import L16, PAYLOAD_TYPES, CascadeStream
from telemeeting.telephony.media.conference import Conference
from telemeeting.telephony.media.ports import PortPool

#: A node's name as placement knows it (the store's node ids fit).
_NODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


class CascadeError(ValueError):
    """An order that cannot be carried out as given (the message says which field and why)."""


@dataclass(frozen=True)
class OpenCascade:
    """Carry `meeting_id`'s audio to and from node `peer_node` (see the module's steps).
    Without `peer_host`/`peer_port` it only reserves this node's end."""

    meeting_id: str
    peer_node: str
    env: str
    peer_host: str = ""
    peer_port: int = 0
    #: "L16" (default) or "PCMU"; both ends must agree.
    codec: str = L16


@dataclass(frozen=True)
class CloseCascade:
    meeting_id: str
    peer_node: str
    env: str


@dataclass(frozen=True)
class CascadeEndpoint:
    """This node's end of a link, for the peer's `OpenCascade`."""

    meeting_id: str
    peer_node: str
    host: str
    port: int
    codec: str


def validate(order: OpenCascade) -> None:
    """Every field checked at once, so a bad order fails whole with a clear message."""
    problems = []
    if not order.meeting_id or not order.meeting_id.isprintable():
        problems.append(f"meeting_id {order.meeting_id!r} is empty or has control characters")
    if not _NODE.fullmatch(order.peer_node):
        problems.append(f"peer_node {order.peer_node!r} is not a node name ({_NODE.pattern})")
    if order.codec not in PAYLOAD_TYPES:
        problems.append(f"codec {order.codec!r} is not one of {sorted(PAYLOAD_TYPES)}")
    if order.peer_host or order.peer_port:
        try:
            ipaddress.ip_address(order.peer_host)
        except ValueError:
            problems.append(f"peer_host {order.peer_host!r} is not an IP address")
        if (
            isinstance(order.peer_port, bool)
            or not isinstance(order.peer_port, int)
            or not (0 < order.peer_port < 65536)
        ):
            problems.append(f"peer_port {order.peer_port!r} is not a port (1-65535)")
    if problems:
        raise CascadeError("; ".join(problems))


@dataclass(eq=False)
class _Link:
    stream: CascadeStream
    port: int


class CascadeLinks:
    """The links of one media node: their ports come from the node's RTP pool, their streams
    are read and written by the node's conference tick."""

    def __init__(self, conference: Conference, ports: PortPool, host: str) -> None:
        self.conference = conference
        self._ports = ports
        self.host = host
        self._links: dict[tuple[str, str], _Link] = {}

    async def open(self, order: OpenCascade) -> CascadeEndpoint:
        validate(order)
        key = (order.meeting_id, order.peer_node)
        link = self._links.get(key)
        if link is not None and link.stream.codec != order.codec:
            raise CascadeError(
                f"the link of {order.meeting_id} to {order.peer_node} is {link.stream.codec},"
                f" not {order.codec}: close it first"
            )
        peer_host = self._peer_address(order.peer_host) if order.peer_port else ""
        if link is None:
            codec = order.codec
            _, stream, port = await self._ports.bind(self.host, lambda: CascadeStream(codec))
            link = self._links[key] = _Link(stream, port)
            self.conference.link(order.meeting_id, order.peer_node, stream)
        if order.peer_port:
            link.stream.remote = (peer_host, order.peer_port)
        return CascadeEndpoint(order.meeting_id, order.peer_node, self.host, link.port, order.codec)

    def _peer_address(self, host: str) -> str:
        """The peer's address as the socket will report it (packets are matched on it), and in
        the family of ours (an IPv4 socket cannot reach an IPv6 peer)."""
        peer = ipaddress.ip_address(host)
        ours = 6 if ":" in self.host else 4  # how PortPool picks the socket's family
        if peer.version != ours:
            raise CascadeError(f"peer_host {host!r} is not IPv{ours} like {self.host}")
        return str(peer)

    def close(self, order: CloseCascade) -> bool:
        """Stop exchanging audio with the peer; False if there was no such link."""
        link = self._links.pop((order.meeting_id, order.peer_node), None)
        if link is None:
            return False
        self.conference.unlink(order.meeting_id, order.peer_node)
        link.stream.close()
        self._ports.release(link.port)
        return True

    def close_meeting(self, meeting_id: str, env: str = "") -> int:
        """The meeting ended here: close all its links; how many there were."""
        peers = [peer for meeting, peer in self._links if meeting == meeting_id]
        for peer in peers:
            self.close(CloseCascade(meeting_id, peer, env))
        return len(peers)

    def close_all(self) -> None:
        for meeting, peer in list(self._links):
            self.close(CloseCascade(meeting, peer, ""))

    def __len__(self) -> int:
        return len(self._links)

    def stats(self) -> list[dict[str, Any]]:
        """Per link: packets each way, refused and trimmed, and what the jitter buffer lost."""
        return [
            {
                "meeting_id": meeting,
                "peer_node": peer,
                "port": link.port,
                "codec": link.stream.codec,
                "rx_packets": link.stream.rx_packets,
                "tx_packets": link.stream.tx_packets,
                "rx_refused": link.stream.rx_refused,
                "trimmed": link.stream.trimmed,
                "lost": link.stream.jitter.lost,
            }
            for (meeting, peer), link in self._links.items()
        ]
