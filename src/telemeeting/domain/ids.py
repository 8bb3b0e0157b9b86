"""Row ids that sort by creation time: 32 lowercase hex digits, the first 12 the milliseconds
since the Unix epoch, the other 20 random (80 bits).

Why not uuid4: every table and index keyed by a random id (meetings, legs, events, and the
indexes that start with a meeting id: events, legs, orders) takes each new row on a random leaf
page. On PostgreSQL the first change of a page after a checkpoint writes the whole 8 KiB page to
the WAL, so with random keys nearly every insert after a checkpoint paid a page image, and the
pages being written were spread over the whole index instead of its last few (the soak's p99 rose
from 30-55 ms to 0.2-1 s for the minutes a checkpoint lasted: docs/performance.md, Soak). With a
time prefix, new rows land on the index's right edge, where the pages are already dirty and
cached. The shape (32 hex digits) is the one uuid4().hex had, so stored rows and new ones mix;
none of these ids is part of the API (a meeting's room number is its `meid`).
"""

from __future__ import annotations

import secrets
import time

#: Hex digits of the millisecond time prefix (48 bits: until the year 10889).
TIME_DIGITS = 12
ID_DIGITS = 32


def time_ordered_id(now_ns: int | None = None) -> str:
    """A new id; ids made in a later millisecond sort after this one (as strings)."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    prefix = f"{ms % 16**TIME_DIGITS:0{TIME_DIGITS}x}"
    return prefix + secrets.token_hex((ID_DIGITS - TIME_DIGITS) // 2)
