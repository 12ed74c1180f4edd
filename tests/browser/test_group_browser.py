"""A group's page in a real browser: the active-hours heatmap is drawn by ECharts from the
group's messages, a member is removed with the Remove button (after the confirmation),
and the message log is searched."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import OutboxMessage
from siyu.communities.actions import do_add_member, do_create_group, do_record_group_message
from siyu.communities.models import Membership
from siyu.contacts.actions import do_ensure_contact_for_identity
from tests.browser.helpers import log_in, tea_house

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def group():
    ws, owner = tea_house()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    group = do_create_group(ws, None, name="茶友福利群", channel_account=account, external_id="room-tea", owner=owner)
    ann, _ = do_ensure_contact_for_identity(account, "ann", name="小安")
    spam, _ = do_ensure_contact_for_identity(account, "spam", name="广告哥")
    for contact in (ann, spam):
        do_add_member(group, contact, None)
    now = timezone.now()
    for i in range(12):  # a dozen messages over the last days, at varied hours
        do_record_group_message(group, ann, external_id=f"m{i}", text=f"今天喝什么茶 {i}" if i % 3 else "有人问发货吗",
                                sent_at=now - dt.timedelta(hours=5 * i + 1))
    return group


def test_heatmap_remove_a_member_and_search_the_messages(live_server, page, group):
    # given the owner logged in
    log_in(page, live_server.url)

    # when they open the group's page
    page.goto(f"{live_server.url}/console/groups/{group.pk}/")

    # then ECharts drew the active-hours heatmap from the twelve messages
    expect(page.locator("#chart-heatmap canvas")).to_have_count(1)
    cells = page.evaluate("echarts.getInstanceByDom(document.getElementById('chart-heatmap')).getOption().series[0].data")
    assert sum(cell[2] for cell in cells) == 12
    assert page.locator("#chart-heatmap").bounding_box()["height"] > 100

    # when they remove 广告哥 with the Remove button and confirm
    page.once("dialog", lambda dialog: dialog.accept())
    row = page.locator("#members tr", has_text="广告哥")
    row.get_by_placeholder(re.compile("原因")).fill("发广告")
    row.get_by_role("button", name="移出").click()

    # then the page says the channel is removing him, he is gone from the list and the command was sent
    expect(page.locator(".flash")).to_contain_text("广告哥")
    expect(page.locator("#members tr", has_text="广告哥")).to_have_count(0)
    assert Membership.objects.get(group=group, contact__name="广告哥").left_at is not None
    assert OutboxMessage.objects.get(command="remove_member").payload == {"member": "spam", "reason": "发广告"}

    # when they open the message log and search for 发货
    page.get_by_role("link", name="群聊记录").click()
    expect(page.locator("#messages tbody tr")).to_have_count(12)
    page.get_by_placeholder(re.compile("包含文字")).fill("发货")
    page.get_by_role("button", name="搜索").click()

    # then only the four messages asking about shipping are listed
    expect(page.locator("#messages tbody tr")).to_have_count(4)
    expect(page).to_have_url(re.compile(r"q=%E5%8F%91%E8%B4%A7"))
