"""The bodies and URLs of status pushes (spec §7), shared by the server and the SDK."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

CALL_STATE = "CallState"
CDR = "Call"
MEETING_STATE = "MeetingState"
KINDS = (CALL_STATE, CDR, MEETING_STATE)
#: The list inside a `Call` push's body.
CDR_ENTRIES = "cdr"

HEADER_EVENT_ID = "X-Telemeeting-Event-Id"
HEADER_SEQ = "X-Telemeeting-Seq"
HEADER_TIMESTAMP = "X-Telemeeting-Timestamp"
HEADER_SIGNATURE = "X-Telemeeting-Signature"


def push_url(callback_url: str, kind: str) -> str:
    """`{url}?CallState`, or `{url}&CallState` when the URL already has a query."""
    return f"{callback_url}{'&' if '?' in callback_url else '?'}{kind}"


def call_state_body(
    *,
    request_id: str,
    meid: str,
    phone: str,
    name: str,
    state: str,
    state_desc: str,
    timestamp: str,
    custom_parm: str,
) -> dict[str, Any]:
    return {
        "requestid": request_id,
        "meid": meid,
        "dsc": phone,
        "name": name,
        "state": state,
        "stateDesc": state_desc,
        "timestamp": timestamp,
        "customParm": custom_parm,
    }


def cdr_body(
    *,
    request_id: str,
    appid: str,
    meid: str,
    caller: str,
    called: str,
    start: str,
    end: str,
    duration: int,
    custom_parm: str,
    state_desc: str,
    amount: float = 0.0,
    tapes_url: str = "NoTapes",
    direction: str | None = None,
) -> dict[str, Any]:
    """A `Call` CDR. `direction` (**extension**, issue 15) is given only for a caller who
    dialled in ("in"): `called` is then still the member's phone and `caller` the dial-in
    number they called."""
    extra = {} if direction is None else {"direction": direction}
    return {
        CDR_ENTRIES: [
            {
                "requestid": request_id,
                "appid": appid,
                "meid": meid,
                "caller": caller,
                "called": called,
                "calledstime": start,
                "calledetime": end,
                "duration": duration,
                "oriamount": amount,
                "customParm": custom_parm,
                "stateDesc": state_desc,
                "tapesurl": tapes_url,
                **extra,
            }
        ]
    }


def meeting_state_body(*, meid: str, state: str, reason: str, timestamp: str) -> dict[str, Any]:
    return {"meid": meid, "state": state, "reason": reason, "timestamp": timestamp}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 keyed with the account's authToken over `timestamp + "." + body`."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
