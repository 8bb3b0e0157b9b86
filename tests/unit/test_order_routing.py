"""Which server each carrier order is for (service/routing.py, issue 16)."""

from __future__ import annotations

from telemeeting.service.routing import OWNER, address, needs_servers
from telemeeting.telephony.orders import (
    ConfigureMeeting,
    DialOrder,
    EndMeeting,
    HangUp,
    HoldMember,
    PlayPrompt,
    SetMuted,
    StartRecording,
    StopPrompt,
)

NODES = {"in-on-b": "B"}  # a dial-in leg carried by server B; others by the owner


def _node(leg_id: str) -> str:
    return NODES.get(leg_id, OWNER)


def test_a_legs_orders_go_to_the_server_carrying_it() -> None:
    orders = [
        HangUp("m", "in-on-b", "production"),
        SetMuted("m", "in-on-b", True, "production"),
        HoldMember("m", "in-on-b", True, "production"),
        PlayPrompt("m", "/p.raw", "production", leg_id="in-on-b"),
        StopPrompt("m", "production", leg_id="in-on-b"),
        SetMuted("m", "out", True, "production"),
    ]
    assert [node for _, node in address(orders, _node, ["B"])] == ["B"] * 5 + [OWNER]


def test_meeting_wide_orders_go_to_every_server_dials_and_recording_to_the_owner() -> None:
    dial = DialOrder("m", "out", "138", "", "", "production")
    record = StartRecording("m", "r", "/r.wav", "production")
    end = EndMeeting("m", "production")
    everyone = PlayPrompt("m", "/p.raw", "production")
    addressed = address([dial, record, end, everyone], _node, ["B", "C"])
    assert addressed == [
        (dial, OWNER),
        (record, OWNER),
        (end, OWNER), (end, "B"), (end, "C"),
        (everyone, OWNER), (everyone, "B"), (everyone, "C"),
    ]  # fmt: skip


def test_only_meeting_wide_orders_need_the_list_of_servers() -> None:
    """An invitation (dial orders) reads nothing more: its cost does not grow with spans."""
    assert not needs_servers([DialOrder("m", "l", "1", "", "", "production")])
    assert not needs_servers([SetMuted("m", "l", True, "production")])
    assert needs_servers([ConfigureMeeting("m", "production")])
    assert needs_servers([StopPrompt("m", "production")])
