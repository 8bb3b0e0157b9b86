"""Keys a caller presses, from either path a trunk may use: RFC 4733 telephone-events in RTP,
or SIP INFO with `application/dtmf-relay` (the fallback for trunks that strip events).

An RFC 4733 key is many packets sharing one RTP timestamp (growing duration, then three with
the E bit); it is reported once, on the first packet of a timestamp not seen lately, so a lost
first packet or end packet does not lose the key and retransmits do not repeat it.
"""

from __future__ import annotations

import re
from collections import deque

from telemeeting.telephony.media.dtmf import EVENT_CODES, parse_event

_KEYS = {code: key for key, code in EVENT_CODES.items()}
#: Timestamps remembered (keys repeat only with a new timestamp).
_REMEMBER = 16
_RELAY_SIGNAL = re.compile(r"(?im)^\s*signal\s*=\s*([0-9*#A-D])\s*$")
_TYPES = ("application/dtmf-relay", "application/dtmf")


class DigitReceiver:
    def __init__(self) -> None:
        self._seen: deque[int] = deque(maxlen=_REMEMBER)

    def event(self, timestamp: int, payload: bytes) -> str | None:
        """The key this telephone-event packet starts, or None (a continuation, or not a key)."""
        if len(payload) < 4:
            return None
        code, _end, _duration = parse_event(payload)
        key = _KEYS.get(code)
        if key is None or timestamp in self._seen:
            return None
        self._seen.append(timestamp)
        return key


def info_digit(content_type: str, body: bytes) -> str | None:
    """The key of a SIP INFO body (`Signal=5` lines of application/dtmf-relay), or None."""
    kind = content_type.split(";")[0].strip().lower()
    if kind not in _TYPES:
        return None
    text = body.decode("ascii", errors="replace")
    if kind == "application/dtmf":  # the body is the key itself
        text = text.strip()
        return text.upper() if len(text) == 1 and text.upper() in EVENT_CODES else None
    match = _RELAY_SIGNAL.search(text)
    return match.group(1).upper() if match else None
