"""The console in a real browser: log in, filter contacts by a tag, open a timeline.

``SIYU_SCREENSHOT=1`` also writes ``docs/images/console-contacts.png`` for the user guide.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from siyu.accounts.models import Role
from siyu.contacts.actions import do_tag_contacts
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "console-contacts.png"
PASSWORD = "browser-pass-1"


@pytest.fixture
def shop():
    """A tea shop with an owner who also works for a second brand, two agents, tags and
    eight contacts of which three are tagged VIP."""
    ws = make_workspace(slug="tea", name="山茶小馆 Tea House")
    other = make_workspace(slug="bakery", name="麦香烘焙 Bakery")
    owner = make_staff(ws, Role.OWNER, email="owner@example.com", display_name="林店长", password=PASSWORD)
    make_staff(other, Role.OPERATOR, email="owner@example.com", password=PASSWORD)
    zhou = make_staff(ws, Role.AGENT, email="zhou@example.com", display_name="周导购")
    wu = make_staff(ws, Role.AGENT, email="wu@example.com", display_name="吴客服")
    vip = make_tag(ws, "VIP", group="会员", kind="identity")
    green = make_tag(ws, "绿茶", group="偏好")
    oolong = make_tag(ws, "乌龙", group="偏好")
    shanghai = make_tag(ws, "上海", group="地区", exclusive=True)
    start = dt.datetime(2025, 3, 1, 2, 0, tzinfo=dt.UTC)
    people = [
        ("王小明", "13812345678", zhou, "repeat", "parcel_card", "春季包裹卡"),
        ("李娜", "13900001111", wu, "vip", "live_code", "门店海报"),
        ("张伟", "13700002222", zhou, "new", "douyin", ""),
        ("刘洋", "", wu, "nurtured", "live_code", "门店海报"),
        ("陈静", "13600003333", zhou, "first_purchase", "xiaohongshu", "种草笔记"),
        ("杨帆", "13500004444", None, "at_risk", "parcel_card", "春季包裹卡"),
        ("赵磊", "13300005555", wu, "new", "live_code", "门店海报"),
        ("黄丽", "13200006666", zhou, "churned", "douyin", ""),
    ]
    contacts = {
        name: make_contact(
            ws, name=name, phone=phone, owner=owner_, lifecycle_stage=stage, source_channel=channel,
            source_campaign=campaign, created_at=start + dt.timedelta(days=3 * index, hours=index),
        )
        for index, (name, phone, owner_, stage, channel, campaign) in enumerate(people)
    }
    c = contacts
    do_tag_contacts(ws, None, [c["王小明"], c["李娜"], c["陈静"]], [vip])
    do_tag_contacts(ws, None, [c["王小明"], c["张伟"], c["黄丽"]], [green])
    do_tag_contacts(ws, None, [c["李娜"], c["杨帆"]], [oolong])
    do_tag_contacts(ws, None, [c["王小明"], c["李娜"], c["赵磊"]], [shanghai])
    return {"ws": ws, "owner": owner, "vip": vip, "contacts": contacts}


def test_log_in_filter_by_tag_and_open_a_timeline(live_server, page, shop):
    # given the login page
    page.goto(f"{live_server.url}/console/")
    expect(page).to_have_url(re.compile(r"/console/login/"))

    # when the owner logs in
    page.fill("#id_username", "owner@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit].primary")

    # then, working for two brands, they are asked for the workspace and pick the tea shop
    expect(page).to_have_url(re.compile(r"/console/workspaces/"))
    page.get_by_role("button", name=re.compile("山茶小馆")).click()
    expect(page).to_have_url(re.compile(r"/console/contacts/$"))
    expect(page.locator("tr.contact-row")).to_have_count(8)

    if os.environ.get("SIYU_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=False)

    # when they filter by the VIP tag (htmx refreshes the table in place)
    page.click("details[data-mode=tags_all] > summary")
    with page.expect_response(lambda r: "tags_all=" in r.url and r.request.headers.get("hx-request") == "true"):
        page.locator("details[data-mode=tags_all] label.chip-check", has_text="VIP").click()

    # then exactly the three VIP contacts are listed, and the URL says so
    expect(page.locator("tr.contact-row")).to_have_count(3)
    names = sorted(page.locator("tr.contact-row td.name a").all_inner_texts())
    assert names == ["李娜", "王小明", "陈静"]
    expect(page).to_have_url(re.compile(rf"/console/contacts/\?tags_all={shop['vip'].pk}$"))
    assert "3" in page.locator("#contact-total").inner_text()

    # when they open one of them
    page.locator("tr.contact-row td.name a", has_text="王小明").click()

    # then the contact's timeline shows when they were added and tagged
    timeline = page.locator("#timeline")
    expect(timeline).to_be_visible()
    expect(timeline.locator(".timeline-event[data-kind=added]")).to_have_count(1)
    expect(timeline.locator(".timeline-event[data-kind=tagged]")).to_have_count(3)
    expect(timeline.locator(".timeline-event[data-kind=tagged]", has_text="会员/VIP")).to_have_count(1)
    expect(timeline.locator(".timeline-event[data-kind=added]")).to_contain_text("parcel_card")
    # shown in the workspace's time zone (Asia/Shanghai): created 2025-03-01 02:00 UTC
    expect(timeline.locator(".timeline-event[data-kind=added] time")).to_have_text("2025-03-01 10:00")
