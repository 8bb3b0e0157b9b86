"""The dial-in IVR as a pure state machine: digits, silences and the service's verdict in,
actions (play a prompt, check the numbers, hang up) out. No clock, no audio, no SIP: the call
that runs it (telephony/sip/inbound.py) owns the timers and the media, so this module is tested
digit by digit.

The dialogue: the meeting number ending in `#` (skipped when the dialled number is bound to one
meeting), then the PIN ending in `#`; `*` starts the current entry again. The pair is checked
at once, so a wrong meeting number and a wrong PIN sound the same (no probing for meetings).
Three wrong pairs end the call; silence repeats the prompt once, then ends the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

#: A caller who keys nothing for this long hears the prompt again, then is released.
SILENCE_SECONDS = 10.0
#: Wrong meeting number/PIN pairs before the caller is released.
MAX_TRIES = 3
#: Longer entries are wrong without asking the service (meeting numbers are at most 32).
MAX_ENTRY = 32


class Prompt(StrEnum):
    """What the IVR can say (the texts are in service/dialin.py, in each language)."""

    ENTER_MEETING = "enter_meeting"
    ENTER_PIN = "enter_pin"
    WRONG = "wrong"
    TOO_MANY_TRIES = "too_many_tries"
    NOT_STARTED = "not_started"
    MEETING_FULL = "meeting_full"
    UNAVAILABLE = "unavailable"
    GOODBYE = "goodbye"


class Verdict(Enum):
    """The service's answer to a meeting number and PIN."""

    ADMITTED = "admitted"
    WRONG = "wrong"  # no such dial-in meeting, or a wrong PIN, or it has ended
    NOT_STARTED = "not_started"  # booked, not started yet
    FULL = "full"  # maxmembers reached
    UNAVAILABLE = "unavailable"  # the meeting lives on another media node, or an error


@dataclass(frozen=True)
class Play:
    prompt: Prompt
    #: Release the call once the prompt has been heard.
    then_hang_up: bool = False


@dataclass(frozen=True)
class Check:
    meid: str
    pin: str


@dataclass(frozen=True)
class Join:
    """Admitted: the caller leaves the IVR for the meeting."""


Action = Play | Check | Join


class Step(Enum):
    MEETING = "meeting"
    PIN = "pin"
    CHECKING = "checking"
    DONE = "done"


_FINAL = {
    Verdict.NOT_STARTED: Prompt.NOT_STARTED,
    Verdict.FULL: Prompt.MEETING_FULL,
    Verdict.UNAVAILABLE: Prompt.UNAVAILABLE,
}


class Ivr:
    def __init__(self, bound_meid: str = "", max_tries: int = MAX_TRIES) -> None:
        self.bound_meid = bound_meid
        self.max_tries = max_tries
        self.step = Step.MEETING
        self.tries = 0
        self.silences = 0
        self.meid = ""
        self._entry = ""

    @property
    def finished(self) -> bool:
        return self.step is Step.DONE

    def start(self) -> list[Action]:
        return self._ask_first()

    def _ask_first(self) -> list[Action]:
        self._entry = ""
        if self.bound_meid:
            self.meid = self.bound_meid
            self.step = Step.PIN
            return [Play(Prompt.ENTER_PIN)]
        self.meid = ""
        self.step = Step.MEETING
        return [Play(Prompt.ENTER_MEETING)]

    def digit(self, digit: str) -> list[Action]:
        """One key the caller pressed (0-9, *, #; A-D are ignored)."""
        if self.step not in (Step.MEETING, Step.PIN):
            return []
        self.silences = 0
        if digit == "*":
            self._entry = ""
            return []
        if digit == "#":
            return self._entered()
        if digit.isdigit() and len(digit) == 1:
            self._entry += digit
        return []

    def _entered(self) -> list[Action]:
        entry, self._entry = self._entry, ""
        if not entry:
            return []  # a stray `#`: keep waiting
        if self.step is Step.MEETING:
            self.meid = entry
            self.step = Step.PIN
            return [Play(Prompt.ENTER_PIN)]
        if len(entry) > MAX_ENTRY or len(self.meid) > MAX_ENTRY:
            return self.checked(Verdict.WRONG)
        self.step = Step.CHECKING
        return [Check(self.meid, entry)]

    def silence(self) -> list[Action]:
        """Nothing was keyed for SILENCE_SECONDS after the last prompt or key."""
        if self.step not in (Step.MEETING, Step.PIN):
            return []
        self.silences += 1
        self._entry = ""
        if self.silences >= 2:
            self.step = Step.DONE
            return [Play(Prompt.GOODBYE, then_hang_up=True)]
        prompt = Prompt.ENTER_PIN if self.step is Step.PIN else Prompt.ENTER_MEETING
        return [Play(prompt)]

    def checked(self, verdict: Verdict) -> list[Action]:
        """The service's answer to the last Check."""
        if verdict is Verdict.ADMITTED:
            self.step = Step.DONE
            return [Join()]
        if verdict in _FINAL:
            self.step = Step.DONE
            return [Play(_FINAL[verdict], then_hang_up=True)]
        self.tries += 1
        if self.tries >= self.max_tries:
            self.step = Step.DONE
            return [Play(Prompt.TOO_MANY_TRIES, then_hang_up=True)]
        self.silences = 0
        return [Play(Prompt.WRONG), *self._ask_first()]
