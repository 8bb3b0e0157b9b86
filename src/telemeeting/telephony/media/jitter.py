"""A jitter buffer: a fixed ring indexed by RTP sequence number, with 16-bit wrap-around.

Packets are played out in sequence order one per 20 ms tick; a missing packet plays as silence
(None) once later ones have arrived. When the buffer runs dry the read point stops, so a peer that
pauses (silence suppression) resumes cleanly after a short prefetch instead of being "late".
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")

_HALF = 0x8000


def seq_delta(a: int, b: int) -> int:
    """a - b in sequence space: positive when a is newer than b, even across the 65535→0 wrap."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= _HALF else d


class JitterBuffer(Generic[T]):
    """The capacity is a power of two so that `sequence % capacity` stays contiguous at the wrap."""

    def __init__(self, capacity: int = 16, prefetch: int = 2) -> None:
        if not 0 < prefetch < capacity or capacity & (capacity - 1):
            raise ValueError("need 0 < prefetch < capacity, capacity a power of two")
        self.capacity = capacity
        self.prefetch = prefetch
        self._slots: list[tuple[int, T] | None] = [None] * capacity
        self._next: int | None = None
        self._count = 0
        self._playing = False
        self.late = 0
        self.lost = 0

    def __len__(self) -> int:
        return self._count

    def put(self, sequence: int, item: T) -> None:
        """Store `item` at its place in sequence order (late ones and duplicates dropped).
        This runs for every packet of every leg, so `seq_delta` is inlined and the usual
        packet (a few ahead of the read point) takes no other branch."""
        if self._next is None:
            self._next = sequence
        delta = (sequence - self._next) & 0xFFFF
        if delta >= _HALF:
            delta -= 0x10000
        if not 0 <= delta < self.capacity and not self._make_room(sequence, delta):
            return
        index = sequence % self.capacity
        slot = self._slots[index]
        if slot is None:
            self._count += 1
        elif slot[0] == sequence:
            return  # duplicate
        self._slots[index] = (sequence, item)

    def _make_room(self, sequence: int, delta: int) -> bool:
        """A packet outside the window: move the window to take it, or False (too late)."""
        if delta < 0:
            if self._count == 0 and not self._playing:
                self._next = sequence  # idle: a new talk spurt or a restarted sender
                return True
            if delta < -self.capacity * 4:
                self.reset()  # the sender jumped back: start over from it
                self._next = sequence
                return True
            self.late += 1
            return False
        if delta >= self.capacity * 4:
            self.reset()
            self._next = sequence
            return True
        while delta >= self.capacity:  # too far ahead: drop the oldest to make room
            self._drop_next()
            delta -= 1
        return True

    def pop(self) -> T | None:
        """The next item in sequence order; None means play silence for this tick."""
        if self._next is None or self._count == 0:
            self._playing = False
            return None
        if not self._playing:
            if self._count < self.prefetch:
                return None
            self._playing = True
        wanted = self._next
        index = wanted % self.capacity
        slot = self._slots[index]
        self._next = (wanted + 1) & 0xFFFF
        if slot is not None and slot[0] == wanted:
            self._slots[index] = None
            self._count -= 1
            return slot[1]
        self.lost += 1
        return None

    def _drop_next(self) -> None:
        assert self._next is not None
        index = self._next % self.capacity
        if self._slots[index] is not None:
            self._slots[index] = None
            self._count -= 1
        self._next = (self._next + 1) & 0xFFFF

    def reset(self) -> None:
        self._slots = [None] * self.capacity
        self._next = None
        self._count = 0
        self._playing = False
