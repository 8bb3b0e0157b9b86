"""Wake-ups across processes on SQLite, which has no LISTEN/NOTIFY.

With `serve --workers N` (or `--roles` split over processes) the API processes write orders and
pushes that the media and dispatcher roles of another process must pick up. In-process hooks
cannot reach them, and the roles' safety-net poll is a second long, so a dial would wait up to a
second. SQLite counts commits: `PRAGMA data_version` on a connection changes whenever another
connection has committed, and not for that connection's own commits. Read on the process's one
writer connection (`SqliteEngine.data_version`), it moves only when another process wrote;
polling it costs a few microseconds, so a watcher polls it every `POLL_SECONDS` and wakes every
listener when it moved. (Read on a connection of its own, it would also move for every local
commit, and each wake-up makes the media and dispatcher roles look for work in a write
transaction of their own, colliding with other processes' writers for nothing.) It cannot tell
channels apart, so a listener may be woken by a commit that was not for it; the roles treat a
wake-up as "look again", which makes that harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

#: How often the commit counter is read: the most a cross-process wake-up waits.
POLL_SECONDS = 0.02


class CommitWatcher:
    """Calls the registered wake-ups after another process commits to the file."""

    def __init__(
        self, version: Callable[[], Awaitable[int]], interval: float = POLL_SECONDS
    ) -> None:
        self._version = version
        self._interval = interval
        self._wakes: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, wake: Callable[[], None]) -> None:
        """Register `wake`; the first registration starts the poll."""
        self._wakes.append(wake)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def _poll(self) -> None:
        seen = await self._version()
        while True:
            await asyncio.sleep(self._interval)
            try:
                version = await self._version()
            except sqlite3.Error as exc:  # a moment's I/O error: try again later
                log.warning("sqlite.watch_failed", error=str(exc))
                continue
            if version != seen:
                seen = version
                for wake in self._wakes:
                    wake()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
