"""A meeting's in-call media settings (issue 14): what createMeeting asked for, turned into the
orders that set the meeting up on its media node, at three moments:

- an immediate meeting's creation (service/meetings.py);
- a booked meeting's start, by the clock (service/clock.py): the request is long gone, so the
  settings were kept in `meeting_media` when it was booked;
- a media node taking a meeting over from a dead one (service/calls.py): the new node knows
  nothing of the meeting, so the settings are sent again and a running recording goes on in a
  new segment (the dead node's WAV stays where it was, for `telemeeting recordings purge`).

Only meetings that asked for more than the defaults (or gave `beep`) have a `meeting_media` row;
the others get `[meetings] beep` and nothing else, so a plain createMeeting costs no statement more.
"""

from __future__ import annotations

from telemeeting.config import Settings
from telemeeting.domain.model import Meeting
from telemeeting.service import recordings
from telemeeting.store.meeting_media import MediaSettings, MeetingMediaRepository
from telemeeting.store.recordings import RecordingRepository
from telemeeting.store.speakers import SpeakerRepository
from telemeeting.store.unit_of_work import UnitOfWork
from telemeeting.telephony.orders import ConfigureMeeting, Order, StopRecording
from telemeeting.wire import actions


def requested(request: actions.CreateMeeting, default_beep: int) -> MediaSettings:
    """The settings a createMeeting asked for (`beep` absent: `[meetings] beep`)."""
    return MediaSettings(
        record=request.record,
        beep=default_beep if request.beep is None else request.beep,
        end_on_creator_leave=request.end_on_creator_leave,
        speaker_events=request.speaker_events,
    )


def defaults(default_beep: int) -> MediaSettings:
    return MediaSettings(False, default_beep, False, False)


async def keep(
    uow: UnitOfWork,
    meeting: Meeting,
    media: MediaSettings,
    default_beep: int,
    beep_given: bool = False,
) -> None:
    """Store the settings if they differ from the defaults or `beep` was asked for (they are
    needed again later, maybe by a process started with another `[meetings] beep`)."""
    if beep_given or media != defaults(default_beep):
        await MeetingMediaRepository(uow.connection).add(meeting.id, media)


async def kept(uow: UnitOfWork, meeting_id: str, default_beep: int) -> MediaSettings:
    found = await MeetingMediaRepository(uow.connection).get(meeting_id)
    return found if found is not None else defaults(default_beep)


def configure_order(meeting: Meeting, media: MediaSettings, env: str) -> ConfigureMeeting | None:
    """The meeting's settings for its media node; None when there is nothing to set. The
    creator's leg must be among the meeting's loaded legs for `endoncreatorleave` to act."""
    if not (media.beep or media.end_on_creator_leave or media.speaker_events):
        return None
    creator = next((leg for leg in meeting.live_legs if leg.phone == meeting.creator), None)
    return ConfigureMeeting(
        meeting.id,
        env,
        beep=media.beep,
        creator_leg=creator.id if creator is not None and meeting.creator else "",
        end_on_creator_leave=media.end_on_creator_leave,
        speaker_events=media.speaker_events,
    )


async def starting_orders(
    uow: UnitOfWork,
    meeting: Meeting,
    media: MediaSettings,
    settings: Settings,
    env: str,
    now: float,
) -> list[Order]:
    """A meeting starting (created active, or booked and due): its settings and recording, to
    be sent before its first dial."""
    orders: list[Order] = []
    if media.speaker_events:
        await SpeakerRepository(uow.connection).enable(meeting.id, now)
    configure = configure_order(meeting, media, env)
    if configure is not None:
        orders.append(configure)
    if media.record:
        row, start = recordings.new_recording(settings, meeting, env, now)
        await RecordingRepository(uow.connection).add(row)
        orders.append(start)
    return orders


async def resumed_orders(
    uow: UnitOfWork, meeting: Meeting, settings: Settings, env: str, now: float
) -> list[Order]:
    """The meeting moved to another media node: its settings again, and, if it was being
    recorded, a new recording (segment) from now on; the old one stops now (its WAV, on the
    dead node's disk, is encoded by `telemeeting recordings purge`)."""
    media = await kept(uow, meeting.id, settings.meetings.beep)
    orders: list[Order] = []
    configure = configure_order(meeting, media, env)
    if configure is not None:
        orders.append(configure)
    repository = RecordingRepository(uow.connection)
    current = recordings.running(await repository.for_meeting(meeting.id))
    if current is not None:
        await repository.stop(current.id, now)
        row, start = recordings.new_recording(settings, meeting, env, now)
        await repository.add(row)
        # If the dead node never claimed the old segment's StartRecording, the new node claims
        # it first and would keep writing that segment (a room records one at a time): stop it.
        orders += [StopRecording(meeting.id, current.id, env), start]
    return orders


async def ends_with_creator(uow: UnitOfWork, meeting: Meeting, phone: str, beep: int) -> bool:
    """Does the end of `phone`'s leg end the meeting (`endoncreatorleave` and the creator)?"""
    if not meeting.creator or phone != meeting.creator:
        return False
    return (await kept(uow, meeting.id, beep)).end_on_creator_leave
