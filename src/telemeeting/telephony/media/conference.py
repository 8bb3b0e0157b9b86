"""Every room of one media process, mixed on one drift-corrected 20 ms clock.

Members are added at answer; they hear the room once `joined` (after their extension's digits)
and are heard unless `muted` or `held`. Each tick drains every member's jitter buffer, then
decodes, mixes (N-1) and encodes all rooms in one numpy pass, and sends each member its frame.
Rooms with a `RoomMedia` (recording, beeps, prompts) get their extras between mixing and
encoding: their sounds are added, their mix recorded. A member's stream is anything with the
`MemberStream` methods: an RTP leg, or a simulated party (synthetic.py) on the same code path.
A room that spans media nodes also has cascade links (cascade.py): each tick they bring the
other nodes' sums, heard by every member and recorded, and carry this node's sum away.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import structlog

from telemeeting.telephony.media import cascade, g711
from telemeeting.telephony.media.g711 import FRAME_SAMPLES
from telemeeting.telephony.media.mixer import mix_rooms_and_sums
from telemeeting.telephony.media.recorder import Recorder
from telemeeting.telephony.media.room import BEEP_ON_JOIN, BEEP_ON_LEAVE, RoomMedia
from telemeeting.telephony.media.sounds import Player, Sound, hold_music, join_beep, leave_beep

log = structlog.get_logger(__name__)

TICK_SECONDS = 0.020
#: A tick later than this is counted as late (half a frame: members start to hear gaps).
LATE_TICK_SECONDS = 0.010
#: Further behind than this (a suspended process), the clock skips ahead instead of bursting.
_RESYNC_SECONDS = 0.2
_SILENT_CODES = g711.silence(g711.PCMU)
_FULL_DRAIN_EVERY = 10


class MemberStream(Protocol):
    """What the mixer needs of a member's audio (stream.RtpStream, synthetic.SyntheticStream)."""

    payload_type: int

    def enter_room(self) -> None: ...

    def drain(self, limit: int = 8) -> None: ...

    def read_payload(self) -> tuple[int, bytes] | None: ...

    def write_payload(self, payload: bytes | None) -> None: ...


class Ticked(Protocol):
    """Something paced by the clock without being a room's member (Conference.attach)."""

    def tick(self, drain_limit: int) -> None: ...


@dataclass(eq=False)
class Member:
    stream: MemberStream
    joined: bool = False
    muted: bool = False
    key: str = ""
    #: On hold: neither heard nor hearing the room; hears `hold` (music) instead.
    hold: Player | None = None


