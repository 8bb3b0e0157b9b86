"""Phone numbers as the contract accepts them (spec §6.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PHONE_RE = re.compile(r"(\+?[0-9]{3,20})(?:,([0-9*#]{1,16}))?")


@dataclass(frozen=True)
class Phone:
    """A dialable number with an optional extension to send as DTMF after answer."""

    number: str
    extension: str = ""

    @property
    def wire(self) -> str:
        return f"{self.number},{self.extension}" if self.extension else self.number


def parse_phone(text: str) -> Phone | None:
    """None for anything but `+?digits{3,20}` with an optional `,extension` of 0-9*#."""
    match = _PHONE_RE.fullmatch(text)
    if not match:
        return None
    return Phone(match.group(1), match.group(2) or "")
