"""Every room of one media process, mixed on one drift-corrected 20 ms clock.

Members are added at answer; they hear the room once `joined` (after their extension's digits)
and are heard unless `muted`. Each member's jitter buffer is drained every tick either way.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np

from telemeeting.telephony.media.g711 import FRAME_SAMPLES
from telemeeting.telephony.media.mixer import mix_minus
from telemeeting.telephony.media.stream import RtpStream

TICK_SECONDS = 0.020
#: Further behind than this (a suspended process), the clock skips ahead instead of bursting.
_RESYNC_SECONDS = 0.2


@dataclass(eq=False)
class Member:
    stream: RtpStream
    joined: bool = False
    muted: bool = False


class Conference:
    def __init__(self, tick_seconds: float = TICK_SECONDS) -> None:
        self.tick_seconds = tick_seconds
        self.rooms: dict[str, dict[str, Member]] = {}
        #: How late each tick ran, in seconds (for the capacity benchmark and health checks).
        self.lateness: deque[float] = deque(maxlen=15_000)
        self.ticks = 0

    def add(self, room: str, key: str, stream: RtpStream) -> Member:
        member = Member(stream)
        stream.jitter.reset()  # drop early media: ringback is not for the room
        self.rooms.setdefault(room, {})[key] = member
        return member

    def get(self, room: str, key: str) -> Member | None:
        return self.rooms.get(room, {}).get(key)

    def remove(self, room: str, key: str) -> None:
        members = self.rooms.get(room)
        if members is not None:
            members.pop(key, None)
            if not members:
                del self.rooms[room]

    def members(self) -> int:
        return sum(len(m) for m in self.rooms.values())

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.tick_seconds
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -_RESYNC_SECONDS:
                due = loop.time()
            else:
                await asyncio.sleep(0)  # late: still yield so the sockets are served
            self.lateness.append(loop.time() - due)
            self.tick()

    def tick(self) -> None:
        self.ticks += 1
        for members in list(self.rooms.values()):
            self._mix(list(members.values()))

    @staticmethod
    def _mix(members: list[Member]) -> None:
        count = len(members)
        frames = np.zeros((count, FRAME_SAMPLES), dtype=np.int16)
        speaking = np.zeros(count, dtype=np.bool_)
        for index, member in enumerate(members):
            frame = member.stream.read_frame()
            if frame is not None and member.joined and not member.muted:
                frames[index] = frame
                speaking[index] = True
        heard = mix_minus(frames, speaking) if speaking.any() else frames
        for index, member in enumerate(members):
            member.stream.write_frame(heard[index] if member.joined else None)
