"""Carrier orders: one format (encode/decode round trip, unknown kinds refused) and the
router that hands each order to its environment's driver."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from telemeeting.telephony.driver import DriverRouter, ReportSink
from telemeeting.telephony.orders import (
    DialOrder,
    EndMeeting,
    HangUp,
    Order,
    SetMuted,
    UnknownOrder,
    carry_out,
    decode,
    encode,
    from_message,
    kind_of,
    to_message,
)


class RecordingDriver:
    """A fake at the driver boundary: it only records the orders it gets."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, ...]] = []

    def attach(self, sink: ReportSink) -> None:
        pass

    async def dial(self, order: DialOrder) -> None:
        self.orders.append(("dial", order.leg_id))

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        self.orders.append(("hang_up", leg_id))

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        self.orders.append(("set_muted", leg_id, str(muted)))

    async def end_meeting(self, meeting_id: str) -> None:
        self.orders.append(("end", meeting_id))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


text = st.text(max_size=20)
orders = st.one_of(
    st.builds(DialOrder, text, text, text, text, text, text),
    st.builds(HangUp, text, text, text),
    st.builds(SetMuted, text, text, st.booleans(), text),
    st.builds(EndMeeting, text, text),
)


@given(orders)
def test_every_order_survives_the_table_and_the_pipe(order: Order) -> None:
    assert decode(kind_of(order), encode(order)) == order
    assert from_message(to_message(order)) == order


@pytest.mark.parametrize(
    ("kind", "body"),
    [("fly", "{}"), ("dial", "{"), ("dial", '{"meeting_id": "m"}'), ("hang_up", "[]")],
)
def test_unknown_or_damaged_orders_are_refused(kind: str, body: str) -> None:
    with pytest.raises(UnknownOrder):
        decode(kind, body)


async def test_orders_reach_the_driver_of_their_environment() -> None:
    sandbox, production = RecordingDriver(), RecordingDriver()
    router = DriverRouter({"sandbox": sandbox, "production": production})
    for order in (
        DialOrder("m1", "a", "13800138000", "", "", "sandbox"),
        SetMuted("m1", "a", True, "sandbox"),
        HangUp("m1", "a", "sandbox"),
        EndMeeting("m1", "sandbox"),
        DialOrder("m2", "b", "13800138000", "", "", "production"),
    ):
        await carry_out(router.driver(order.env), order)
    assert sandbox.orders == [
        ("dial", "a"),
        ("set_muted", "a", "True"),
        ("hang_up", "a"),
        ("end", "m1"),
    ]
    assert production.orders == [("dial", "b")]
