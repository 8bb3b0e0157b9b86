"""Time-ordered row ids (domain/ids.py): the uuid4 hex shape, in creation order."""

from __future__ import annotations

import re

from telemeeting.domain.ids import time_ordered_id
from telemeeting.domain.model import new_id


def test_ids_are_32_lowercase_hex_digits_and_unique() -> None:
    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_a_later_millisecond_sorts_after_an_earlier_one() -> None:
    base = 1_780_000_000_000 * 1_000_000  # ns
    earlier = [time_ordered_id(base + n * 1_000_000) for n in range(50)]
    assert earlier == sorted(earlier)
    assert time_ordered_id(base).startswith(f"{base // 1_000_000:012x}")


def test_ids_of_one_millisecond_share_the_prefix_and_differ_after_it() -> None:
    a, b = time_ordered_id(5_000_000), time_ordered_id(5_000_000)
    assert a[:12] == b[:12] == "000000000005" and a != b
