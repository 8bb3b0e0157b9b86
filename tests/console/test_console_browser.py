"""The web console in a real headless Chromium against a real `telemeeting serve` (issue 13)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from telemeeting.store.console_reads import ConsoleReads
from telemeeting.store.unit_of_work import Database
from tests.console.conftest import (
    Console,
    csrf_of,
    log_in_holder,
    log_in_operator,
    reload_until,
    screenshot_path,
)
from tests.receiver import Receiver
from tests.servers import Api

XSS = "<script>alert(1)</script>"
ANSWERS = ("13800000001", "13800000002")
BUSY = "13800000486"  # the simulated carrier's busy number

# Records when each member row was first seen in each state (browser clock, Unix ms).
_WATCH_ROWS = """() => {
  window.__noReload = true;
  window.__seen = {};
  const note = () => document.querySelectorAll('#members tr[data-phone]').forEach((row) => {
    const key = row.dataset.phone + '|' + row.dataset.state;
    if (!(key in window.__seen)) { window.__seen[key] = Date.now(); }
  });
  note();
  new MutationObserver(note).observe(document.getElementById('members'), {childList: true});
}"""


def _meeting_ids(console: Console, sid: str) -> list[str]:
    async def work(db: Database) -> list[str]:
        async with db.reader() as uow:
            page = await ConsoleReads(uow.connection).meetings(sid)
        return [row["id"] for row in page.rows]

    return console.read(work)


def _legs(console: Console, app_id: str, meid: str) -> dict[str, Any]:
    async def work(db: Database) -> dict[str, Any]:
        async with db.reader() as uow:
            meeting = await uow.meetings.read(app_id, meid)
        assert meeting is not None
        return {leg.phone: leg for leg in meeting.legs}

    return console.read(work)


def _row(page: Any, phone: str, state: str | None = None) -> Any:
    selector = f'#members tr[data-phone="{phone}"]'
    if state is not None:
        selector += f'[data-state="{state}"]'
    return page.locator(selector)


def test_a_holder_runs_a_live_meeting_from_the_page(console: Console, page: Any) -> None:
    tenant = console.tenant()
    api = Api(console.server, tenant)
    log_in_holder(page, tenant)
    page.goto("/meetings")
    form = page.locator("#create-meeting")
    form.locator("select[name=app]").select_option(tenant.sandbox_app)
    form.locator("input[name=meetingname]").fill(XSS)
    form.locator("[data-action=create]").click()
    page.wait_for_url(re.compile(r".*/meetings/[0-9a-f]+$"))
    assert page.locator("h1 .name").inner_text() == XSS  # shown as text, never run
    page.wait_for_selector("#live.connected")
    page.evaluate(_WATCH_ROWS)

    invite = page.locator("#invite-form")
    for name, phone in ((XSS, ANSWERS[0]), ("李四", ANSWERS[1]), ("王五", BUSY)):
        invite.locator("input[name=name]").fill(name)
        invite.locator("input[name=phone]").fill(phone)
        invite.locator("[data-action=invite]").click()
        _row(page, phone).wait_for()
    for phone in ANSWERS:
        _row(page, phone, "answer").wait_for()
    busy = _row(page, BUSY, "disconnect")
    busy.wait_for()
    assert "用户忙" in busy.locator(".state-desc").inner_text()
    assert _row(page, ANSWERS[0]).locator(".party-name").inner_text() == XSS

    # Each state reached the page within 1 s of the change being recorded.
    meid = page.locator("h1").inner_text().split()[1]
    legs = _legs(console, tenant.sandbox_app, meid)
    seen = page.evaluate("window.__seen")
    for phone in ANSWERS:
        lag = seen[f"{phone}|answer"] / 1000 - legs[phone].answered_at
        assert lag <= 1.0, (phone, lag)
    lag = seen[f"{BUSY}|disconnect"] / 1000 - legs[BUSY].ended_at
    assert lag <= 1.0, (BUSY, lag)

    shot = screenshot_path()
    if shot is not None:
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)

    _row(page, ANSWERS[0]).locator("[data-action=mute]").click()
    page.locator(f'#members tr[data-phone="{ANSWERS[0]}"][data-muted="true"]').wait_for()
    assert api.query(meid)["members"][0]["muted"] is True
    _row(page, ANSWERS[0]).locator("[data-action=unmute]").click()
    page.locator(f'#members tr[data-phone="{ANSWERS[0]}"][data-muted="false"]').wait_for()

    _row(page, ANSWERS[1]).locator("[data-action=kick]").click()
    kicked = _row(page, ANSWERS[1], "disconnect")
    kicked.wait_for()
    assert "被踢出" in kicked.locator(".state-desc").inner_text()

    page.locator("[data-action=end]").click()
    page.wait_for_selector('#meeting-state[data-meeting-state="ended"]')
    assert api.query(meid)["state"] == "ended"
    assert page.evaluate("window.__noReload") is True  # all of it without a reload
    assert page.dialogs == []
    assert page.locator("#events tr[data-event]").count() > 0

    # The audit log shows who did each of these, and when.
    page.goto("/audit")
    actions = page.locator("#audit tr[data-audit-action]").evaluate_all(
        "rows => rows.map(r => r.dataset.auditAction)"
    )
    for action in ("meeting.create", "meeting.invite", "meeting.mute", "meeting.kick"):
        assert action in actions
    assert "meeting.end" in actions

    # CDRs: the three legs, as CSV with a BOM, Chinese intact, only this account's.
    page.goto(f"/cdrs?app={tenant.sandbox_app}")
    with page.expect_download() as download:
        page.locator("[data-action=export]").click()
    raw = Path(download.value.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert sorted(row["called"] for row in rows) == sorted([*ANSWERS, BUSY])
    assert {row["meid"] for row in rows} == {meid}
    assert "未应答|用户忙" in {row["stateDesc"] for row in rows}


def test_a_holder_sees_only_their_own_account(console: Console, page: Any) -> None:
    mine, other = console.tenant(), console.tenant()
    theirs = Api(console.server, other).create_meeting(meetingname="not yours")
    their_id = _meeting_ids(console, other.sid)[0]
    log_in_holder(page, mine)
    response = page.goto(f"/meetings/{their_id}")
    assert response is not None and response.status == 404
    assert page.goto(f"/meetings/{their_id}/live").status == 404
    refused = page.request.post(
        f"/meetings/{their_id}/end", form={"csrf_token": csrf_of(page)}, max_redirects=0
    )
    assert refused.status == 404
    assert Api(console.server, other).query(theirs)["state"] == "active"
    page.goto("/meetings")
    assert "not yours" not in page.content()
    assert page.goto("/accounts").status == 404  # operators only


def test_a_change_without_the_csrf_token_is_refused(console: Console, page: Any) -> None:
    tenant = console.tenant()
    log_in_holder(page, tenant)
    form = {"app": tenant.sandbox_app, "meetingname": "forged"}
    for token in (None, "wrong"):
        data = form if token is None else {**form, "csrf_token": token}
        refused = page.request.post("/meetings", form=data, max_redirects=0)
        assert refused.status == 403
        assert "CSRF" in refused.text()
    assert _meeting_ids(console, tenant.sid) == []
    accepted = page.request.post(
        "/meetings", form={**form, "csrf_token": csrf_of(page)}, max_redirects=0
    )
    assert accepted.status == 303
    assert len(_meeting_ids(console, tenant.sid)) == 1


def test_session_cookie_is_httponly_and_samesite(console: Console, page: Any) -> None:
    log_in_holder(page, console.tenant())
    cookie = next(c for c in page.context.cookies() if c["name"] == "tm_console")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("tm_console") == -1
    page.locator("[data-action=logout]").click()
    page.wait_for_url(re.compile(r".*/login$"))
    assert page.goto("/meetings").url.endswith("/login")


def test_a_dead_push_shows_its_attempts_and_is_redelivered(console: Console, page: Any) -> None:
    receiver = Receiver()
    receiver.mode = "fail"
    try:
        tenant = console.tenant()
        app = console.make_app(tenant.sid, "production", callback_url=receiver.url)
        api = Api(console.server, tenant)
        api.tenant.production_app = app
        meid = api.create_meeting(env="production", meetingname="推送")
        log_in_holder(page, tenant)
        reload_until(page, f"/pushes?state=dead&app={app}", "#pushes tr[data-delivery=dead]", 20)
        first = page.locator("#pushes tr[data-delivery=dead]").last
        event_id = str(first.get_attribute("data-event"))
        first.locator("a").first.click()
        page.wait_for_url(re.compile(f".*/pushes/{event_id}$"))
        failed = page.locator("#attempts tr[data-attempt]")
        assert failed.count() >= 2  # retried, then given up
        assert failed.first.get_attribute("data-status") == "500"
        assert "HTTP 500" in failed.first.inner_text()
        assert re.search(r"\d+\.\d ms", failed.first.inner_text())

        receiver.mode = "ok"
        page.locator("[data-action=redeliver]").click()
        receiver.wait_for(lambda pushes: any(p.event_id == event_id for p in pushes))
        reload_until(page, f"/pushes/{event_id}", '[data-event][data-delivery="delivered"]', 10)
        assert page.locator('#attempts tr[data-status="200"]').count() == 1

        # Every other dead event of the app, at once.
        page.goto(f"/pushes?app={app}")
        page.locator("[data-action=redeliver][data-scope=app]").click()
        page.wait_for_url(re.compile(r".*/pushes\?app="))
        others = set(
            page.locator("#pushes tr[data-event]").evaluate_all(
                "rows => rows.map(r => r.dataset.event)"
            )
        )
        receiver.wait_for(lambda pushes: others <= {p.event_id for p in pushes})
        assert api.query(meid, env="production")["state"] == "active"
    finally:
        receiver.stop()


def test_an_operator_sees_and_manages_every_account(console: Console, page: Any) -> None:
    first, second = console.tenant(), console.tenant()
    Api(console.server, first).create_meeting(meetingname="first's")
    Api(console.server, second).create_meeting(meetingname="second's")
    log_in_operator(page)
    page.goto("/accounts")
    for tenant in (first, second):
        assert page.locator(f'#accounts tr[data-account="{tenant.sid}"]').count() == 1
    page.goto("/meetings")
    assert "first&#39;s" in page.content() or "first's" in page.inner_text("#meetings")
    assert "second's" in page.inner_text("#meetings")

    page.goto("/accounts")
    create = page.locator("#create-account")
    create.locator("input[name=name]").fill("新客户")
    create.locator("input[name=balance]").fill("10")
    create.locator("[data-action=create]").click()
    page.wait_for_url(re.compile(r".*/accounts$"))
    row = page.locator("#accounts tr", has_text="新客户")
    assert "10.00" in row.inner_text()
    row.locator("input[name=amount]").fill("5.5")
    row.locator("[data-action=topup]").click()
    page.wait_for_url(re.compile(r".*/accounts$"))
    assert "15.50" in page.locator("#accounts tr", has_text="新客户").inner_text()

    account_row = page.locator(f'#accounts tr[data-account="{first.sid}"]')
    account_row.locator("[data-action=disable]").click()
    page.wait_for_url(re.compile(r".*/accounts$"))
    assert (
        page.locator(f'#accounts tr[data-account="{first.sid}"]').get_attribute("data-enabled")
        == "false"
    )
    refused = page.request.post("/login", form={"sid": first.sid, "token": first.token})
    assert refused.status == 401
    page.goto("/audit")
    assert "account.disable" in page.inner_text("#audit")


def test_pages_follow_accept_language_and_switch(browser: Any, console: Console) -> None:
    context = browser.new_context(base_url=console.url, locale="zh-CN")
    try:
        page = context.new_page()
        page.goto("/login")
        assert page.locator("#holder-login h2").inner_text() == "账户持有人"
        page.locator("[data-lang=en]").click()
        page.wait_for_selector("#holder-login")
        assert page.locator("#holder-login h2").inner_text() == "Account holder"
    finally:
        context.close()


def test_a_holder_manages_apps_and_sees_the_overview(console: Console, page: Any) -> None:
    tenant = console.tenant()
    Api(console.server, tenant).create_meeting(
        meetingname="live one", parties=[{"name": "甲", "phone": "13800000011"}]
    )
    log_in_holder(page, tenant)
    assert page.locator("[data-stat=live-meetings]").inner_text() == "1"
    assert page.locator("[data-stat=balance]").inner_text() == "billing off"

    page.goto("/apps")
    create = page.locator("#create-app")
    create.locator("input[name=name]").fill("我的应用")
    create.locator("select[name=env]").select_option("production")
    create.locator("input[name=callback_url]").fill("http://127.0.0.1:9/cb")
    create.locator("[data-action=create]").click()
    page.wait_for_url(re.compile(r".*/apps$"))
    row = page.locator("#apps tr", has_text="我的应用")
    assert row.get_attribute("data-env") == "production"
    app_id = str(row.get_attribute("data-app"))

    edit = page.locator(f'#apps tr[data-app="{app_id}"] form')
    edit.locator("input[name=ip_whitelist]").fill("10.0.0.0/8, 127.0.0.1")
    edit.locator("select[name=online]").select_option("0")
    edit.locator("[data-action=save]").click()
    page.wait_for_url(re.compile(r".*/apps$"))
    row = page.locator(f'#apps tr[data-app="{app_id}"]')
    assert row.get_attribute("data-online") == "false"
    assert row.locator("input[name=ip_whitelist]").input_value() == "10.0.0.0/8, 127.0.0.1"

    edit = page.locator(f'#apps tr[data-app="{app_id}"] form')
    edit.locator("input[name=callback_url]").fill("ftp://nowhere")
    edit.locator("[data-action=save]").click()
    assert page.locator("[data-error] h1").inner_text().startswith("callback URL must start")
    page.goto("/apps")
    row = page.locator(f'#apps tr[data-app="{app_id}"]')
    assert row.locator("input[name=callback_url]").input_value() == "http://127.0.0.1:9/cb"
