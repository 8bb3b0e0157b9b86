"""The actions of the contract (spec §6) and the typed requests parsed from their bodies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from telemeeting.wire.params import integer, json_list, required, scalar
from telemeeting.wire.phones import Phone, parse_phone
from telemeeting.wire.status import Status, WireError

TELEMEETING = "TeleMeeting.wx"
MEETING_QUERY = "MeetingQuery.wx"

CREATE_MEETING = "createMeeting"
INVITE = "inviteJoinMeeting"
DESTROY_MEETING = "destroyMeeting"
QUERY_MEETING = "queryMeeting"
MUTE_MEMBER = "muteMeetingMember"
UNMUTE_MEMBER = "unmuteMeetingMember"
KICK_MEMBER = "kickMeetingMember"
QUERY_EVENTS = "queryMeetingEvents"
# **extensions** (issue 14, in-call media)
START_RECORDING = "startMeetingRecording"
STOP_RECORDING = "stopMeetingRecording"
MUTE_ALL = "muteAllMeetingMembers"
UNMUTE_ALL = "unmuteAllMeetingMembers"
HOLD_MEMBER = "holdMeetingMember"
UNHOLD_MEMBER = "unholdMeetingMember"
PLAY_PROMPT = "playMeetingPrompt"
STOP_PROMPT = "stopMeetingPrompt"

#: Which actions each funcURL serves; anything else there is -3.
ACTIONS_BY_FUNC_URL: dict[str, frozenset[str]] = {
    TELEMEETING: frozenset(
        {
            CREATE_MEETING,
            INVITE,
            DESTROY_MEETING,
            QUERY_MEETING,
            MUTE_MEMBER,
            UNMUTE_MEMBER,
            KICK_MEMBER,
            START_RECORDING,
            STOP_RECORDING,
            MUTE_ALL,
            UNMUTE_ALL,
            HOLD_MEMBER,
            UNHOLD_MEMBER,
            PLAY_PROMPT,
            STOP_PROMPT,
        }
    ),
    MEETING_QUERY: frozenset({QUERY_MEETING, QUERY_EVENTS}),
}

NAME_MAX = 64
CUSTOM_PARM_MAX = 256
MAX_MEMBERS_CAP = 1000
_CONFID_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")
_CALLER_ID_RE = re.compile(r"\+?[0-9]{3,20}")
_FLAG_RE = re.compile(r"[01]")
_BEEP_RE = re.compile(r"[0-3]")
#: **extension** (issue 15): a dial-in meeting's PIN.
PIN_RE = re.compile(r"[0-9]{4,8}")
PROMPT_TEXT_MAX = 500
PROMPT_URL_MAX = 1024
#: A prompt's WAV: http(s), printable ASCII without spaces (percent-encode the rest).
_PROMPT_URL_RE = re.compile(r"https?://[!-~]{1,1016}")


@dataclass(frozen=True)
class Party:
    phone: Phone
    name: str = ""
    #: **extension** `"muted": "1"`: joins muted (heard once unmuted).
    muted: bool = False


@dataclass(frozen=True)
class CreateMeeting:
    creator: Phone | None = None
    meeting_name: str = ""
    parties: tuple[Party, ...] = ()
    confid: str | None = None
    srcclid: str = ""
    dstclid: str = ""
    shownumber: str = ""
    book: bool = False
    book_time: str | None = None
    max_members: int | None = None
    custom_parm: str = ""
    #: **extensions** (issue 14): record from the start; beeps (None: `[meetings] beep`); the
    #: meeting ends when the creator's leg ends.
    record: bool = False
    beep: int | None = None
    end_on_creator_leave: bool = False
    speaker_events: bool = False
    #: **extension** (issue 15): callers may dial in with the meeting number and a PIN (`pin`,
    #: 4-8 digits; None: the server makes one up).
    dialin: bool = False
    pin: str | None = None


@dataclass(frozen=True)
class Invite:
    confid: str
    parties: tuple[Party, ...] = field(default_factory=tuple)
    custom_parm: str = ""


@dataclass(frozen=True)
class MeetingRef:
    """destroyMeeting and queryMeeting: just the meeting."""

    confid: str


@dataclass(frozen=True)
class MemberRef:
    """mute / unmute / kick: a meeting and one member's phone."""

    confid: str
    phone: str


@dataclass(frozen=True)
class PromptRequest:
    """playMeetingPrompt (**extension**): `text` or `url` (one of them), to everyone or to
    `phone` only, once or in a loop."""

    confid: str
    text: str | None = None
    url: str | None = None
    phone: str | None = None
    loop: bool = False


@dataclass(frozen=True)
class StopPromptRequest:
    """stopMeetingPrompt (**extension**): silence the prompts playing to `phone`, or every
    prompt of the meeting."""

    confid: str
    phone: str | None = None


@dataclass(frozen=True)
class EventsQuery:
    confid: str
    after: int = 0
    limit: int = 100


def flag(body: dict[str, Any], name: str) -> bool:
    """A "0"/"1" switch (0 and 1 as numbers too); absent is off, anything else -101."""
    text = scalar(body, name)
    if text is None:
        return False
    if not _FLAG_RE.fullmatch(text):
        raise WireError(Status.INVALID_PARAMETER, f"{name} must be 0 or 1")
    return text == "1"


def _beep(body: dict[str, Any]) -> int | None:
    text = scalar(body, "beep")
    if text is None:
        return None
    if not _BEEP_RE.fullmatch(text):
        raise WireError(Status.INVALID_PARAMETER, "beep must be 0, 1, 2 or 3")
    return int(text)


