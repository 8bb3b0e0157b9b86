"""SDP offer/answer (RFC 4566, RFC 3264) for one audio stream: G.711 and telephone-event.

We always offer PCMU, PCMA and telephone-event/8000 (101) with ptime 20, read the peer's
address and chosen formats from its answer, and answer re-offers with the subset we support.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telemeeting.telephony.media.g711 import PCMA, PCMU

DTMF_PT = 101
_STATIC = {PCMU: ("PCMU", 8000), PCMA: ("PCMA", 8000)}


class SdpError(ValueError):
    """The description is malformed or offers nothing we can use."""


@dataclass
class MediaDescription:
    """What the peer told us about its audio stream."""

    host: str
    port: int
    formats: list[int]
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    direction: str = "sendrecv"

    def codec(self) -> int:
        """The first G.711 format in the peer's order of preference (static types 0 and 8 only:
        nobody maps G.711 to a dynamic type in practice)."""
        for pt in self.formats:
            if pt in _STATIC:
                return pt
        raise SdpError("no G.711 format in the description")

    def dtmf_payload_type(self) -> int | None:
        for pt in self.formats:
            name, rate = self.rtpmap.get(pt, ("", 0))
            if name.lower() == "telephone-event" and rate == 8000:
                return pt
        return None


def offer(host: str, port: int, session_id: int, version: int = 1) -> str:
    return _describe(host, port, session_id, version, [PCMU, PCMA], DTMF_PT)


def answer(host: str, port: int, session_id: int, version: int, remote: MediaDescription) -> str:
    """Our answer to a (re-)offer: its first G.711 format and its telephone-event, if any."""
    return _describe(host, port, session_id, version, [remote.codec()], remote.dtmf_payload_type())


def _describe(
    host: str, port: int, session_id: int, version: int, codecs: list[int], dtmf: int | None
) -> str:
    formats = [*codecs, *([dtmf] if dtmf is not None else [])]
    lines = [
        "v=0",
        f"o=telemeeting {session_id} {version} IN IP4 {host}",
        "s=telemeeting",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(map(str, formats))}",
    ]
    for pt in codecs:
        name, rate = _STATIC.get(pt, ("PCMU", 8000))
        lines.append(f"a=rtpmap:{pt} {name}/{rate}")
    if dtmf is not None:
        lines += [f"a=rtpmap:{dtmf} telephone-event/8000", f"a=fmtp:{dtmf} 0-16"]
    lines += ["a=ptime:20", "a=sendrecv"]
    return "\r\n".join(lines) + "\r\n"


def parse(text: str) -> MediaDescription:
    """The first audio stream of a description; SdpError when there is none we can use."""
    session_host = ""
    media: MediaDescription | None = None
    session_direction = "sendrecv"
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            if media is not None:
                break  # only the first audio stream matters
            parts = value.split()
            if len(parts) < 4 or parts[0] != "audio":
                continue
            try:
                port = int(parts[1].split("/")[0])
                formats = [int(p) for p in parts[3:] if p.isdigit()]
            except ValueError as exc:
                raise SdpError(f"bad m= line: {line}") from exc
            media = MediaDescription(session_host, port, formats, direction=session_direction)
        elif kind == "c":
            parts = value.split()
            if len(parts) >= 3:
                host = parts[2].split("/")[0]
                if media is None:
                    session_host = host
                else:
                    media.host = host
        elif kind == "a":
            _attribute(value, media)
            if media is None and value in ("sendrecv", "sendonly", "recvonly", "inactive"):
                session_direction = value
    if media is None:
        raise SdpError("no audio stream")
    if not media.host:
        raise SdpError("no connection address")
    return media


def _attribute(value: str, media: MediaDescription | None) -> None:
    if media is None:
        return
    if value in ("sendrecv", "sendonly", "recvonly", "inactive"):
        media.direction = value
    elif value.startswith("rtpmap:"):
        head, _, encoding = value[7:].partition(" ")
        name, _, rest = encoding.partition("/")
        rate = rest.split("/")[0]
        if head.isdigit() and rate.isdigit():
            media.rtpmap[int(head)] = (name, int(rate))
