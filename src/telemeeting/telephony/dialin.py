"""Dial-in (issue 15) between the carrier and the service: a caller who keyed a meeting number
and PIN asks to be admitted; the service answers with a verdict and, when admitted, the leg it
recorded (state `callin`). The media node then joins the call to the meeting and reports it
answered, as it does for a leg it dialled.

The question travels from the media process to the service over the node's pipe (node.py,
driver.py) or, with the engine in-process, straight to the admitter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from telemeeting.telephony.ivr.machine import Verdict


@dataclass(frozen=True)
class AdmitRequest:
    meid: str
    pin: str
    #: The caller's number (the From user part; "" when withheld or not a number).
    caller: str
    #: The dial-in number they called.
    called: str


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    meeting_id: str = ""
    leg_id: str = ""
    muted: bool = False

    def message(self) -> tuple[str, str, str, bool]:
        return self.verdict.value, self.meeting_id, self.leg_id, self.muted

    @classmethod
    def from_message(cls, parts: tuple[object, ...]) -> Admission:
        verdict, meeting_id, leg_id, muted = parts
        return cls(Verdict(str(verdict)), str(meeting_id), str(leg_id), bool(muted))


REFUSED = Admission(Verdict.UNAVAILABLE)

#: Asked by the engine; answers whether the caller may join, and as which leg.
Admitter = Callable[[AdmitRequest], Awaitable[Admission]]
