"""Typed values the SDK takes and returns: parties, results, meetings, events and pushes.

They are frozen dataclasses built from the wire dictionaries by `from_wire`; each keeps the
dictionary it came from in `raw`, so fields the server adds later are never out of reach.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from telemeeting.wire import account as wire_account
from telemeeting.wire import callbacks

# The state names (spec §6.4, §7) are the contract's; exported here too, as the SDK always has.
from telemeeting.wire.states import ACTIVE as ACTIVE
from telemeeting.wire.states import ALERTING as ALERTING
from telemeeting.wire.states import ANSWER, DISCONNECT, ENDED, STATE_DESC_SEPARATOR
from telemeeting.wire.states import BOOKED as BOOKED
from telemeeting.wire.states import CALLIN as CALLIN
from telemeeting.wire.states import CALLOUT as CALLOUT
from telemeeting.wire.states import SETTLED_LEG_STATES as SETTLED_STATES
from telemeeting.wire.times import WIRE_TIME_FORMAT

#: The platform's wall-clock zone; wire times (`yyyy-MM-dd HH:mm:ss`) are in it.
DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")


def parse_wire_time(text: Any, zone: ZoneInfo = DEFAULT_ZONE) -> datetime | None:
    """`yyyy-MM-dd HH:mm:ss` in `zone` as an aware datetime; None for `""` (not yet)."""
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, WIRE_TIME_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "" if value is None else str(value)


# ---- what callers send -------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """One person to dial. `extension` is sent as DTMF after the callee answers (spec §6.2);
    `muted` (**extension**) makes the party join muted."""

    phone: str
    name: str = ""
    extension: str = ""
    muted: bool = False

    def __post_init__(self) -> None:
        if self.extension and "," in self.phone:
            raise ValueError("give the extension either after ',' in phone or as extension=")

    @property
    def wire_phone(self) -> str:
        """The phone as the contract spells it: `number` or `number,extension`."""
        return f"{self.phone},{self.extension}" if self.extension else self.phone

    def to_wire(self) -> dict[str, str]:
        entry = {"phone": self.wire_phone}
        if self.name:
            entry["name"] = self.name
        if self.muted:
            entry["muted"] = "1"
        return entry

    @classmethod
    def of(cls, value: PartyLike) -> Party:
        """Accept what is handy: a Party, `(name, phone)`, `{"name", "phone"[, "extension"]}`, or
        a bare phone string."""
        if isinstance(value, Party):
            return value
        if isinstance(value, str):
            return cls(phone=value)
        if isinstance(value, Mapping):
            return cls(
                phone=_text(value, "phone"),
                name=_text(value, "name"),
                extension=_text(value, "extension"),
                muted=_text(value, "muted").lower() in ("1", "true"),
            )
        if isinstance(value, tuple | list) and len(value) == 2:
            name, phone = value
            return cls(phone=str(phone), name=str(name))
        raise TypeError(f"cannot make a party of {value!r}; use (name, phone), a dict or Party")


PartyLike: TypeAlias = "Party | tuple[str, str] | Mapping[str, Any] | str"


def parties_to_wire(parties: Iterable[PartyLike]) -> list[dict[str, str]]:
    return [Party.of(party).to_wire() for party in parties]


# ---- what calls return -------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A call the server accepted. For `invite`, every callback of its legs carries
    `request_id` as `requestid`."""

    request_id: str


@dataclass(frozen=True)
class CreatedMeeting:
    """createMeeting's answer: `meid` is what later calls pass as the meeting (`confid`)."""

    meid: str
    request_id: str
    #: **extension** (issue 15), meetings created with `dialin`: the PIN callers key after the
    #: meeting number, and the numbers they may call.
    pin: str = ""
    dialin_numbers: tuple[str, ...] = ()

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any]) -> CreatedMeeting:
        return cls(
            meid=str(envelope.get("meid", "")),
            request_id=str(envelope["requestId"]),
            pin=str(envelope.get("pin") or ""),
            dialin_numbers=tuple(str(n) for n in envelope.get("dialinnumbers") or ()),
        )


