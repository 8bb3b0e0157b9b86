"""SIP requests and responses (RFC 3261 §7): parse from and serialize to UDP datagrams.

Headers keep their order and repetitions; names are canonicalised (compact forms expanded) so
lookups are exact. Content-Length is always recomputed on output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from telemeeting.telephony.sip.errors import SipParseError

_COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "s": "Subject",
    "e": "Content-Encoding",
    "x": "Session-Expires",
}
_SPECIAL = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
}
#: Headers whose comma-separated values are separate entries (RFC 3261 §7.3.1).
_LIST_HEADERS = {"Via", "Route", "Record-Route", "Contact", "Allow", "Supported", "Require"}


def canonical_name(name: str) -> str:
    lower = name.strip().lower()
    if lower in _COMPACT:
        return _COMPACT[lower]
    if lower in _SPECIAL:
        return _SPECIAL[lower]
    return "-".join(part.capitalize() for part in lower.split("-"))


def split_list(value: str) -> list[str]:
    """Split on commas outside quotes and angle brackets."""
    items, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(value):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            depth += 1
        elif not quoted and char == ">":
            depth -= 1
        elif char == "," and not quoted and depth == 0:
            items.append(value[start:index].strip())
            start = index + 1
    items.append(value[start:].strip())
    return [item for item in items if item]


@dataclass
class SipMessage:
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def get(self, name: str) -> str | None:
        """The first value of a header (for list headers, the first entry)."""
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        name = canonical_name(name)
        values = [v for n, v in self.headers if n == name]
        if name in _LIST_HEADERS:
            return [item for v in values for item in split_list(v)]
        return values

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        name = canonical_name(name)
        self.headers = [(n, v) for n, v in self.headers if n != name]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        number, _, method = (self.get("CSeq") or "").strip().partition(" ")
        try:
            return int(number), method.strip().upper()
        except ValueError as exc:
            raise SipParseError(f"bad CSeq {self.get('CSeq')!r}") from exc

    @property
    def branch(self) -> str:
        """The top Via's branch: the transaction key (RFC 3261 §17.1.3)."""
        via = self.get("Via") or ""
        for param in via.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "branch":
                return value.strip()
        return ""

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        lines += [f"{n}: {v}" for n, v in self.headers if n != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} SIP/2.0")


@dataclass
class SipResponse(SipMessage):
    status: int = 0
    reason: str = ""

    def serialize(self) -> bytes:
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")


def parse(data: bytes) -> SipRequest | SipResponse:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("headers are not UTF-8") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():  # keep-alive CRLFs before a message
        lines.pop(0)
    if not lines:
        raise SipParseError("empty message")
    start, header_lines = lines[0], lines[1:]
    headers: list[tuple[str, str]] = []
    for line in header_lines:
        if line[:1] in (" ", "\t") and headers:  # folded continuation line
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"bad header line {line!r}")
        headers.append((canonical_name(name), value.strip()))
    message: SipRequest | SipResponse
    if start.startswith("SIP/2.0 "):
        _, code, reason = [*start.split(" ", 2), ""][:3]
        if not code.isdigit():
            raise SipParseError(f"bad status line {start!r}")
        message = SipResponse(headers, b"", int(code), reason)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0":
            raise SipParseError(f"bad request line {start!r}")
        message = SipRequest(headers, b"", parts[0].upper(), parts[1])
    length = message.get("Content-Length")
    if length is not None and length.strip().isdigit():
        body = body[: int(length)]
    message.body = body
    return message
