"""Wall-clock times on the wire: `yyyy-MM-dd HH:mm:ss` in the platform's zone (Asia/Shanghai)."""

from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

WIRE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# strptime accepts fewer digits than the format implies; the pattern insists on every digit.
_BOOK_FORMATS = (
    (re.compile(r"[0-9]{14}"), "%Y%m%d%H%M%S"),
    (re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"), WIRE_TIME_FORMAT),
)


@lru_cache(maxsize=8192)
def format_second(second: int, zone: ZoneInfo, fmt: str) -> str:
    """The wall clock of a whole Unix second in `zone`: cached, because every request and
    every push formats the same few seconds again and again."""
    return datetime.fromtimestamp(second, zone).strftime(fmt)


def format_wire_time(epoch: float | None, zone: ZoneInfo) -> str:
    """`""` for a time that has not happened yet, as the real CDRs do."""
    if epoch is None:
        return ""
    return format_second(math.floor(epoch), zone, WIRE_TIME_FORMAT)


def parse_wall_clock(text: str, zone: tzinfo) -> float | None:
    """`yyyyMMddHHmmss` or `yyyy-MM-dd HH:mm:ss` in `zone` (a region or a fixed offset) as Unix
    seconds; None if neither."""
    for pattern, fmt in _BOOK_FORMATS:
        if not pattern.fullmatch(text):
            continue
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    return None
