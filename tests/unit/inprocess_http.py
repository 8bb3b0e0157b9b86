"""A real uvicorn server with the API's HTTP protocol (api/server.http_config) inside the test's
event loop, on a loopback socket, for tests of what the protocol itself does."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from telemeeting.api.admission import AdmissionControl
from telemeeting.api.server import http_config
from telemeeting.config import ServerSettings


class CountingTransport:
    """A connection's transport that records its writes (everything else passes through)."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp, writes: list[bytes], admission: AdmissionControl | None = None
) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 until leaving; yields the port. `writes` collects every write
    to every connection's transport."""
    config = http_config(app, ServerSettings(loop="asyncio"), [], admission)
    base = config.http

    class Counting(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(CountingTransport(transport, writes))  # type: ignore[arg-type]

    config.http = Counting
    config.lifespan = "off"
    config.log_level = "warning"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def read_until(reader: asyncio.StreamReader, end: bytes) -> bytes:
    return await asyncio.wait_for(reader.readuntil(end), 5)
