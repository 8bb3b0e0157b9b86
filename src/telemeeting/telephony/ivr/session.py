"""Running the IVR on one answered call: the machine (machine.py) driven by real keys, a silence
timer and a prompt player, until the caller is admitted or released.

Before it joins a meeting the call is nobody's member, so no mixer tick feeds it: the player
here sends its prompts (or silence) every 20 ms itself. Keys stop a prompt (barge-in), except
the last words before a hang-up.
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


class KeyedCall(Protocol):
    on_key: Callable[[str], None]


class PromptPlayer:
    """Queued prompts, one 20 ms frame per tick, silence in between."""

    def __init__(self, stream: PromptStream) -> None:
        self.stream = stream
        self._queue: deque[Samples] = deque()
        self._position = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def play(self, samples: Samples) -> None:
        self._queue.append(samples)
        self.idle.clear()

    def stop(self) -> None:
        self._queue.clear()
        self._position = 0
        self.idle.set()

    @property
    def remaining_seconds(self) -> float:
        total = sum(len(s) for s in self._queue) - self._position
        return max(0, total) / 8000

    def _next_frame(self) -> Samples | None:
        while self._queue:
            current = self._queue[0]
            if self._position < len(current):
                frame = current[self._position : self._position + _FRAME]
                self._position += _FRAME
                if len(frame) < _FRAME:
                    frame = np.pad(frame, (0, _FRAME - len(frame)))
                return frame
            self._queue.popleft()
            self._position = 0
        self.idle.set()
        return None

    async def run(self) -> None:
        start = time.monotonic()
        ticks = 0
        while True:
            frame = self._next_frame()
            pt = self.stream.payload_type
            self.stream.write_payload(None if frame is None else g711.encode(pt, frame))
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
    ) -> None:
        self.call = call
        self.stream = stream
        self.ivr = ivr
        self.prompts = prompts
        self.admit = admit
        self.silence_seconds = silence_seconds
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
