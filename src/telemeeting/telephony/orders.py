"""Carrier orders: one typed format, one encoder and decoder.

The service writes orders into the database in the transaction of the change that causes them;
each is addressed to one server (the meeting's owner unless the service/routing.py rules say
otherwise), which claims it and hands it to its driver (`carry_out`). The SIP driver uses the
same encoding on the pipe to its media processes; `LinkServer`/`UnlinkServer`/`RelinkServer`
and `ServerPresence` only travel between servers (issue 16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson


@dataclass(frozen=True)
class DialOrder:
    """Call `number` (then send `extension` as DTMF once answered) for a leg of a meeting."""

    meeting_id: str
    leg_id: str
    number: str
    extension: str
    caller_id: str
    env: str
    #: The meeting's owner, when its workers were full and it handed this dial to another
    #: server, which links the meeting to it first (issue 16); "" for a dial of the owner.
    home: str = ""


@dataclass(frozen=True)
class HangUp:
    """Cancel a ringing leg or hang up an answered one; no report follows."""

    meeting_id: str
    leg_id: str
    env: str


@dataclass(frozen=True)
class SetMuted:
    meeting_id: str
    leg_id: str
    muted: bool
    env: str


@dataclass(frozen=True)
class EndMeeting:
    """Release everything the meeting still holds."""

    meeting_id: str
    env: str


@dataclass(frozen=True)
class ConfigureMeeting:
    """The meeting's in-call media settings, sent before its first dial (issue 14)."""

    meeting_id: str
    env: str
    #: 0 none, 1 on join, 2 on leave, 3 both.
    beep: int = 0
    creator_leg: str = ""
    end_on_creator_leave: bool = False
    speaker_events: bool = False


@dataclass(frozen=True)
class StartRecording:
    """Record the meeting's mix into `path` (a WAV; the MP3 is written beside it on stop)."""

    meeting_id: str
    recording_id: str
    path: str
    env: str


@dataclass(frozen=True)
class StopRecording:
    meeting_id: str
    recording_id: str
    env: str


@dataclass(frozen=True)
class HoldMember:
    """Put a member on hold (music, neither hearing nor heard) or take them off it."""

    meeting_id: str
    leg_id: str
    held: bool
    env: str


@dataclass(frozen=True)
class PlayPrompt:
    """Play a prompt (8 kHz mono int16 samples in the file at `path`) to the whole meeting,
    or to one leg; `loop` repeats it until the next prompt to the same members."""

    meeting_id: str
    path: str
    env: str
    leg_id: str = ""
    loop: bool = False


@dataclass(frozen=True)
class StopPrompt:
    """Silence the prompts playing to one leg, or (no `leg_id`) every prompt of the meeting."""

    meeting_id: str
    env: str
    leg_id: str = ""


@dataclass(frozen=True)
class LinkServer:
    """One step of linking a meeting between two servers (issue 16), sent through the orders
    table to one server. The extending server sends its end (`reply` False) to the meeting's
    home; the home points its end at it and replies with its own end (`reply` True), or with
    `error` when it cannot. `server` is the sender. The home's reply carries the meeting's
    in-call settings as it runs them (`settings`: an encoded `ConfigureMeeting`, "" none): a
    server joining later missed the one sent at the meeting's start."""

    meeting_id: str
    server: str
    env: str
    host: str = ""
    port: int = 0
    codec: str = ""
    reply: bool = False
    error: str = ""
    settings: str = ""


@dataclass(frozen=True)
class UnlinkServer:
    """Close the meeting's link to `server` (its part of the meeting is over, or it died)."""

    meeting_id: str
    server: str
    env: str


@dataclass(frozen=True)
class RelinkServer:
    """The meeting's home was `server`, which died; the meeting's owner now is its home. A
    server linked to it closes that link and links to the owner; the owner drops its own."""

    meeting_id: str
    server: str
    env: str


@dataclass(frozen=True)
class ServerPresence:
    """A member of a meeting that spans servers joined (or left) on `server`: the meeting's
    other servers beep to their own members, as the meeting's `beep` wants (the links carry
    voices only)."""

    meeting_id: str
    leg_id: str
    joined: bool
    server: str
    env: str


