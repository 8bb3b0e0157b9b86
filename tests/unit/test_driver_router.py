"""The router drops a dial that lost the race with the hang-up or meeting end it follows."""

from __future__ import annotations

from telemeeting.telephony.driver import DialOrder, DriverRouter, ReportSink


class RecordingDriver:
    """A fake at the driver boundary: it only records the orders it gets."""

    def __init__(self) -> None:
        self.orders: list[tuple[str, str]] = []

    def attach(self, sink: ReportSink) -> None:
        pass

    async def dial(self, order: DialOrder) -> None:
        self.orders.append(("dial", order.leg_id))

    async def hang_up(self, meeting_id: str, leg_id: str) -> None:
        self.orders.append(("hang_up", leg_id))

    async def set_muted(self, meeting_id: str, leg_id: str, muted: bool) -> None:
        pass

    async def end_meeting(self, meeting_id: str) -> None:
        self.orders.append(("end", meeting_id))

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass


def _order(leg: str, meeting: str = "m1") -> DialOrder:
    return DialOrder(meeting, leg, "13800138000", "", "", "sandbox")


async def test_dial_after_meeting_end_or_hang_up_is_dropped() -> None:
    driver = RecordingDriver()
    router = DriverRouter({"sandbox": driver, "production": driver})
    await router.dial(_order("a"))
    await router.end_meeting("m1")
    await router.dial(_order("b"))  # committed before the destroy, carried out after it
    await router.hang_up("m2", "c")
    await router.dial(_order("c", meeting="m2"))
    await router.dial(_order("d", meeting="m2"))  # another leg of a live meeting still goes
    assert driver.orders == [("dial", "a"), ("end", "m1"), ("dial", "d")]
