"""Every room of one media process, mixed on one drift-corrected 20 ms clock.

Members are added at answer; they hear the room once `joined` (after their extension's digits)
and are heard unless `muted`. Each tick drains every member's jitter buffer, then decodes, mixes
(N-1) and encodes all rooms in one numpy pass, and sends each member its frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.media import g711
from telemeeting.telephony.media.g711 import FRAME_SAMPLES
from telemeeting.telephony.media.mixer import mix_rooms
from telemeeting.telephony.media.stream import RtpStream

TICK_SECONDS = 0.020
#: A tick later than this is counted as late (half a frame: members start to hear gaps).
LATE_TICK_SECONDS = 0.010
#: Further behind than this (a suspended process), the clock skips ahead instead of bursting.
_RESYNC_SECONDS = 0.2
_SILENT_CODES = g711.silence(g711.PCMU)
_FULL_DRAIN_EVERY = 10


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
        #: Ticks that ran more than LATE_TICK_SECONDS after their time, and the worst lateness.
        self.late_ticks = 0
        self.max_lateness = 0.0
        self._layout: tuple[list[Member], npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None

    def add(self, room: str, key: str, stream: RtpStream) -> Member:
        member = Member(stream)
        stream.jitter.reset()  # drop early media: ringback is not for the room
        stream.start_polling()
        self.rooms.setdefault(room, {})[key] = member
        self._layout = None
        return member

    def get(self, room: str, key: str) -> Member | None:
        return self.rooms.get(room, {}).get(key)

    def remove(self, room: str, key: str) -> None:
        members = self.rooms.get(room)
        if members is not None and members.pop(key, None) is not None:
            if not members:
                del self.rooms[room]
            self._layout = None

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
            lateness = loop.time() - due
            self.lateness.append(lateness)
            if lateness > LATE_TICK_SECONDS:
                self.late_ticks += 1
            self.max_lateness = max(self.max_lateness, lateness)
            self.tick()

    def _members_in_rows(self) -> tuple[list[Member], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Members flattened room by room, each room's first row, and each row's room."""
        if self._layout is None:
            members: list[Member] = []
            starts: list[int] = []
            room_of: list[int] = []
            for index, room in enumerate(self.rooms.values()):
                starts.append(len(members))
                members.extend(room.values())
                room_of.extend([index] * len(room))
            self._layout = (members, np.array(starts, np.intp), np.array(room_of, np.intp))
        return self._layout

    def tick(self) -> None:
        self.ticks += 1
        members, starts, room_of = self._members_in_rows()
        if not members:
            return
        payloads: list[bytes] = []
        speaking: list[bool] = []
        alaw_in: list[bool] = []
        # One packet per leg per tick keeps pace with a peer sending every 20 ms; a full drain
        # now and then catches up with bursts and clock drift without paying, every tick, for
        # the failed read that ends a drain.
        drain_limit = 8 if self.ticks % _FULL_DRAIN_EVERY == 0 else 1
        for member in members:
            member.stream.drain(drain_limit)
            item = member.stream.read_payload()
            if item is None or not member.joined or member.muted:
                payloads.append(_SILENT_CODES)
                speaking.append(False)
                alaw_in.append(False)
                continue
            payload_type, payload = item
            if len(payload) != FRAME_SAMPLES:  # a peer ignoring ptime 20: fit it to the tick
                payload = (payload + g711.silence(payload_type))[:FRAME_SAMPLES]
            payloads.append(payload)
            speaking.append(True)
            alaw_in.append(payload_type == g711.PCMA)
        count = len(members)
        codes = np.frombuffer(b"".join(payloads), np.uint8).reshape(count, FRAME_SAMPLES)
        frames = g711.decode_frames(codes, np.array(alaw_in))
        heard = mix_rooms(frames, np.array(speaking), starts, room_of)
        alaw_out = np.array([m.stream.payload_type == g711.PCMA for m in members])
        encoded = g711.encode_frames(heard, alaw_out).tobytes()
        for row, member in enumerate(members):
            if member.joined:
                offset = row * FRAME_SAMPLES
                member.stream.write_payload(encoded[offset : offset + FRAME_SAMPLES])
            else:
                member.stream.write_payload(None)