ServerLinkOrder = LinkServer | UnlinkServer | RelinkServer | ServerPresence

MediaOrder = (
    ConfigureMeeting | StartRecording | StopRecording | HoldMember | PlayPrompt | StopPrompt
)
MEDIA_ORDERS = (
    ConfigureMeeting, StartRecording, StopRecording, HoldMember, PlayPrompt, StopPrompt
)  # fmt: skip

Order = DialOrder | HangUp | SetMuted | EndMeeting | MediaOrder | ServerLinkOrder

_KINDS: dict[str, type[Order]] = {
    "dial": DialOrder,
    "hang_up": HangUp,
    "set_muted": SetMuted,
    "end_meeting": EndMeeting,
    "meeting_media": ConfigureMeeting,  # kinds fit orders.kind, VARCHAR(16)
    "start_recording": StartRecording,
    "stop_recording": StopRecording,
    "hold_member": HoldMember,
    "play_prompt": PlayPrompt,
    "stop_prompt": StopPrompt,
    "link_server": LinkServer,
    "unlink_server": UnlinkServer,
    "relink_server": RelinkServer,
    "presence": ServerPresence,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}


class UnknownOrder(ValueError):
    """A stored or received order this version cannot read (newer writer, damaged row)."""


def kind_of(order: Order) -> str:
    return _NAMES[type(order)]


def encode(order: Order) -> str:
    """The order's fields as compact JSON (its kind is stored beside it)."""
    return orjson.dumps(order).decode("utf-8")  # orjson serializes dataclasses natively


def settings_of(order: LinkServer) -> ConfigureMeeting | None:
    """The meeting settings a home's link reply carries; None without (or unreadable ones,
    or another meeting's)."""
    if not order.settings:
        return None
    try:
        found = decode(_NAMES[ConfigureMeeting], order.settings)
    except UnknownOrder:
        return None
    if not isinstance(found, ConfigureMeeting) or found.meeting_id != order.meeting_id:
        return None
    return found


def decode(kind: str, body: str) -> Order:
    cls = _KINDS.get(kind)
    if cls is None:
        raise UnknownOrder(f"unknown order kind {kind!r}")
    try:
        fields = json.loads(body)
        return cls(**fields)
    except (ValueError, TypeError) as exc:
        raise UnknownOrder(f"unreadable {kind} order: {exc}") from exc


class Carrier(Protocol):
    """What carries orders out: a `Driver`."""

    async def dial(self, order: DialOrder) -> None: ...

    async def hang_up(self, meeting_id: str, leg_id: str) -> None: ...

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None: ...

    async def end_meeting(self, meeting_id: str) -> None: ...

    async def media(self, order: MediaOrder) -> None: ...


@runtime_checkable
class ServerLinker(Protocol):
    """A carrier that can link a meeting to other servers (the SIP driver, issue 16)."""

    async def link(self, order: ServerLinkOrder) -> None: ...


async def carry_out(carrier: Carrier, order: Order) -> None:
    """Hand one order to the driver method that performs it."""
    if isinstance(order, LinkServer | UnlinkServer | RelinkServer | ServerPresence):
        if not isinstance(carrier, ServerLinker):
            raise UnknownOrder(f"{type(carrier).__name__} does not link servers")
        await carrier.link(order)
    elif isinstance(order, DialOrder):
        await carrier.dial(order)
    elif isinstance(order, HangUp):
        await carrier.hang_up(order.meeting_id, order.leg_id)
    elif isinstance(order, SetMuted):
        await carrier.set_muted(order.meeting_id, order.leg_id, order.muted)
    elif isinstance(order, MEDIA_ORDERS):
        await carrier.media(order)
    else:
        await carrier.end_meeting(order.meeting_id)


def to_message(order: Order) -> tuple[str, str]:
    """The order as sent over a pipe to a media process."""
    return kind_of(order), encode(order)


def from_message(message: tuple[Any, ...]) -> Order:
    if len(message) != 2:
        raise UnknownOrder(f"malformed order message of {len(message)} parts")
    return decode(str(message[0]), str(message[1]))
