"""Which server each carrier order is for (service/routing.py, issue 16)."""

from __future__ import annotations

from telemeeting.service.routing import OWNER, address, needs_servers
from telemeeting.telephony.orders import (
    ConfigureMeeting,
    DialOrder,
    EndMeeting,
    HangUp,
    HoldMember,
    LinkServer,
    PlayPrompt,
    ServerPresence,
    SetMuted,
    StartRecording,
    StopPrompt,
    decode,
    encode,
    kind_of,
    settings_of,
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
    left = ServerPresence("m", "in-on-b", False, "B", "production")  # B died: the sweep's
    addressed = address([dial, record, end, everyone, left], _node, ["C"])
    assert addressed == [
        (dial, OWNER),
        (record, OWNER),
        (end, OWNER), (end, "C"),
        (everyone, OWNER), (everyone, "C"),
        (left, OWNER), (left, "C"),
    ]  # fmt: skip


def test_only_meeting_wide_orders_need_the_list_of_servers() -> None:
    """An invitation (dial orders) reads nothing more: its cost does not grow with spans."""
    assert not needs_servers([DialOrder("m", "l", "1", "", "", "production")])
    assert not needs_servers([SetMuted("m", "l", True, "production")])
    assert needs_servers([ConfigureMeeting("m", "production")])
    assert needs_servers([StopPrompt("m", "production")])


def test_a_link_reply_carries_the_homes_settings_for_its_meeting_only() -> None:
    settings = ConfigureMeeting("m", "production", beep=3, speaker_events=True)
    reply = LinkServer(
        "m", "A", "production", "127.0.0.1", 40000, "L16", True, "", encode(settings)
    )
    assert decode(kind_of(reply), encode(reply)) == reply
    assert settings_of(reply) == settings
    other = ConfigureMeeting("other", "production", beep=3)
    for body in ("", "{not json", encode(other), encode(ServerPresence("m", "l", True, "A", "x"))):
        assert settings_of(LinkServer("m", "A", "production", reply=True, settings=body)) is None
    presence = ServerPresence("m", "leg", True, "B", "production")
    assert decode(kind_of(presence), encode(presence)) == presence
