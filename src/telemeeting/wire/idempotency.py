"""The Idempotency-Key header (an extension, docs/api.md): the one rule the server and the SDK
both apply, so that the SDK refuses up front exactly what the server would refuse."""

from __future__ import annotations

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 128


def valid_key(value: str) -> bool:
    """1–128 printable ASCII characters (space to tilde): what an HTTP header carries as is."""
    return 1 <= len(value) <= MAX_KEY_LENGTH and all(" " <= ch <= "~" for ch in value)
