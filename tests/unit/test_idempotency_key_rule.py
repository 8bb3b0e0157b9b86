"""The SDK refuses exactly the Idempotency-Keys the server refuses (issue 11: the SDK took
`键-1`, which then failed as a transport error instead of an up-front error)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.api.idempotency import parse_key
from telemeeting.client._calls import _idempotency_headers
from telemeeting.wire.status import WireError


def _server_accepts(key: str) -> bool:
    try:
        parse_key(key)
    except WireError:
        return False
    return True


def _sdk_accepts(key: str) -> bool:
    try:
        _idempotency_headers(key)
    except ValueError:
        return False
    return True


@given(st.text(max_size=140) | st.text(st.characters(min_codepoint=32, max_codepoint=126)))
def test_sdk_and_server_agree_on_every_key(key: str) -> None:
    assert _sdk_accepts(key) == _server_accepts(key)


@pytest.mark.parametrize(
    ("key", "valid"),
    [("order-1", True), ("键-1", False), ("", False), ("a" * 128, True), ("a" * 129, False),
     ("tab\there", False), ("sp ace", True)],
)  # fmt: skip
def test_examples(key: str, valid: bool) -> None:
    assert _sdk_accepts(key) is valid and _server_accepts(key) is valid
