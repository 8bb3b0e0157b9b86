"""LISTEN on PostgreSQL that outlives its connection.

The media and dispatcher roles of every process are woken by NOTIFY (the triggers of migration
0011) on one dedicated connection per process. When that connection dies (PostgreSQL restarted,
the backend terminated, the network cut) asyncpg only reports it; without a new connection the
roles would fall back to their one-second safety poll for the rest of the process's life. This
listener opens a new connection with a growing pause between attempts, listens on every channel
again, and wakes every listener once: notifications sent while it was away are lost, and a
wake-up only means "look again".
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

#: Pauses between reconnection attempts: the first at once-ish, then at most this long.
FIRST_RETRY_SECONDS = 0.1
MAX_RETRY_SECONDS = 2.0


class Listener:
    """Calls each channel's wake-ups on its NOTIFYs, reconnecting when the connection is lost."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._wakes: dict[str, list[Callable[[], None]]] = {}
        self._connection: asyncpg.Connection | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._closed = False

    async def add(self, channel: str, wake: Callable[[], None]) -> None:
        """Listen on `channel` (connecting on first use: a failure raises OSError or
        asyncpg.PostgresError for the caller to translate)."""
        first = channel not in self._wakes
        self._wakes.setdefault(channel, []).append(wake)
        if self._connection is None and self._reconnecting is None:
            self._connection = await self._connect()
        elif first and self._connection is not None:
            await self._connection.add_listener(channel, self._notified)

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self._dsn)
        for channel in self._wakes:
            await connection.add_listener(channel, self._notified)
        connection.add_termination_listener(self._lost)
        return connection

    def _notified(self, _connection: object, _pid: int, channel: str, _payload: str) -> None:
        for wake in self._wakes.get(channel, ()):
            wake()

    def _lost(self, _connection: object) -> None:
        if self._closed or self._reconnecting is not None:
            return
        log.warning("store.listen_lost", channels=sorted(self._wakes))
        self._connection = None
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        pause = FIRST_RETRY_SECONDS
        while not self._closed:
            await asyncio.sleep(pause)
            try:
                self._connection = await self._connect()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.info("store.listen_retry", error=f"{type(exc).__name__}: {exc}")
                pause = min(pause * 2, MAX_RETRY_SECONDS)
                continue
            log.info("store.listen_restored", channels=sorted(self._wakes))
            self._reconnecting = None
            for wakes in self._wakes.values():  # what was sent meanwhile is lost: look again
                for wake in wakes:
                    wake()
            return

    async def close(self) -> None:
        self._closed = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
            self._reconnecting = None
        if self._connection is not None:
            with contextlib.suppress(Exception):  # it may be dead already
                await self._connection.close()
            self._connection = None
