"""Running the IVR on one answered call: the machine (machine.py) driven by real keys, a silence
timer and a prompt player, until the caller is admitted or released.

Before it joins a meeting the call is nobody's member, so the mix does not feed it: its prompts
(or silence) go out one 20 ms frame per tick of the media node's shared clock
(`Conference.attach`), which also reads the caller's socket (keys as RFC 4733 events), as it does
for members. A timer per call instead cost an event-loop wake-up per caller every 20 ms, and a
callback per received packet: with hundreds dialling in at once (the start of an all-hands) that
took the mixing tick's time (docs/performance.md). Without a shared clock (a call on its own),
the player runs its own timer. Keys stop a prompt (barge-in), except the last words before a
hang-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import numpy as np
import numpy.typing as npt

from telemeeting.telephony.dialin import Admission
from telemeeting.telephony.ivr.digits import DigitReceiver
from telemeeting.telephony.ivr.machine import (
    SILENCE_SECONDS,
    Action,
    Check,
    Ivr,
    Join,
    Play,
    Prompt,
    Verdict,
)
from telemeeting.telephony.media import g711

Samples = npt.NDArray[np.int16]
_FRAME = 160
_TICK = 0.02
#: A prompt missing from the table (espeak-ng absent) is this much silence.
_MISSING = np.zeros(8000 // 2, dtype=np.int16)


class PromptStream(Protocol):
    payload_type: int
    on_event: Callable[[int, bytes], None] | None

    def write_payload(self, payload: bytes | None) -> None: ...

    def drain(self, limit: int = 8) -> None: ...

    def start_polling(self) -> None: ...


class Ticked(Protocol):
    def tick(self, drain_limit: int) -> None: ...


class Clock(Protocol):
    """The media node's 20 ms clock (media/conference.py's Conference)."""

    def attach(self, ticked: Ticked) -> None: ...

    def detach(self, ticked: Ticked) -> None: ...


class KeyedCall(Protocol):
    on_key: Callable[[str], None]


class PromptPlayer:
    """Queued prompts, one 20 ms frame per tick, silence in between. A prompt is encoded whole
    when it starts (one numpy call), so a frame costs a slice and a send."""

    def __init__(self, stream: PromptStream) -> None:
        self.stream = stream
        self._queue: deque[Samples] = deque()
        self._encoded = b""
        self._encoded_as = -1  # the payload type of `_encoded`
        self._position = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def play(self, samples: Samples) -> None:
        self._queue.append(samples)
        self.idle.clear()

    def stop(self) -> None:
        self._queue.clear()
        self._encoded = b""
        self._position = 0
        self.idle.set()

    @property
    def remaining_seconds(self) -> float:
        total = sum(len(s) for s in self._queue) - self._position
        return max(0, total) / 8000

    def _next_frame(self) -> bytes | None:
        while self._queue:
            pt = self.stream.payload_type
            if not self._encoded or pt != self._encoded_as:  # a prompt starts, or a re-INVITE
                self._encoded, self._encoded_as = g711.encode(pt, self._queue[0]), pt
            if self._position < len(self._encoded):
                frame = self._encoded[self._position : self._position + _FRAME]
                self._position += _FRAME
                if len(frame) < _FRAME:
                    frame += g711.silence(pt, _FRAME - len(frame))
                return frame
            self._queue.popleft()
            self._encoded = b""
            self._position = 0
        self.idle.set()
        return None

    def tick(self, drain_limit: int = 8) -> None:
        """One tick of the shared clock: read what the caller sent (keys), send one frame."""
        self.stream.drain(drain_limit)
        self.stream.write_payload(self._next_frame())

    async def run(self) -> None:
        """Without a shared clock: a frame every 20 ms on a timer of its own (packets arrive by
        the event loop's callbacks meanwhile)."""
        start = time.monotonic()
        ticks = 0
        while True:
            self.stream.write_payload(self._next_frame())
            ticks += 1
            await asyncio.sleep(max(0.0, start + ticks * _TICK - time.monotonic()))


class IvrSession:
    def __init__(
        self,
        call: KeyedCall,
        stream: PromptStream,
        ivr: Ivr,
        prompts: Mapping[Prompt, Samples],
        admit: Callable[[str, str], Awaitable[Admission]],
        silence_seconds: float = SILENCE_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self.call = call
        self.stream = stream
        self.ivr = ivr
        self.prompts = prompts
        self.admit = admit
        self.silence_seconds = silence_seconds
        #: The media node's clock that paces the prompts and reads the socket (None: a timer).
        self.clock = clock
        self.player = PromptPlayer(stream)
        self.keys: asyncio.Queue[str] = asyncio.Queue()
        self.heard: list[str] = []
        self._receiver = DigitReceiver()
        self._admission: Admission | None = None
        self._released = False

    def _on_event(self, timestamp: int, payload: bytes) -> None:
        key = self._receiver.event(timestamp, payload)
        if key is not None:
            self.keys.put_nowait(key)

    async def run(self) -> Admission | None:
        """The admission once the caller may join; None when the call is to be released."""
        self.call.on_key = self.keys.put_nowait
        self.stream.on_event = self._on_event
        player: asyncio.Task[None] | None = None
        if self.clock is not None:
            self.stream.start_polling()  # the clock's tick reads the socket from now on
            self.clock.attach(self.player)
        else:
            player = asyncio.create_task(self.player.run(), name="ivr-prompts")
        try:
            await self._perform(self.ivr.start())
            while not self.ivr.finished:
                timeout = self.player.remaining_seconds + self.silence_seconds
                try:
                    key = await asyncio.wait_for(self.keys.get(), timeout)
                except TimeoutError:
                    await self._perform(self.ivr.silence())
                    continue
                self.heard.append(key)
                self.player.stop()  # barge-in
                await self._perform(self.ivr.digit(key))
            return None if self._released else self._admission
        finally:
            self.stream.on_event = None
            self.call.on_key = lambda _key: None
            if self.clock is not None:
                self.clock.detach(self.player)
            if player is not None:
                player.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await player

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Play):
                self.player.play(self.prompts.get(action.prompt, _MISSING))
                if action.then_hang_up:
                    self._released = True
                    with contextlib.suppress(TimeoutError):
                        wait = self.player.remaining_seconds + 1.0
                        await asyncio.wait_for(self.player.idle.wait(), wait)
                    return
            elif isinstance(action, Check):
                try:
                    admission = await self.admit(action.meid, action.pin)
                except Exception:
                    admission = Admission(Verdict.UNAVAILABLE)
                if admission.verdict is Verdict.ADMITTED:
                    self._admission = admission
                await self._perform(self.ivr.checked(admission.verdict))
                return
            elif isinstance(action, Join):
                self.player.stop()
                return
