"""The telemeeting Python SDK: `Client` and `AsyncClient` for the ytx TeleMeeting API 201612.

    from telemeeting.client import Client, Party

    with Client(sid, token, appid, base_url="http://127.0.0.1:8881") as client:
        meid = client.create_meeting("weekly").meid
        client.invite(meid, [("张三", "13800138000"), Party("01053889900", extension="1234")])
        print(client.query_meeting(meid).members)

Webhook verification and parsing live in `telemeeting.client.webhooks`.
"""

from telemeeting.client import errors, models
from telemeeting.client._async import AsyncClient
from telemeeting.client._calls import PRODUCTION_URL, SANDBOX_URL, RetryPolicy
from telemeeting.client._sync import Client
from telemeeting.client.errors import (
    AuthError,
    MeetingError,
    RateLimitError,
    TeleMeetingError,
    TransportError,
    ValidationError,
)
from telemeeting.client.models import (
    Accepted,
    Balance,
    CallRecord,
    CallState,
    CdrCursor,
    CreatedMeeting,
    Meeting,
    MeetingEvent,
    MeetingStateChange,
    Member,
    Party,
    PushEvent,
    Recording,
)

__all__ = [
    "PRODUCTION_URL",
    "SANDBOX_URL",
    "Accepted",
    "AsyncClient",
    "AuthError",
    "Balance",
    "CallRecord",
    "CallState",
    "CdrCursor",
    "Client",
    "CreatedMeeting",
    "Meeting",
    "MeetingError",
    "MeetingEvent",
    "MeetingStateChange",
    "Member",
    "Party",
    "PushEvent",
    "RateLimitError",
    "Recording",
    "RetryPolicy",
    "TeleMeetingError",
    "TransportError",
    "ValidationError",
    "errors",
    "models",
]
