"""A minimal HTTP/1.1 keep-alive client for load generation on loopback.

Why not httpx: in the soak, httpx cost the load generator about 2 ms of CPU per request, as much
as the server spent answering it, so on a 2-core machine the "measured capacity" was the
client's. This one writes the request bytes the SDK built (client/_calls.py signs them) and
reads one `Content-Length` answer (what uvicorn sends for every envelope); ~0.1 ms a request.
A connection that fails in any way is closed and the request counts as a transport failure.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"


class RawConnectionError(Exception):
    """No complete answer on this connection (closed, reset, malformed, timed out)."""


def request_bytes(url: str, headers: dict[str, str], body: bytes) -> bytes:
    """One complete POST, keep-alive, for `url` (absolute) with `headers` and `body`."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    head = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(head).encode("latin-1") + body


class RawPool:
    """Up to `size` kept-alive connections to one host:port, opened on demand."""

    def __init__(self, host: str, port: int, size: int, timeout: float) -> None:
        self._host, self._port, self._timeout = host, port, timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._slots = asyncio.Semaphore(size)

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        """(HTTP status, body) of one request; RawConnectionError when there is none. A kept-alive
        connection the server closed while idle (its keep-alive timeout) is replaced and the
        request sent again, as browsers and httpx do: it ended before a byte of an answer."""
        async with self._slots:
            conn = self._idle.pop() if self._idle else None
            try:
                if conn is not None:
                    try:
                        return await self._on(conn, raw)
                    except asyncio.IncompleteReadError as exc:
                        if exc.partial:
                            raise
                        conn = None
                return await self._on(await self._open(), raw)
            except (OSError, EOFError, TimeoutError, ValueError, KeyError, IndexError) as exc:
                raise RawConnectionError(f"{type(exc).__name__}: {exc}") from exc

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port), self._timeout
        )

    async def _on(
        self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
    ) -> tuple[int, bytes]:
        """One exchange on `conn`; kept for the next request if the server keeps it, else (and
        on any failure) closed."""
        try:
            status, body, keep = await asyncio.wait_for(self._exchange(*conn, raw), self._timeout)
        except BaseException:
            conn[1].close()
            raise
        if keep:
            self._idle.append(conn)
        else:
            conn[1].close()
        return status, body

    @staticmethod
    async def _exchange(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes
    ) -> tuple[int, bytes, bool]:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(_HEAD_END)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(fields["content-length"]))
        keep = fields.get("connection", "").lower() != "close"
        return status, body, keep

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
