"""Every path the API answers: `/{version}/sid/{accountSID}/{func}/{funcURL}` and the actions each
one serves (spec §1). Anything else is HTTP 404 with `-3`; an action on the wrong path is `-3`.
"""

from __future__ import annotations

import re

from telemeeting.wire import account, cdr
from telemeeting.wire.actions import ACTIONS_BY_FUNC_URL

#: The version of the meeting and balance APIs.
VERSION = "201612"
#: Every version that some path is served on (for admission control and routing).
VERSIONS = frozenset({VERSION, *cdr.VERSIONS})
CALL = "call"
#: The literal segment before the account SID.
SID = "sid"
#: The path's parts, each one whole segment (use `fullmatch`: `$` would allow a trailing newline).
PATH_PATTERN = re.compile(
    rf"/(?P<version>[^/]+)/{SID}/(?P<sid>[^/]+)/(?P<func>[^/]+)/(?P<func_url>[^/]+)"
)

#: (version, func, funcURL) → the actions served there.
ENDPOINTS: dict[tuple[str, str, str], frozenset[str]] = {
    **{(VERSION, CALL, func_url): actions for func_url, actions in ACTIONS_BY_FUNC_URL.items()},
    (VERSION, account.FUNC, account.GET_BALANCE): frozenset({account.QUERY_BALANCE}),
    **{(version, CALL, cdr.CALL_CDR): cdr.ACTIONS for version in cdr.VERSIONS},
}


def actions_at(version: str, func: str, func_url: str) -> frozenset[str] | None:
    """The actions served on this path; None when the path is not one of ours."""
    return ENDPOINTS.get((version, func, func_url))


def path(version: str, account_sid: str, func: str, func_url: str) -> str:
    """`/{version}/sid/{accountSID}/{func}/{funcURL}` (without `?Sign=`)."""
    return f"/{version}/{SID}/{account_sid}/{func}/{func_url}"


def prefix(version: str) -> str:
    """`/{version}/sid/`: what every API path of `version` starts with."""
    return f"/{version}/{SID}/"