class Conference:
    def __init__(self, tick_seconds: float = TICK_SECONDS) -> None:
        self.tick_seconds = tick_seconds
        self.rooms: dict[str, dict[str, Member]] = {}
        #: The rooms that record, beep or play something (most rooms have none).
        self.media: dict[str, RoomMedia] = {}
        #: Told (room, member keys) when a room's talkers change (rooms with speaker events).
        self.on_speakers: Callable[[str, tuple[str, ...]], None] | None = None
        #: How late each tick ran, in seconds (for the capacity benchmark and health checks).
        self.lateness: deque[float] = deque(maxlen=15_000)
        self.ticks = 0
        #: Ticks that ran more than LATE_TICK_SECONDS after their time, and the worst lateness.
        self.late_ticks = 0
        self.max_lateness = 0.0
        self._layout: tuple[list[Member], npt.NDArray[np.intp], npt.NDArray[np.intp]] | None = None
        self._room_index: dict[str, int] = {}
        #: Per room, its cascade links by peer node (rooms of a meeting that spans nodes).
        self.links: dict[str, dict[str, cascade.CascadeStream]] = {}
        #: Time the tick spent on cascade links (reading, summing, sending), in seconds.
        self.cascade_seconds = 0.0
        #: Paced by the clock after the rooms (callers in the IVR), in the order attached.
        self.attached: dict[Ticked, None] = {}

    def add(self, room: str, key: str, stream: MemberStream) -> Member:
        member = Member(stream, key=key)
        stream.enter_room()
        self.rooms.setdefault(room, {})[key] = member
        self._layout = None
        return member

    def join(self, room: str, key: str) -> None:
        """The member starts hearing the room; the others hear a join beep if the room wants."""
        member = self.get(room, key)
        if member is None or member.joined:
            return
        member.joined = True
        self.announce(room, key, joined=True)

    def get(self, room: str, key: str) -> Member | None:
        return self.rooms.get(room, {}).get(key)

    def remove(self, room: str, key: str) -> None:
        members = self.rooms.get(room)
        member = members.pop(key, None) if members is not None else None
        if members is not None and member is not None:
            if not members:
                del self.rooms[room]
            self._layout = None
            media = self.media.get(room)
            if media is not None:
                media.held.discard(key)
            if member.joined and members:
                self.announce(room, key, joined=False)

    def announce(self, room: str, key: str, joined: bool) -> None:
        """The join (or leave) beep about member `key`, to everyone else, if the room wants it.
        Also called for a member of another media node of the meeting (issue 16): the links
        carry voices only, so each node beeps to its own members."""
        media = self.media.get(room)
        if media is not None and media.beep & (BEEP_ON_JOIN if joined else BEEP_ON_LEAVE):
            sound = join_beep() if joined else leave_beep()
            media.sounds.append(Sound(Player(sound), exclude=key))

    def link(self, room: str, peer: str, stream: cascade.CascadeStream) -> None:
        """From the next tick on, `room` exchanges its audio with node `peer` over `stream`."""
        self.links.setdefault(room, {})[peer] = stream

    def unlink(self, room: str, peer: str) -> cascade.CascadeStream | None:
        links = self.links.get(room)
        stream = links.pop(peer, None) if links is not None else None
        if links is not None and not links:
            del self.links[room]
        return stream

    # room features ------------------------------------------------------------------------
    def room_media(self, room: str) -> RoomMedia:
        media = self.media.get(room)
        if media is None:
            media = self.media[room] = RoomMedia()
        return media

    def start_recording(self, room: str, recording_id: str, wav: Path) -> None:
        """Record the room's mix (everyone, and the sounds everyone hears) into `wav`."""
        media = self.room_media(room)
        if media.recorder is not None:
            return
        media.recorder = Recorder(wav)
        media.recording_id = recording_id

    def stop_recording(self, room: str) -> Recorder | None:
        """Stop recording; the closed recorder (its WAV complete), or None if none ran."""
        media = self.media.get(room)
        if media is None or media.recorder is None:
            return None
        recorder, media.recorder, media.recording_id = media.recorder, None, ""
        recorder.close()
        return recorder

    def play(self, room: str, sound: Sound) -> None:
        """Play `sound`; it replaces a looping sound for the same audience (a looping prompt
        lasts until the next prompt to the same members, or the meeting's end)."""
        sounds = self.room_media(room).sounds
        sounds[:] = [
            s for s in sounds if not (s.player.loop and (s.only, s.exclude) == (sound.only, None))
        ]
        sounds.append(sound)

    def hold(self, room: str, key: str, held: bool) -> None:
        """On hold, a member neither hears nor is heard by the room and hears music instead."""
        member = self.get(room, key)
        if member is None:
            return
        media = self.room_media(room)  # held members are served by the room's extras
        if held and member.hold is None:
            member.hold = Player(hold_music(), loop=True)
            media.held.add(key)
        elif not held:
            member.hold = None
            media.held.discard(key)

    def end_room(self, room: str) -> Recorder | None:
        """The meeting is over: forget its extras; its recording, closed, if one ran."""
        recorder = self.stop_recording(room)
        self.media.pop(room, None)
        return recorder

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
            if self.attached:
                self.tick_attached()

    def attach(self, ticked: Ticked) -> None:
        """Call `ticked.tick(drain_limit)` every tick after the rooms': a dial-in caller in the
        IVR is nobody's member yet, and its prompt frames and socket reads ride this clock
        instead of a timer and a callback per packet of their own (telephony/ivr/session.py)."""
        self.attached[ticked] = None

    def detach(self, ticked: Ticked) -> None:
        self.attached.pop(ticked, None)

    def tick_attached(self) -> None:
        """One tick of each attached stream; one that fails is detached (and logged) so that it
        cannot stop the clock of every meeting here."""
        drain_limit = 8 if self.ticks % _FULL_DRAIN_EVERY == 0 else 1
        for ticked in list(self.attached):
            try:
                ticked.tick(drain_limit)
            except Exception:
                self.attached.pop(ticked, None)
                log.exception("media.attached_tick_failed")

    def _members_in_rows(self) -> tuple[list[Member], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Members flattened room by room, each room's first row, and each row's room."""
        if self._layout is None:
            members: list[Member] = []
            starts: list[int] = []
            room_of: list[int] = []
            self._room_index = {}
            for index, (name, room) in enumerate(self.rooms.items()):
                self._room_index[name] = index
                starts.append(len(members))
                members.extend(room.values())
                room_of.extend([index] * len(room))
            self._layout = (members, np.array(starts, np.intp), np.array(room_of, np.intp))
        return self._layout

    def tick(self) -> None:
        self.ticks += 1
        members, starts, room_of = self._members_in_rows()
        if not members:
            peers = self._cascade_in() if self.links else None
            if self.media:
                empty = np.zeros((0, FRAME_SAMPLES), np.int16)
                self._extras(members, empty, None, starts, empty, peers)
            if self.links:
                self._cascade_out(None)
            return
        payloads: list[bytes] = []
        speaking: list[bool] = []
        alaw_in: list[bool] = []
        sends: list[int] = []  # each member's payload type, for encoding what it hears
        # One packet per leg per tick keeps pace with a peer sending every 20 ms; a full drain
        # now and then catches up with bursts and clock drift without paying, every tick, for
        # the failed read that ends a drain.
        drain_limit = 8 if self.ticks % _FULL_DRAIN_EVERY == 0 else 1
        for member in members:
            stream = member.stream
            stream.drain(drain_limit)
            sends.append(stream.payload_type)
            item = stream.read_payload()
            if item is None or not member.joined or member.muted or member.hold is not None:
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
        # The links are read after the legs: the first reads after the clock's sleep run on a
        # cold cache, and a link's share of the tick should not include that.
        peers = self._cascade_in(drain_limit) if self.links else None
        count = len(members)
        codes = np.frombuffer(b"".join(payloads), np.uint8).reshape(count, FRAME_SAMPLES)
        frames = g711.decode_frames(codes, np.array(alaw_in))
        extra = self._peer_rows(peers) if peers else None
        heard, sums = mix_rooms_and_sums(frames, np.array(speaking), starts, room_of, extra)
        if self.media:
            self._extras(members, heard, sums, starts, frames, peers)
        if self.links:
            self._cascade_out(sums)
        alaw_out = np.array(sends) == g711.PCMA
        encoded = g711.encode_frames(heard, alaw_out).tobytes()
        for row, member in enumerate(members):
            if member.joined:
                offset = row * FRAME_SAMPLES
                member.stream.write_payload(encoded[offset : offset + FRAME_SAMPLES])
            else:
                member.stream.write_payload(None)

    def _cascade_in(self, drain_limit: int = 8) -> dict[str, npt.NDArray[np.int32]]:
        """What the peers sent, per room; the time counted is CPU time (thread_time), so a
        busy machine's preemption does not show up as the links' cost."""
        started = time.thread_time()
        peers = cascade.gather(self.links, drain_limit)
        self.cascade_seconds += time.thread_time() - started
        return peers

    def _peer_rows(
        self, peers: dict[str, npt.NDArray[np.int32]]
    ) -> dict[int, npt.NDArray[np.int32]]:
        """The peers' audio by the index of the local room it is for (rooms with members)."""
        return {
            self._room_index[room]: frame
            for room, frame in peers.items()
            if room in self._room_index
        }

    def _cascade_out(self, sums: npt.NDArray[np.int32] | None) -> None:
        """Each linked room's local sum (never what peers sent) to its peer nodes."""
        started = time.thread_time()
        for room, by_peer in self.links.items():
            index = self._room_index.get(room) if room in self.rooms else None
            local = sums[index] if sums is not None and index is not None else None
            cascade.send_local(by_peer.values(), local)
        self.cascade_seconds += time.thread_time() - started

    def _extras(
        self,
        members: list[Member],
        heard: npt.NDArray[np.int16],
        sums: npt.NDArray[np.int32] | None,
        starts: npt.NDArray[np.intp],
        said: npt.NDArray[np.int16],
        peers: dict[str, npt.NDArray[np.int32]] | None = None,
    ) -> None:
        """Sounds, hold music, recordings and talkers of the rooms that have them (sounds and
        music in place on `heard`; `said` is what each member sent this tick; `peers` what
        other nodes sent for cascaded rooms, part of the recorded mix)."""
        for name, media in self.media.items():
            if not media.busy:
                continue
            index = self._room_index.get(name) if name in self.rooms else None
            if index is not None and sums is not None:
                first = int(starts[index])
                rows = range(first, first + len(self.rooms[name]))
                mix = sums[index].copy()
            else:
                rows, mix = range(0), np.zeros(FRAME_SAMPLES, np.int32)
            if peers is not None and name in peers:
                mix += peers[name]  # the full mix: this node's members and the other nodes'
            if media.sounds:
                for sound in list(media.sounds):
                    frame = sound.player.next_frame()
                    if frame is None:
                        media.sounds.remove(sound)
                        continue
                    if sound.only is None:
                        mix += frame
                    for row in rows:
                        member = members[row]
                        if member.joined and member.hold is None and sound.heard_by(member.key):
                            heard[row] = np.clip(heard[row].astype(np.int32) + frame, -32768, 32767)
            for row in rows:
                member = members[row]
                if member.hold is not None:
                    music = member.hold.next_frame()
                    heard[row] = music if music is not None else 0
            if media.recorder is not None:
                media.recorder.write(np.clip(mix, -32768, 32767).astype(np.int16))
            if media.speakers is not None:
                self._detect(name, media, members, rows, said)

    def _detect(
        self,
        room: str,
        media: RoomMedia,
        members: list[Member],
        rows: range,
        said: npt.NDArray[np.int16],
    ) -> None:
        """Feed each member's level (0 when muted, held or not yet joined) to the detector."""
        assert media.speakers is not None
        levels: dict[str, float] = {}
        if len(rows):
            block = said[rows.start : rows.stop].astype(np.float32)
            rms = np.sqrt(np.mean(block * block, axis=1))
            for offset, row in enumerate(rows):
                member = members[row]
                audible = member.joined and not member.muted and member.hold is None
                levels[member.key] = float(rms[offset]) if audible else 0.0
        talkers = media.speakers.update(levels)
        if talkers is not None and self.on_speakers is not None:
            self.on_speakers(room, talkers)
