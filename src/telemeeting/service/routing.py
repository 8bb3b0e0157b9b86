"""Which server each carrier order is for, when a meeting spans several (issue 16).

"" stands for the meeting's owner (its home), resolved when the order is claimed, so orders
follow a take-over. A leg's orders go to the server carrying the leg; the meeting's settings,
its prompts to everyone, its end and a member's join or leave on a server (`ServerPresence`,
for the beeps) go to the owner and to every other server it spans; a dial
and the recording go to the owner (the home dials, and records the full mix).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from telemeeting.telephony.orders import (
    ConfigureMeeting,
    EndMeeting,
    HangUp,
    HoldMember,
    Order,
    PlayPrompt,
    ServerPresence,
    SetMuted,
    StopPrompt,
)

#: The owner, whoever it is when the order is claimed.
OWNER = ""


def leg_of(order: Order) -> str:
    """The leg an order acts on; "" for an order about the whole meeting (or a dial: the home
    dials, whatever server will carry the call)."""
    if isinstance(order, HangUp | SetMuted | HoldMember | PlayPrompt | StopPrompt):
        return order.leg_id
    return ""


def is_meeting_wide(order: Order) -> bool:
    """An order every server carrying the meeting must obey."""
    if isinstance(order, ConfigureMeeting | EndMeeting | ServerPresence):
        return True
    return isinstance(order, PlayPrompt | StopPrompt) and not order.leg_id


def needs_servers(orders: Sequence[Order]) -> bool:
    """Whether addressing these orders needs the list of the meeting's other servers (read only
    then: an invitation's dial orders cost no statement more)."""
    return any(is_meeting_wide(order) for order in orders)


def address(
    orders: Sequence[Order], node_of_leg: Callable[[str], str], servers: Sequence[str]
) -> list[tuple[Order, str]]:
    """Each order with the server it is for ("" the owner); a meeting-wide order once for the
    owner and once for each of `servers` (the others the meeting spans)."""
    addressed: list[tuple[Order, str]] = []
    for order in orders:
        if is_meeting_wide(order):
            addressed.append((order, OWNER))
            addressed.extend((order, server) for server in servers if server != OWNER)
        elif leg := leg_of(order):
            addressed.append((order, node_of_leg(leg)))
        else:
            addressed.append((order, OWNER))
    return addressed
