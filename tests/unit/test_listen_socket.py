"""`telemeeting serve`'s listening sockets: accepted connections get TCP_NODELAY (IPv4 and IPv6).

asyncio sets TCP_NODELAY on an accepted connection only when the listening socket was created
with `proto=IPPROTO_TCP`; without it every response on a keep-alive connection waits ~40 ms for
the client's delayed ACK (tests/e2e/test_server_stack.py shows that from outside).
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from telemeeting.cli import _listen


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.parametrize(
    ("host", "family"),
    [
        ("127.0.0.1", socket.AF_INET),
        pytest.param(
            "::1",
            socket.AF_INET6,
            marks=pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback"),
        ),
    ],
)
async def test_accepted_connections_have_tcp_nodelay(host: str, family: int) -> None:
    listener = _listen(host, 0)
    assert (listener.family, listener.proto) == (family, socket.IPPROTO_TCP)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=listener)
    try:
        port = listener.getsockname()[1]
        _reader, writer = await asyncio.open_connection(host, port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
