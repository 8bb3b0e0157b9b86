"""One send() per answer: a response's header block leaves together with its body.

Why: uvicorn writes the status line and headers when the app sends `http.response.start`, and
the body when it sends `http.response.body`: two writes. With TCP_NODELAY on (which the server
needs, see cli._listen), each write is its own send() system call and its own TCP segment, and
on loopback each segment also wakes the reader: profiled under wrk, the header write was the
largest single cost of a queryMeeting (docs/performance.md). Every answer of ours is complete
when it starts (send_json), so holding the header block until the body arrives costs nothing.

The held bytes never wait longer than the current turn of the event loop: they go out with the
next write, before a close, or from a callback at the end of the turn (a HEAD answer, whose
body uvicorn never writes, or an interim `100 Continue`).
"""

from __future__ import annotations

import asyncio


class CoalescingWriter:
    """The transport as one response cycle sees it: its first write is held, then joined."""

    __slots__ = ("_held", "_loop", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif not self._started:
            self._started = True
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write what is held (end of the loop's turn, or before closing)."""
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self.flush()
        self._transport.close()