@dataclass(frozen=True)
class Member:
    """One leg of a meeting as queryMeeting reports it. A phone invited twice has two."""

    name: str
    phone: str
    state: str
    state_desc: str
    request_id: str
    join_time: datetime | None
    leave_time: datetime | None
    muted: bool
    #: **extension**: talking now (meetings with speaker events only; None elsewhere).
    speaking: bool | None = None
    #: **extension**: on hold (hears music, neither hears nor is heard by the meeting).
    held: bool = False
    #: **extension** (issue 15): "in" for a caller who dialled in, else "out".
    direction: str = "out"
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def settled(self) -> bool:
        """Answered or gone: it will not move again by itself."""
        return self.state in SETTLED_STATES

    @property
    def was_answered(self) -> bool:
        return self.join_time is not None or self.state == ANSWER

    @property
    def reason(self) -> str:
        """For a disconnected leg, why (正常, 用户忙, 无应答, 拒接, 号码无效, …); else `""`."""
        if self.state != DISCONNECT:
            return ""
        return self.state_desc.partition(STATE_DESC_SEPARATOR)[2]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE) -> Member:
        return cls(
            name=_text(data, "name"),
            phone=_text(data, "phone"),
            state=_text(data, "state"),
            state_desc=_text(data, "stateDesc"),
            request_id=_text(data, "requestid"),
            join_time=parse_wire_time(data.get("jointime"), zone),
            leave_time=parse_wire_time(data.get("leavetime"), zone),
            muted=bool(data.get("muted", False)),
            speaking=data["speaking"] if isinstance(data.get("speaking"), bool) else None,
            held=data.get("held") is True or data.get("held") in ("1", 1),
            direction=_text(data, "direction") or "out",
            raw=dict(data),
        )


@dataclass(frozen=True)
class Recording:
    """**extension**: one recording of a meeting (queryMeeting's `recordings`). `url` is a
    signed download link (it expires); `seconds` and `bytes` are 0 until the MP3 is written;
    `end` is None while it records."""

    url: str
    start: datetime | None
    end: datetime | None
    seconds: int
    bytes: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ready(self) -> bool:
        """The MP3 is written: `url` serves it."""
        return self.bytes > 0

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE) -> Recording:
        return cls(
            url=_text(data, "url"),
            start=parse_wire_time(data.get("start"), zone),
            end=parse_wire_time(data.get("end"), zone),
            seconds=int(data.get("seconds") or 0),
            bytes=int(data.get("bytes") or 0),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Meeting:
    """queryMeeting's `meeting`: its state and every leg ever dialled, in invitation order."""

    meid: str
    name: str
    state: str
    create_time: datetime | None
    end_time: datetime | None
    max_members: int
    members: tuple[Member, ...]
    #: **extension**: the meeting's recordings, oldest first (empty when never recorded).
    recordings: tuple[Recording, ...] = ()
    #: **extension** (issue 15): a dial-in meeting's PIN and numbers ("" and () otherwise).
    pin: str = ""
    dialin_numbers: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ended(self) -> bool:
        return self.state == ENDED

    @property
    def settled(self) -> bool:
        """No leg is still dialling or ringing."""
        return all(member.settled for member in self.members)

    def member(self, phone: str) -> Member | None:
        """The latest leg of `phone` (a phone may be invited again after its leg ended)."""
        found = [member for member in self.members if member.phone == phone]
        return found[-1] if found else None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE) -> Meeting:
        return cls(
            meid=_text(data, "meid"),
            name=_text(data, "meetingname"),
            state=_text(data, "state"),
            create_time=parse_wire_time(data.get("createtime"), zone),
            end_time=parse_wire_time(data.get("endtime"), zone),
            max_members=int(data.get("maxmembers") or 0),
            members=tuple(Member.from_wire(m, zone) for m in data.get("members") or ()),
            recordings=tuple(Recording.from_wire(r, zone) for r in data.get("recordings") or ()),
            pin=_text(data, "pin"),
            dialin_numbers=tuple(str(n) for n in data.get("dialinnumbers") or ()),
            raw=dict(data),
        )


# ---- pushes (spec §7): from a webhook or replayed by queryMeetingEvents ------------------------


