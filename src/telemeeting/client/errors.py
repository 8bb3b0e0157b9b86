"""The SDK's exceptions: one base class carrying the ytx status, a few families to catch.

Every failure of a call raises a `TeleMeetingError`, so `except TeleMeetingError` is enough for
code that only wants to log; the subclasses let callers react to a family (fix credentials, fix
the request, the meeting has gone, slow down, the network failed) without comparing strings.
"""

from __future__ import annotations

from typing import Any

# The families are the contract's (telemeeting.wire.status), exported under the SDK's names.
from telemeeting.wire.status import AUTH_CODES as AUTH_CODES
from telemeeting.wire.status import MEETING_CODES as MEETING_CODES
from telemeeting.wire.status import RETRY_LATER_CODES as RATE_LIMIT_CODES
from telemeeting.wire.status import VALIDATION_CODES as VALIDATION_CODES


class TeleMeetingError(Exception):
    """A call that did not succeed: the server's `statusCode`, `statusMsg` and `requestId`.

    `status_code` is the string of the envelope (`"-300"`); `request_id` is `""` when the server
    refused the request before accepting it, which is the case for every error code.
    """

    def __init__(
        self,
        status_code: str,
        status_msg: str,
        request_id: str = "",
        *,
        http_status: int | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status_code = status_code
        self.status_msg = status_msg
        self.request_id = request_id
        self.http_status = http_status
        self.body = body or {}
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.status_code} {self.status_msg}".strip()
        return f"{text} (requestId {self.request_id})" if self.request_id else text


class AuthError(TeleMeetingError):
    """-200…-205: account, signature, balance or app checks failed; retrying will not help."""


class ValidationError(TeleMeetingError):
    """-2, -101, -102: a parameter is missing, malformed, or a phone number is invalid."""


class MeetingError(TeleMeetingError):
    """-300…-304: the meeting or member is not in a state that allows the action."""


class RateLimitError(TeleMeetingError):
    """-104: refused for now, nothing done: the account's request rate was exceeded, the server
    is busy, or its database is unavailable for a moment (`status_msg` says which); slow down
    and try again. The client retries it by itself for idempotent calls (RetryPolicy)."""


class TransportError(TeleMeetingError):
    """The server could not be reached, timed out, or did not answer with the ytx envelope.

    `status_code` is `""`; the underlying httpx exception, if any, is the `__cause__`.
    """

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__("", message, http_status=http_status)


def error_for(
    status_code: str,
    status_msg: str,
    request_id: str = "",
    *,
    http_status: int | None = None,
    body: dict[str, Any] | None = None,
) -> TeleMeetingError:
    """The exception of the family that `status_code` belongs to (the base class otherwise)."""
    kind: type[TeleMeetingError] = TeleMeetingError
    if status_code in AUTH_CODES:
        kind = AuthError
    elif status_code in VALIDATION_CODES:
        kind = ValidationError
    elif status_code in MEETING_CODES:
        kind = MeetingError
    elif status_code in RATE_LIMIT_CODES:
        kind = RateLimitError
    return kind(status_code, status_msg, request_id, http_status=http_status, body=body)
