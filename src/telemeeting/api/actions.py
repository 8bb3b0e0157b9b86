"""One function per action: parse the body into a typed request, run the use case."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from telemeeting.service.acceptance import Acceptance
from telemeeting.service.meetings import MeetingService
from telemeeting.store.records import App
from telemeeting.wire import actions as wa

Handler = Callable[[MeetingService, App, dict[str, Any], Acceptance], Awaitable[dict[str, Any]]]


async def create_meeting(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    return await service.create_meeting_answer(app, wa.parse_create_meeting(body), accept)


async def invite(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.invite(app, wa.parse_invite(body), accept)
    return {}


async def destroy_meeting(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.destroy_meeting(app, wa.parse_meeting_ref(body), accept)
    return {}


async def query_meeting(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    return {"meeting": await service.query_meeting(app, wa.parse_meeting_ref(body))}


async def mute_member(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.set_muted(app, wa.parse_member_ref(body), True, accept)
    return {}


async def unmute_member(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.set_muted(app, wa.parse_member_ref(body), False, accept)
    return {}


async def kick_member(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.kick_member(app, wa.parse_member_ref(body), accept)
    return {}


async def query_events(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    return {"events": await service.query_events(app, wa.parse_events_query(body))}


async def start_recording(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.set_recording(app, wa.parse_meeting_ref(body), True, accept)
    return {}


async def stop_recording(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.set_recording(app, wa.parse_meeting_ref(body), False, accept)
    return {}


async def mute_all(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.mute_all(app, wa.parse_meeting_ref(body), True, accept)
    return {}


async def unmute_all(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.mute_all(app, wa.parse_meeting_ref(body), False, accept)
    return {}


async def hold_member(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.hold(app, wa.parse_member_ref(body), True, accept)
    return {}


async def unhold_member(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.hold(app, wa.parse_member_ref(body), False, accept)
    return {}


async def play_prompt(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.play_prompt(app, wa.parse_prompt(body), accept)
    return {}


async def stop_prompt(
    service: MeetingService, app: App, body: dict[str, Any], accept: Acceptance
) -> dict[str, Any]:
    await service.stop_prompt(app, wa.parse_stop_prompt(body), accept)
    return {}


#: Actions that change something: an Idempotency-Key applies to these (spec §6.7).
MUTATING = frozenset(
    {
        wa.CREATE_MEETING,
        wa.INVITE,
        wa.DESTROY_MEETING,
        wa.MUTE_MEMBER,
        wa.UNMUTE_MEMBER,
        wa.KICK_MEMBER,
        wa.START_RECORDING,
        wa.STOP_RECORDING,
        wa.MUTE_ALL,
        wa.UNMUTE_ALL,
        wa.HOLD_MEMBER,
        wa.UNHOLD_MEMBER,
        wa.PLAY_PROMPT,
        wa.STOP_PROMPT,
    }
)

HANDLERS: dict[str, Handler] = {
    wa.CREATE_MEETING: create_meeting,
    wa.INVITE: invite,
    wa.DESTROY_MEETING: destroy_meeting,
    wa.QUERY_MEETING: query_meeting,
    wa.MUTE_MEMBER: mute_member,
    wa.UNMUTE_MEMBER: unmute_member,
    wa.KICK_MEMBER: kick_member,
    wa.QUERY_EVENTS: query_events,
    wa.START_RECORDING: start_recording,
    wa.STOP_RECORDING: stop_recording,
    wa.MUTE_ALL: mute_all,
    wa.UNMUTE_ALL: unmute_all,
    wa.HOLD_MEMBER: hold_member,
    wa.UNHOLD_MEMBER: unhold_member,
    wa.PLAY_PROMPT: play_prompt,
    wa.STOP_PROMPT: stop_prompt,
}
