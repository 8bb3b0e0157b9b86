"""RTP port allocation from the configured range: one even port per leg (RTCP would take +1)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable
from typing import TypeVar

P = TypeVar("P", bound=asyncio.DatagramProtocol)


class PortsExhausted(RuntimeError):
    """Every port of the range is in use (or taken by another program)."""


class PortPool:
    def __init__(self, port_min: int, port_max: int) -> None:
        first = port_min + (port_min % 2)
        self._ports = list(range(first, port_max, 2))
        if not self._ports:
            raise ValueError(f"empty RTP port range {port_min}-{port_max}")
        self._in_use: set[int] = set()
        self._cursor = random.randrange(len(self._ports))

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    async def bind(
        self, host: str, factory: Callable[[], P]
    ) -> tuple[asyncio.DatagramTransport, P, int]:
        """Bind the next free port, skipping ports another program holds."""
        loop = asyncio.get_running_loop()
        for _ in range(len(self._ports)):
            port = self._ports[self._cursor]
            self._cursor = (self._cursor + 1) % len(self._ports)
            if port in self._in_use:
                continue
            sock = socket.socket(
                socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM
            )
            try:
                sock.bind((host, port))
                sock.setblocking(False)
                transport, protocol = await loop.create_datagram_endpoint(factory, sock=sock)
            except OSError:
                sock.close()
                continue
            adopt = getattr(protocol, "adopt_socket", None)
            if adopt is not None:
                adopt(sock)
            self._in_use.add(port)
            return transport, protocol, port
        raise PortsExhausted(f"no free RTP port in {self._ports[0]}-{self._ports[-1]}")

    def release(self, port: int) -> None:
        self._in_use.discard(port)
