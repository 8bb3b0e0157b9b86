"""Final SIP statuses to the ytx disconnect reasons (spec §7)."""

from __future__ import annotations

from telemeeting.domain.model import EndReason

_BY_STATUS = {
    486: EndReason.BUSY,
    600: EndReason.BUSY,
    408: EndReason.NO_ANSWER,
    480: EndReason.NO_ANSWER,
    487: EndReason.NO_ANSWER,  # our CANCEL at the ring timeout
    603: EndReason.DECLINED,
    404: EndReason.NOT_FOUND,
    484: EndReason.NOT_FOUND,
    604: EndReason.NOT_FOUND,
}


def reason_for_status(status: int) -> EndReason:
    return _BY_STATUS.get(status, EndReason.FAILED)
