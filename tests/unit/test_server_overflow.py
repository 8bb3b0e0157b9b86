"""When a meeting's next dial leaves for another server (telephony/sip/driver.py, issue 16)."""

from __future__ import annotations

from telemeeting.telephony.sip.driver import full_everywhere
from telemeeting.telephony.sip.placement import Span


def _span(legs: dict[str, int]) -> Span:
    span = Span()
    for leg, node in legs.items():
        if node not in span.nodes:
            span.nodes.append(node)
        span.add_leg(leg, node)
    return span


def test_only_a_meeting_full_on_every_live_worker_overflows() -> None:
    full = _span({"a": 0, "b": 0, "c": 1, "d": 1})
    assert full_everywhere(full, [0, 1], 2)
    assert not full_everywhere(full, [0, 1], 3)  # room left on both
    assert not full_everywhere(full, [0, 1, 2], 2)  # worker 2 does not carry it yet
    assert full_everywhere(full, [0], 2)  # worker 1 is dead; the live one is full
    assert not full_everywhere(_span({"a": 0, "b": 0, "c": 1}), [0, 1], 2)
    assert not full_everywhere(full, [], 2)  # no live worker: the dial fails here, not elsewhere
