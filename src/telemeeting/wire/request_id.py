"""Request ids: 29 digits, starting with the 14-digit wall-clock timestamp (spec §4).

Layout: timestamp (14) + node (6, random per process) + counter (9, per process). Two processes
collide only if they draw the same node number, one chance in a million per pair.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from telemeeting.wire.auth import format_timestamp


class RequestIdGenerator:
    def __init__(self, zone: ZoneInfo, node: int | None = None) -> None:
        self._zone = zone
        self._node = secrets.randbelow(1_000_000) if node is None else node % 1_000_000
        self._counter = itertools.count(secrets.randbelow(1_000_000_000))
        self._lock = threading.Lock()

    def next(self, now: datetime) -> str:
        with self._lock:
            count = next(self._counter) % 1_000_000_000
        return f"{format_timestamp(now, self._zone)}{self._node:06d}{count:09d}"
