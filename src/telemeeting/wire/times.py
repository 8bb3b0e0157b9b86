"""Wall-clock times on the wire: `yyyy-MM-dd HH:mm:ss` in the platform's zone (Asia/Shanghai)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

WIRE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_BOOK_FORMATS = ("%Y%m%d%H%M%S", WIRE_TIME_FORMAT)


def format_wire_time(epoch: float | None, zone: ZoneInfo) -> str:
    """`""` for a time that has not happened yet, as the real CDRs do."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, zone).strftime(WIRE_TIME_FORMAT)


def parse_wall_clock(text: str, zone: ZoneInfo) -> float | None:
    """`yyyyMMddHHmmss` or `yyyy-MM-dd HH:mm:ss` in `zone` as Unix seconds; None if neither."""
    for fmt in _BOOK_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    return None