def _custom_parm(body: dict[str, Any]) -> str:
    return scalar(body, "CustomParm", "customParm", max_len=CUSTOM_PARM_MAX) or ""


def _phone(text: str) -> Phone:
    phone = parse_phone(text)
    if phone is None:
        raise WireError(Status.INVALID_PHONE, f"bad phone {text!r}")
    return phone


def _confid(body: dict[str, Any]) -> str:
    confid = required(body, "confid")
    if not _CONFID_RE.fullmatch(confid):
        raise WireError(Status.INVALID_PARAMETER, "confid must be 1-32 of [0-9A-Za-z_-]")
    return confid


def _caller_id(body: dict[str, Any], name: str) -> str:
    value = scalar(body, name) or ""
    if value and not _CALLER_ID_RE.fullmatch(value):
        raise WireError(Status.INVALID_PHONE, f"bad caller id {name}")
    return value


def parse_parties(body: dict[str, Any], *, needed: bool) -> tuple[Party, ...]:
    """`parties` as an array or a string holding one; every phone checked before anything runs."""
    entries = json_list(body, "parties")
    if not entries:
        if needed:
            raise WireError(Status.MISSING_PARAMETER, "parties is required")
        return ()
    parties: list[Party] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise WireError(Status.INVALID_PARAMETER, "each party must be an object")
        phone_text = scalar(entry, "phone")
        if phone_text is None:
            raise WireError(Status.MISSING_PARAMETER, "a party has no phone")
        name = scalar(entry, "name", max_len=NAME_MAX) or ""
        muted = flag(entry, "muted")
        parties.append(Party(phone=_phone(phone_text), name=name, muted=muted))
    return tuple(parties)


def parse_create_meeting(body: dict[str, Any]) -> CreateMeeting:
    creator_text = scalar(body, "creator")
    name = scalar(body, "meetingname", max_len=NAME_MAX) or ""
    confid = _confid(body) if scalar(body, "confid") else None
    book_flag = scalar(body, "bookmeeting") or "0"
    if book_flag not in ("0", "1"):
        raise WireError(Status.INVALID_PARAMETER, "bookmeeting must be 0 or 1")
    book_time = scalar(body, "booktime")
    if book_flag == "1" and not book_time:
        raise WireError(Status.MISSING_PARAMETER, "booktime is required when booking")
    record, beep = flag(body, "record"), _beep(body)
    end_on_creator_leave = flag(body, "endoncreatorleave")
    speaker_events = flag(body, "speakerevents")
    if end_on_creator_leave and not creator_text:
        raise WireError(Status.INVALID_PARAMETER, "endoncreatorleave needs a creator")
    dialin, pin = flag(body, "dialin"), _pin(body)
    if pin is not None and not dialin:
        raise WireError(Status.INVALID_PARAMETER, "pin needs dialin 1")
    return CreateMeeting(
        creator=_phone(creator_text) if creator_text else None,
        meeting_name=name,
        parties=parse_parties(body, needed=False),
        confid=confid,
        srcclid=_caller_id(body, "srcclid"),
        dstclid=_caller_id(body, "dstclid"),
        shownumber=_caller_id(body, "shownumber"),
        book=book_flag == "1",
        book_time=book_time if book_flag == "1" else None,
        max_members=integer(body, "maxmembers", low=1, high=MAX_MEMBERS_CAP),
        custom_parm=_custom_parm(body),
        record=record,
        beep=beep,
        end_on_creator_leave=end_on_creator_leave,
        speaker_events=speaker_events,
        dialin=dialin,
        pin=pin,
    )


def _pin(body: dict[str, Any]) -> str | None:
    text = scalar(body, "pin")
    if text is None:
        return None
    if not PIN_RE.fullmatch(text):
        raise WireError(Status.INVALID_PARAMETER, "pin must be 4 to 8 digits")
    return text


def parse_invite(body: dict[str, Any]) -> Invite:
    confid = required(body, "confid")
    parties = parse_parties(body, needed=True)
    return Invite(confid=confid, parties=parties, custom_parm=_custom_parm(body))


def parse_meeting_ref(body: dict[str, Any]) -> MeetingRef:
    return MeetingRef(confid=required(body, "confid"))


def parse_member_ref(body: dict[str, Any]) -> MemberRef:
    confid = required(body, "confid")
    phone = required(body, "phone")
    return MemberRef(confid=confid, phone=_phone(phone).wire)


def parse_events_query(body: dict[str, Any]) -> EventsQuery:
    confid = required(body, "confid")
    after = integer(body, "after", low=0, high=2**31 - 1) or 0
    limit = integer(body, "limit", low=1, high=1000) or 100
    return EventsQuery(confid=confid, after=after, limit=limit)


def parse_prompt(body: dict[str, Any]) -> PromptRequest:
    confid = required(body, "confid")
    text = scalar(body, "text", max_len=PROMPT_TEXT_MAX)
    url = scalar(body, "url", max_len=PROMPT_URL_MAX)
    if (text is None) == (url is None):
        raise WireError(Status.INVALID_PARAMETER, "give exactly one of text and url")
    if url is not None and not _PROMPT_URL_RE.fullmatch(url):
        raise WireError(Status.INVALID_PARAMETER, "url must be an http(s) URL without spaces")
    phone = scalar(body, "phone")
    return PromptRequest(
        confid=confid,
        text=text,
        url=url,
        phone=_phone(phone).wire if phone else None,
        loop=flag(body, "loop"),
    )


def parse_stop_prompt(body: dict[str, Any]) -> StopPromptRequest:
    confid = required(body, "confid")
    phone = scalar(body, "phone")
    return StopPromptRequest(confid=confid, phone=_phone(phone).wire if phone else None)
