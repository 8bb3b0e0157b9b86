"""Placement of a meeting's legs on a server's media workers (issue 16): the pure decision."""

from __future__ import annotations

import pytest

from telemeeting.telephony.sip.placement import Span, choose


def test_a_new_meeting_goes_to_the_least_loaded_node() -> None:
    assert choose([], {}, {0: 5, 1: 2, 2: 2}, [0, 1, 2], limit=3) == 1


def test_the_home_fills_up_to_the_limit_first() -> None:
    # The home (first) has room: it takes the leg even if another node is idle.
    assert choose([0], {0: 1}, {0: 30, 1: 0}, [0, 1], limit=2) == 0


def test_a_full_meeting_extends_to_the_least_loaded_node_that_does_not_carry_it() -> None:
    assert choose([0], {0: 2}, {0: 2, 1: 9, 2: 4}, [0, 1, 2], limit=2) == 2
    # Then the nodes that carry it fill in order before another is added.
    assert choose([0, 2], {0: 2, 2: 1}, {0: 2, 1: 9, 2: 5}, [0, 1, 2], limit=2) == 2
    # A leg that left the home makes room there again.
    assert choose([0, 2], {0: 1, 2: 2}, {0: 1, 1: 9, 2: 6}, [0, 1, 2], limit=2) == 0


def test_dead_nodes_take_nothing() -> None:
    assert choose([0], {0: 2}, {0: 2, 1: 0, 2: 7}, [0, 2], limit=2) == 2
    # The home died: the surviving node of the meeting with room takes it.
    assert choose([0, 1], {1: 1}, {1: 1}, [1, 2], limit=2) == 1
    with pytest.raises(ValueError):
        choose([0], {}, {}, [], limit=2)


def test_when_every_node_carries_the_meeting_and_is_full_the_least_filled_goes_over() -> None:
    assert choose([1, 0], {0: 3, 1: 4}, {0: 3, 1: 4}, [0, 1], limit=3) == 0


def test_span_counts_legs_per_node_and_knows_when_the_meeting_is_over() -> None:
    span = Span(nodes=[0])
    span.add_leg("a", 0)
    span.add_leg("b", 0)
    span.nodes.append(1)
    span.add_leg("c", 1)
    assert span.per_node == {0: 2, 1: 1} and span.home == 0
    assert not span.empty  # nobody answered yet
    span.joined = True
    assert span.end_leg("a") == 0 and span.end_leg("a") is None
    assert span.drop_node(0) == ["b"]  # node 0 died with b on it
    assert span.nodes == [1] and span.home == 1 and span.per_node == {1: 1}
    assert not span.empty
    span.end_leg("c")
    assert span.empty
