"""The CDR pull (话单获取): `POST /{201512|201612}/sid/{accountSID}/call/CallCdr.wx`.

Two actions: `getCdrByResId` pages through the account's CDRs in the order they were written
(`lastresid` "0" for the first page, then the `requestid` of the last CDR received; `limit` the
page size, or 0 for exactly the CDRs whose requestid is `lastresid`), and `getCdrByTime` gives
the CDRs of one hour (`pdate` yyyyMMdd or yyyy-MM-dd, `ptime` 0–23, in the platform's zone).
The answer is the envelope plus `"cdr": [...]`, each entry exactly as the `Call` push carried it
(`wire/callbacks.py`). `fid` (the product number on the real platform) is accepted and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from telemeeting.wire.params import integer, required, scalar
from telemeeting.wire.status import Status, WireError

CALL_CDR = "CallCdr.wx"
BY_REQUEST = "getCdrByResId"
BY_TIME = "getCdrByTime"
ACTIONS = frozenset({BY_REQUEST, BY_TIME})
#: The real platform serves CallCdr.wx on 201512; clients that use 201612 everywhere work too.
VERSIONS = ("201512", "201612")

CDR_FIELD = "cdr"
#: `tapesurl` of a call no recording covers (what the real platform sends).
NO_TAPES = "NoTapes"
#: **extension**: between the links when several recordings cover one call.
TAPES_SEPARATOR = ";"
#: `lastresid` of the first page.
FROM_START = "0"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_ID_MAX = 64
_DATE_FORMATS = (
    (re.compile(r"[0-9]{8}"), "%Y%m%d"),
    (re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"), "%Y-%m-%d"),
)


@dataclass(frozen=True)
class CdrsAfter:
    """getCdrByResId. `last_called` (**extension**) is the `called` of the last CDR received:
    with `last_request_id` it names exactly one CDR, where a requestid alone may name several
    (every party of one invitation shares it)."""

    last_request_id: str
    limit: int
    last_called: str | None = None

    @property
    def from_start(self) -> bool:
        return self.last_request_id == FROM_START

    @property
    def lookup(self) -> bool:
        """`limit` 0: the CDRs of `last_request_id` itself, not a page after it."""
        return self.limit == 0


@dataclass(frozen=True)
class CdrsInHour:
    """getCdrByTime: the CDRs written in one hour of the platform's wall clock."""

    day: date
    hour: int

    def window(self, zone: ZoneInfo) -> tuple[float, float]:
        """[start, end) of the hour as Unix seconds."""
        start = datetime(self.day.year, self.day.month, self.day.day, self.hour, tzinfo=zone)
        return start.timestamp(), start.timestamp() + 3600


def parse_cdrs_after(body: dict[str, Any]) -> CdrsAfter:
    last = required(body, "lastresid", max_len=_ID_MAX)
    limit = integer(body, "limit", low=0, high=MAX_LIMIT)
    if limit is None:
        limit = DEFAULT_LIMIT
    if last == FROM_START and limit == 0:
        raise WireError(Status.INVALID_PARAMETER, "limit 0 needs a lastresid")
    last_called = scalar(body, "lastcalled", max_len=_ID_MAX)
    return CdrsAfter(last_request_id=last, limit=limit, last_called=last_called)


def parse_cdrs_in_hour(body: dict[str, Any]) -> CdrsInHour:
    text = required(body, "pdate")
    hour = integer(body, "ptime", low=0, high=23)
    if hour is None:
        raise WireError(Status.MISSING_PARAMETER, "ptime is required")
    for pattern, fmt in _DATE_FORMATS:
        if pattern.fullmatch(text):
            try:
                return CdrsInHour(datetime.strptime(text, fmt).date(), hour)
            except ValueError:
                break
    raise WireError(Status.INVALID_PARAMETER, "pdate is not yyyyMMdd or yyyy-MM-dd")
