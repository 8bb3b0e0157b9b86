"""Reading scalar parameters the way real clients send them: strings or numbers (spec §5)."""

from __future__ import annotations

import json
import re
from typing import Any

from telemeeting.wire.status import Status, WireError

#: C0 controls, DEL and C1 controls: never part of a parameter (they would reach SIP headers,
#: CDRs and pushes). One character class: a linear scan.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def _encodable(text: str) -> bool:
    """Whether `text` is valid Unicode (JSON can carry lone surrogates; UTF-8 cannot)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def scalar(body: dict[str, Any], *names: str, max_len: int | None = None) -> str | None:
    """The first present of `names` as a string; None when absent or empty.

    Numbers are accepted and turned into their decimal text; objects, arrays and booleans are -101.
    """
    for name in names:
        if name not in body or body[name] is None:
            continue
        value = body[name]
        if isinstance(value, bool | dict | list):
            raise WireError(Status.INVALID_PARAMETER, f"{name} must be a string")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value).strip(" ")  # spaces around a value are forgiven; nothing else is
        if _CONTROLS.search(text) or not _encodable(text):
            raise WireError(
                Status.INVALID_PARAMETER, f"{name} has a control character or an unpaired surrogate"
            )
        if max_len is not None and len(text) > max_len:
            raise WireError(Status.INVALID_PARAMETER, f"{name} longer than {max_len}")
        return text or None
    return None


def required(body: dict[str, Any], *names: str, max_len: int | None = None) -> str:
    value = scalar(body, *names, max_len=max_len)
    if value is None:
        raise WireError(Status.MISSING_PARAMETER, f"{names[0]} is required")
    return value


def integer(body: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    text = scalar(body, name)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise WireError(Status.INVALID_PARAMETER, f"{name} is not an integer") from exc
    if not low <= value <= high:
        raise WireError(Status.INVALID_PARAMETER, f"{name} outside {low}..{high}")
    return value


def json_list(body: dict[str, Any], name: str) -> list[Any] | None:
    """An array parameter that may also arrive as a string holding the array (seed style)."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested beyond reason
            raise WireError(Status.INVALID_PARAMETER, f"{name} is not a JSON array") from exc
    if not isinstance(value, list):
        raise WireError(Status.INVALID_PARAMETER, f"{name} is not an array")
    return value