@dataclass(frozen=True)
class CallState:
    """A leg's progress (`?CallState`): callout → alerting → answer → disconnect."""

    request_id: str
    meid: str
    phone: str
    name: str
    state: str
    state_desc: str
    timestamp: datetime | None
    custom_parm: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    kind = callbacks.CALL_STATE

    @property
    def reason(self) -> str:
        """For `disconnect`, the half of stateDesc after `|` (用户忙, 会议结束, …)."""
        if self.state != DISCONNECT:
            return ""
        return self.state_desc.partition(STATE_DESC_SEPARATOR)[2]

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE) -> CallState:
        return cls(
            request_id=_text(data, "requestid"),
            meid=_text(data, "meid"),
            phone=_text(data, "dsc"),
            name=_text(data, "name"),
            state=_text(data, "state"),
            state_desc=_text(data, "stateDesc"),
            timestamp=parse_wire_time(data.get("timestamp"), zone),
            custom_parm=_text(data, "customParm"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CallRecord:
    """One CDR entry (`?Call`, body `{"cdr": [...]}`): sent once when a leg ends."""

    request_id: str
    appid: str
    meid: str
    caller: str
    called: str
    start_time: datetime | None
    end_time: datetime | None
    duration: int
    amount: float
    custom_parm: str
    state_desc: str
    tapes_url: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: **extension** (issue 15): "in" for a caller who dialled in (`caller` is then the dial-in
    #: number they called, `called` their own number), else "out".
    direction: str = "out"

    kind = callbacks.CDR

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE) -> CallRecord:
        return cls(
            request_id=_text(data, "requestid"),
            appid=_text(data, "appid"),
            meid=_text(data, "meid"),
            caller=_text(data, "caller"),
            called=_text(data, "called"),
            start_time=parse_wire_time(data.get("calledstime"), zone),
            end_time=parse_wire_time(data.get("calledetime"), zone),
            duration=int(data.get("duration") or 0),
            amount=float(data.get("oriamount") or 0.0),
            custom_parm=_text(data, "customParm"),
            state_desc=_text(data, "stateDesc"),
            tapes_url=_text(data, "tapesurl"),
            raw=dict(data),
            direction=_text(data, "direction") or "out",
        )


@dataclass(frozen=True)
class CdrCursor:
    """Where a CDR pull stands: after the CDR with this `requestid` and `called` (`"0"`: before
    the first). `called` (**extension**, sent as `lastcalled`) makes the position exact where a
    requestid alone names several CDRs (every party of one invitation shares it)."""

    request_id: str = "0"
    called: str | None = None

    @classmethod
    def after(cls, record: CallRecord) -> CdrCursor:
        return cls(record.request_id, record.called)


@dataclass(frozen=True)
class Balance:
    """getBlance's answer. `balance` is exact (two decimals); an account whose billing is off
    shows `UNLIMITED` (`unlimited` is then True)."""

    account_sid: str
    balance: Decimal
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    UNLIMITED = wire_account.UNLIMITED_BALANCE

    @property
    def unlimited(self) -> bool:
        return self.balance >= self.UNLIMITED

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Balance:
        try:
            balance = wire_account.cents(data.get(wire_account.BALANCE_FIELD) or 0)
        except ArithmeticError:
            balance = Decimal("0.00")
        return cls(
            account_sid=_text(data, wire_account.ACCOUNT_SID_FIELD),
            balance=balance,
            raw=dict(data),
        )


@dataclass(frozen=True)
class MeetingStateChange:
    """The meeting started or ended (`?MeetingState`, an extension of the contract), or, with
    speaker events, who is talking now (`state` "speakers", `speakers` their phones)."""

    meid: str
    state: str
    reason: str
    timestamp: datetime | None
    speakers: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    kind = callbacks.MEETING_STATE

    @classmethod
    def from_wire(
        cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE
    ) -> MeetingStateChange:
        return cls(
            meid=_text(data, "meid"),
            state=_text(data, "state"),
            reason=_text(data, "reason"),
            timestamp=parse_wire_time(data.get("timestamp"), zone),
            speakers=tuple(str(phone) for phone in data.get("speakers") or ()),
            raw=dict(data),
        )


PushEvent: TypeAlias = CallState | CallRecord | MeetingStateChange


def parse_push(
    kind: str, body: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE
) -> list[PushEvent]:
    """The typed events of one push body of `kind` (a CDR push may hold several records)."""
    if not isinstance(body, Mapping):
        raise ValueError("a push body is a JSON object")
    if kind == callbacks.CALL_STATE:
        return [CallState.from_wire(body, zone)]
    if kind == callbacks.CDR:
        records = body.get("cdr")
        if not isinstance(records, list):
            raise ValueError('a CDR push is {"cdr": [...]}')
        return [CallRecord.from_wire(record, zone) for record in records]
    if kind == callbacks.MEETING_STATE:
        return [MeetingStateChange.from_wire(body, zone)]
    raise ValueError(f"unknown push kind {kind!r}; expected one of {', '.join(callbacks.KINDS)}")


@dataclass(frozen=True)
class MeetingEvent:
    """One event replayed by queryMeetingEvents: exactly the body that was (or would have been)
    pushed, with its per-meeting sequence number."""

    seq: int
    event_id: str
    type: str
    body: dict[str, Any]
    events: tuple[PushEvent, ...] = field(default=(), compare=False)

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], zone: ZoneInfo = DEFAULT_ZONE) -> MeetingEvent:
        kind = _text(data, "type")
        body = dict(data.get("body") or {})
        try:
            typed = tuple(parse_push(kind, body, zone))
        except (ValueError, TypeError):
            typed = ()  # a kind this SDK does not know yet: the raw body is still there
        return cls(
            seq=int(data.get("seq") or 0),
            event_id=_text(data, "eventId"),
            type=kind,
            body=body,
            events=typed,
        )
